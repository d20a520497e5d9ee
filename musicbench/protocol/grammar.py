"""The protocol grammar and what a resolved protocol is: ``ProtocolSpec`` (parsed from the
``--protocol`` string, printed back the same), ``Fold``, ``Split`` and the split's content
hash. Resolving a spec against a task's clips is ``musicbench.protocol.splits``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from musicbench.errors import ConfigError
from musicbench.protocol.fewshot import DRAWS, split_suffix, suffix
from musicbench.registry import Registry
from musicbench.tasks.parts import Vocabulary

NAMED = "named"  # the kind of a task's own split lists, called by their name
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
VALIDATIONS = ("group", "stratified")  # of group-kfold; the first is the default


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]
    leakage: float = 0.0  # fraction of test tracks whose group also occurs in train
    vocabulary: Vocabulary | None = None  # multilabel tags chosen on the training part


@dataclass(frozen=True)
class Split:
    protocol: str
    folds: tuple[Fold, ...]
    hash: str
    group_field: str | None


@dataclass(frozen=True)
class ProtocolSpec:
    kind: str
    field: str | None = None
    k: int | None = None
    seed: int = 0
    path: str | None = None
    valid: str = VALIDATIONS[0]  # group-kfold: how the validation part is held out
    shots: int | None = None  # few-shot: training clips per class (``fewshot``)
    draws: int = DRAWS  # few-shot: draws per base fold

    def __str__(self) -> str:
        return self._base() + suffix(self.shots, self.draws)

    def _base(self) -> str:
        return PROTOCOLS[self.kind].text(self)


@dataclass(frozen=True)
class ProtocolKind:
    """One form of ``--protocol`` (its ``form`` in the grammar's words).

    ``parse(head, parts, spec)`` reads the string's head (what precedes the first ``:``)
    and the ``:``-separated parts after it (None where they do not fit the form); ``text``
    prints a parsed spec back the same;
    ``folds`` (a lazy ``module:function`` reference, ``(clipset, ids, spec, group_of) ->
    [Fold]``) cuts a clip set; ``own_groups``: the protocol keeps the groups of its own
    ``field`` apart, so no leakage is counted against the task's group field.
    """

    form: str
    parse: Callable[[str, list[str], str], ProtocolSpec | None]
    text: Callable[[ProtocolSpec], str]
    folds: str
    own_groups: bool = False

    @property
    def short(self) -> str:
        """The form without its optional parts: ``kfold:K``."""
        return self.form.split("[")[0].split(" ")[0]


def _int(text: str, what: str, spec: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"protocol {spec!r}: {what} {text!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"protocol {spec!r}: {what} must be >= {minimum}, got {value}")
    return value


def _official(head: str, parts: list[str], spec: str) -> ProtocolSpec | None:
    if len(parts) <= 1:
        return ProtocolSpec("official", k=_int(parts[0], "N", spec, 0) if parts else None)
    return None


def _kfold(head: str, parts: list[str], spec: str) -> ProtocolSpec | None:
    if 1 <= len(parts) <= 2:
        seed = _int(parts[1], "SEED", spec, 0) if len(parts) == 2 else 0
        return ProtocolSpec("kfold", k=_int(parts[0], "K", spec, 2), seed=seed)
    return None


def _group_kfold(head: str, parts: list[str], spec: str) -> ProtocolSpec | None:
    valid = VALIDATIONS[0]
    if parts and parts[-1].startswith("valid="):
        valid = parts.pop().removeprefix("valid=")
        if valid not in VALIDATIONS:
            raise ConfigError(f"protocol {spec!r}: valid={valid!r}; choose "
                              f"valid={' or valid='.join(VALIDATIONS)}")
    if 1 <= len(parts) <= 3 and parts[0]:
        k = _int(parts[1], "K", spec, 2) if len(parts) >= 2 else None
        seed = _int(parts[2], "SEED", spec, 0) if len(parts) == 3 else 0
        return ProtocolSpec("group-kfold", field=parts[0], k=k, seed=seed, valid=valid)
    return None


def _group_kfold_text(p: ProtocolSpec) -> str:
    tail = "" if p.k is None else f":{p.k}" + (f":{p.seed}" if p.seed else "")
    valid = "" if p.valid == VALIDATIONS[0] else f":valid={p.valid}"
    return f"group-kfold:{p.field}{tail}{valid}"


PROTOCOLS: Registry[ProtocolKind] = Registry("protocol", {
    "official": ProtocolKind(
        "official[:N]", _official, lambda p: "official" if p.k is None else f"official:{p.k}",
        "musicbench.protocol.splits:official_folds"),
    "kfold": ProtocolKind(
        "kfold:K[:SEED]", _kfold, lambda p: f"kfold:{p.k}" + (f":{p.seed}" if p.seed else ""),
        "musicbench.protocol.splits:kfold_folds"),
    "group-kfold": ProtocolKind(
        "group-kfold:FIELD[:K[:SEED]][:valid=stratified]", _group_kfold, _group_kfold_text,
        "musicbench.protocol.splits:group_kfold_folds", own_groups=True),
    "manifest": ProtocolKind(
        "manifest:PATH", lambda head, parts, spec: ProtocolSpec("manifest", path=":".join(parts)) if parts
        else None, lambda p: f"manifest:{p.path}", "musicbench.protocol.splits:manifest_folds"),
    NAMED: ProtocolKind(
        "NAME (split lists the task spec declares)",
        lambda head, parts, spec: None if parts or not _NAME.match(head) else ProtocolSpec(NAMED, path=head),
        lambda p: str(p.path), "musicbench.protocol.splits:named_folds"),
}, doc="what --protocol names: how a task's clips are cut into train, valid and test parts")


def reserved() -> list[str]:
    """The kinds' own names, which no split list of a task may take."""
    return [name for name in PROTOCOLS if name != NAMED]


def protocol_help() -> str:
    """The grammar in words, for errors and ``--help``."""
    forms = ", ".join(PROTOCOLS[name].form for name in PROTOCOLS)
    return f"{forms}, each optionally followed by :shots=K[:draws=D]"


def parse_protocol(spec: str) -> ProtocolSpec:
    """Parse a protocol string; malformed ones get a message listing the grammar."""
    base, shots, draws = split_suffix(spec.strip())
    if shots is not None:
        return replace(parse_protocol(base), shots=shots, draws=draws)
    head, _, rest = spec.strip().partition(":")
    parts = rest.split(":") if rest else []
    kind = head if head in reserved() else NAMED  # any other name: a split list of the task
    parsed = PROTOCOLS[kind].parse(head, parts, spec)
    if parsed is None:
        raise ConfigError(f"malformed protocol {spec!r}; valid forms: {protocol_help()}")
    return parsed


def split_hash(folds: list[Fold] | tuple[Fold, ...]) -> str:
    """Changes if and only if some fold's train, valid or test track ids, or its tag
    vocabulary, change."""
    payload = [[sorted(f.train), sorted(f.valid), sorted(f.test)]
               + ([list(f.vocabulary.tags)] if f.vocabulary else []) for f in folds]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]
