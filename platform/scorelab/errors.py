"""Errors a user is meant to read: each names where the problem is and what would be valid."""

from __future__ import annotations

import difflib


class ScorelabError(Exception):
    """Base of every error scorelab raises on purpose."""


class ConfigError(ScorelabError):
    """A config file is wrong. The message names the file, the key path and the valid choices."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file, self.key, self.reason = file, key, message
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(ScorelabError):
    """A plugin broke its contract (raised at load time, naming the plugin)."""


def unknown_choice(kind: str, name: str, choices, among: str | None = None) -> str:
    """"unknown sampler 'langevn'; did you mean 'langevin'? Registered samplers: a, b, c". ``among``
    says what the choices are where they are not the registered plugins of a kind ("This
    comparison's rows")."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean '{close[0]}'? " if close else ". "
    listed = ", ".join(choices) if choices else "(none)" if among else "(none registered)"
    return f"unknown {kind} '{name}'{hint}{among or f'Registered {kind}s'}: {listed}"
