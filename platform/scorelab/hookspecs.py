"""The hooks a scorelab plugin implements: one per plugin kind, register-callback style.

A plugin module implements any of these and calls ``register(cls)`` (or ``register(cls, name=...)``)
for each class it provides. The host names, de-duplicates and validates what is registered.
"""

from __future__ import annotations

import pluggy

PROJECT = "scorelab"

#: Version of this hook API. A plugin may declare ``SCORELAB_API_VERSION`` (module attribute); a
#: different major version is refused with a message. Breaking changes (a hook renamed or removed,
#: a contract method's signature changed) raise it; new optional hooks or fields do not.
API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_samplers(register):
    """Register sampler classes (see :class:`scorelab.contracts.Sampler`)."""


@hookspec
def register_objectives(register):
    """Register training objective classes (see :class:`scorelab.contracts.Objective`)."""


@hookspec
def register_models(register):
    """Register score-model builder classes (see :class:`scorelab.contracts.Model`)."""


@hookspec
def register_targets(register):
    """Register target distribution or data set classes (see :class:`scorelab.contracts.Target`)."""


@hookspec
def register_metrics(register):
    """Register sample-quality metric classes (see :class:`scorelab.contracts.Metric`)."""
