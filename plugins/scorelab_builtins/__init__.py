"""scorelab's built-in plugins, registered through the ``scorelab`` entry point like any other."""

from scorelab.hookspecs import hookimpl

SCORELAB_API_VERSION = 1


@hookimpl
def register_samplers(register):
    from .samplers import SAMPLERS

    for cls in SAMPLERS:
        register(cls)


@hookimpl
def register_objectives(register):
    from .objectives import OBJECTIVES

    for cls in OBJECTIVES:
        register(cls)


@hookimpl
def register_models(register):
    from .models import MODELS

    for cls in MODELS:
        register(cls)


@hookimpl
def register_targets(register):
    from .targets import TARGETS

    for cls in TARGETS:
        register(cls)


@hookimpl
def register_metrics(register):
    from .metrics import METRICS

    for cls in METRICS:
        register(cls)
