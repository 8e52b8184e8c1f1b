"""The plugin host: loads entry points of group ``scorelab`` one by one, and owns ``register``.

Every plugin, the built-ins included, arrives the same way. The host normalises names, keeps
the first provider of a name (built-ins load first, so no plugin can switch one off) and records an
error naming both on the later one, checks each class against its contract, and keeps going when a
plugin is broken: the error is recorded, shown by ``scorelab plugins``, and that plugin is skipped.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .contracts import KINDS, contract_problems, declared_name
from .errors import unknown_choice

HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}


def normalise(name: str) -> str:
    """Plugin names are compared in one form: lower case, '_' for '-' and spaces."""
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def _key(kind: str, cls: Any, name: str | None) -> str:
    """The name a class registers under: the one given to ``register``, else the one it declares (a
    declaration that is not a string is reported by the contract check), else its class name in snake_case."""
    name = name or declared_name(kind, cls)
    return normalise(name or re.sub(r"(?<!^)(?=[A-Z])", "_", getattr(cls, "__name__", type(cls).__name__)))


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``scorelab plugins`` shows it."""

    name: str
    package: str | None = None
    version: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    selected_only: bool = False  # a name the plugins to load were limited to, which no plugin has

    @property
    def provider(self) -> str:
        pkg = f" ({self.package} {self.version})" if self.package else ""
        return f"'{self.name}'{pkg}"


@dataclass
class Entry:
    kind: str
    name: str
    cls: type
    plugin: PluginInfo


class PluginHost:
    """A registry of plugin classes by kind and name. Tests make a fresh one each."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.limited_by = ""  # SCORELAB_LOAD_PLUGINS=..., when it chose what was loaded
        if os.environ.get("SCORELAB_TRACE_PLUGINS"):  # every hook call, and the plugins it reaches
            self.pm.add_hookcall_monitoring(
                lambda hook, impls, kwargs: print(
                    f"scorelab: {hook} -> {[impl.plugin_name for impl in impls]}", file=sys.stderr),
                lambda outcome, hook, impls, kwargs: None)

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self, only: set[str] | None = None) -> PluginHost:
        """Load every installed plugin (or those named in ``only``, by entry point or package name)."""
        if only is None and os.environ.get("SCORELAB_LOAD_PLUGINS"):
            only = {normalise(n) for n in os.environ["SCORELAB_LOAD_PLUGINS"].split(",") if n.strip()}
            self.limited_by = f"SCORELAB_LOAD_PLUGINS={os.environ['SCORELAB_LOAD_PLUGINS']}"
        eps = importlib.metadata.entry_points(group=hookspecs.PROJECT)
        if only is not None:  # a name that selects nothing is a mistake, said as a plugin's error
            installed = {normalise(n) for ep in eps for n in (ep.name, ep.dist.name if ep.dist else "") if n}
            for name in sorted(only - installed):
                info = PluginInfo(name, None, None, selected_only=True)
                listed = ", ".join(sorted(ep.name for ep in eps))
                info.errors.append(f"{self.limited_by or 'the plugins to load'} names '{name}', which is no installed "
                                   f"plugin's entry point or package; installed: {listed}")
                self.plugins.append(info)
        # Built-ins first, so a clash always names the third party as the second provider.
        for ep in sorted(eps, key=lambda e: (e.name != "builtins", e.name)):
            package = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            if only is not None and not ({normalise(ep.name), normalise(package or "")} & only):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin is reported, never fatal
                info = PluginInfo(ep.name, package, version)
                info.errors.append(f"failed to import {ep.value}: {_summary(exc)}")
                self.plugins.append(info)
                continue
            self.add(module, ep.name, package, version)
        return self

    def add(self, plugin: Any, name: str, package: str | None = None, version: str | None = None) -> PluginInfo:
        """Register one plugin object (a module, or any object with hookimpls) and collect its classes."""
        info = PluginInfo(name, package, version)
        self.plugins.append(info)
        declared = getattr(plugin, "SCORELAB_API_VERSION", hookspecs.API_VERSION)
        if not isinstance(declared, int) or declared != hookspecs.API_VERSION:
            info.errors.append(
                f"written for scorelab hook API version {declared!r}, this scorelab has version "
                f"{hookspecs.API_VERSION}; update the plugin (docs/plugins.md lists what changed)"
            )
            return info
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:  # misspelled hook, bad signature
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.errors.append(_summary(exc))
            return info
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        for kind, hook in HOOK_OF_KIND.items():
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
            try:
                caller(register=lambda cls, name=None, _kind=kind: self._register(_kind, cls, name, info))
            except Exception as exc:
                info.errors.append(f"{hook} raised {_summary(exc)}")
        return info

    def _register(self, kind: str, cls: Any, name: str | None, info: PluginInfo) -> None:
        key = _key(kind, cls, name)
        problems = contract_problems(kind, cls)
        if problems:
            label = getattr(cls, "__name__", repr(cls))
            info.errors.append(f"{kind} '{key}' ({label}) rejected: " + "; ".join(problems))
            return
        existing = self._entries[kind].get(key)
        if existing is not None:
            info.errors.append(f"{kind} '{key}' is registered by both {existing.plugin.provider} and "
                               f"{info.provider}; the first is kept, so rename the second")
            return
        self._entries[kind][key] = Entry(kind, key, cls, info)
        info.registered.setdefault(kind, []).append(key)

    # -- lookup --------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entry(self, kind: str, name: str) -> Entry:
        key = normalise(name)
        if key not in self._entries[kind]:
            broken = [f"{p.provider}: {p.errors[0]}" for p in self.plugins
                      if p.errors and not p.registered and not p.selected_only]
            hint = f" (plugins that failed to load, which may provide it: {'; '.join(broken)})" if broken else ""
            if self.limited_by:
                hint += f" ({self.limited_by} loads only the plugins it names; unset it to load every installed one)"
            raise KeyError(unknown_choice(kind, name, self._entries[kind]) + hint)
        return self._entries[kind][key]

    def get(self, kind: str, name: str) -> type:
        return self.entry(kind, name).cls

    def listing(self) -> list[dict[str, Any]]:
        """What ``scorelab plugins --json`` prints."""
        import dataclasses

        from .describe import parameters

        def described(kind: str, names: list[str]) -> dict:
            return {n: [dataclasses.asdict(p) for p in parameters(self._entries[kind][n].cls)] for n in names}

        return [
            {"name": p.name, "package": p.package, "version": p.version, "registers": p.registered,
             "parameters": {kind: described(kind, names) for kind, names in p.registered.items()}, "errors": p.errors}
            for p in self.plugins
        ]


def _summary(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


_HOST: PluginHost | None = None


def host() -> PluginHost:
    """The process-wide host, loaded lazily on first use and only once."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost().load_entry_points()
    return _HOST
