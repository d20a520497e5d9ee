"""One registry type for every extension point: families, metrics, tables, protocols, ...

An entry is an object or a lazy ``"module:attr"`` reference, imported on first lookup, so
a family whose optional package is missing breaks only where it is used, and listing the
names (``musicbench list``) imports nothing. A lookup of an unknown name raises
``UnknownNameError`` listing the valid ones. A higher layer registers its entries in a
lower layer's registry through ``extend`` (from ``musicbench.extensions``), so a lower
layer never names a module above it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from musicbench.errors import ConfigError, UnknownNameError

T = TypeVar("T")

#: every registry by kind, in order of creation, for ``musicbench list`` and the contracts
REGISTRIES: dict[str, Registry] = {}
_PENDING: dict[str, dict[str, str]] = {}  # entries for a registry whose module is not imported yet


def is_reference(target: object) -> bool:
    """A lazy ``"package.module:attr"`` string, as opposed to a registered object."""
    return isinstance(target, str) and ":" in target and " " not in target


def resolve(target: Any) -> Any:
    """``target`` itself, or the object a lazy ``module:attr`` reference names, imported now."""
    if not is_reference(target):
        return target
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry of one ``kind`` (``"system family"``, ``"metric"``, ...).

    A Mapping: ``registry[name]`` resolves a lazy entry (once), ``name in registry`` and
    ``names()`` do not import anything.
    """

    def __init__(self, kind: str, entries: Mapping[str, T | str] | None = None, doc: str = ""):
        if kind in REGISTRIES:
            raise ConfigError(f"a registry of {kind!r} already exists")
        self.kind, self.doc = kind, doc
        self._entries: dict[str, T | str] = {}
        self._references: dict[str, str] = {}  # lazy entries' references, kept once resolved
        for name, target in {**(entries or {}), **_PENDING.pop(kind, {})}.items():
            self.register(name, target)
        REGISTRIES[kind] = self

    def register(self, name: str, target: T | str | None = None) -> Any:
        """Add ``target`` under ``name``; without a target, a decorator that adds what it decorates."""
        if target is None:
            def decorate(obj: T) -> T:
                self.register(name, obj)
                return obj
            return decorate
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is registered twice "
                              f"({self.source(name)} and {_describe(target)})")
        self._entries[name] = target
        if is_reference(target):
            self._references[name] = target
        return target

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        target = self._entries[name]
        if is_reference(target):
            target = self._entries[name] = resolve(target)
        return target

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The registered names, sorted, without importing any entry."""
        return sorted(self._entries)

    def source(self, name: str) -> str:
        """Where an entry lives (``module:attr``), without importing it."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        return self._references.get(name) or _describe(self._entries[name])

    def summary(self, name: str) -> str:
        """One line on what an entry is: its ``description``, ``doc`` or ``form``, else the
        first sentence of its docstring (the entry is imported)."""
        entry = self[name]
        for attr in ("form", "description", "doc"):
            text = getattr(entry, attr, None)
            if isinstance(text, str) and text:
                return text
        doc = entry.__doc__ if isinstance(entry, type) else None
        if not doc:
            return ""
        paragraph = " ".join(doc.strip().split("\n\n")[0].split())
        return paragraph.split(". ")[0].rstrip(".") + "."  # its first sentence

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _describe(target: object) -> str:
    """``module:name`` of a class or function; an instance's module (where it was declared)."""
    if is_reference(target):
        return str(target)
    name = getattr(target, "__qualname__", None)
    return f"{target.__module__}:{name}" if name else type(target).__module__


def extend(kind: str, entries: Mapping[str, str]) -> None:
    """Lazy entries for the registry of ``kind``, now or when its module creates it."""
    if kind in REGISTRIES:
        for name, target in entries.items():
            REGISTRIES[kind].register(name, target)
    else:
        _PENDING.setdefault(kind, {}).update(entries)
