"""The protocol grammar and what a resolved protocol is: ``ProtocolSpec`` (parsed from the
``--protocol`` string, printed back the same), ``Fold``, ``Split`` and the split's content
hash. Resolving a spec against a task's clips is ``musicbench.protocol.splits``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from musicbench.errors import ConfigError
from musicbench.protocol.fewshot import DRAWS, split_suffix, suffix
from musicbench.tasks.parts import Vocabulary

PROTOCOL_HELP = ("official[:N], kfold:K[:SEED], group-kfold:FIELD[:K[:SEED]][:valid=stratified], "
                 "manifest:PATH, NAME (split lists the task spec declares), each optionally followed by "
                 ":shots=K[:draws=D]")
RESERVED = ("official", "kfold", "group-kfold", "manifest")
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
        if self.kind == "official":
            return "official" if self.k is None else f"official:{self.k}"
        if self.kind == "manifest":
            return f"manifest:{self.path}"
        if self.kind == "named":
            return str(self.path)
        if self.kind == "kfold":
            return f"kfold:{self.k}" + (f":{self.seed}" if self.seed else "")
        tail = "" if self.k is None else f":{self.k}" + (f":{self.seed}" if self.seed else "")
        valid = "" if self.valid == VALIDATIONS[0] else f":valid={self.valid}"
        return f"group-kfold:{self.field}{tail}{valid}"


def _int(text: str, what: str, spec: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"protocol {spec!r}: {what} {text!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"protocol {spec!r}: {what} must be >= {minimum}, got {value}")
    return value


def parse_protocol(spec: str) -> ProtocolSpec:
    """Parse a protocol string; malformed ones get a message listing the grammar."""
    base, shots, draws = split_suffix(spec.strip())
    if shots is not None:
        return replace(parse_protocol(base), shots=shots, draws=draws)
    head, _, rest = spec.strip().partition(":")
    parts = rest.split(":") if rest else []
    if head == "official" and len(parts) <= 1:
        return ProtocolSpec("official", k=_int(parts[0], "N", spec, 0) if parts else None)
    if head == "kfold" and 1 <= len(parts) <= 2:
        seed = _int(parts[1], "SEED", spec, 0) if len(parts) == 2 else 0
        return ProtocolSpec("kfold", k=_int(parts[0], "K", spec, 2), seed=seed)
    if head == "group-kfold" and parts and parts[-1].startswith("valid="):
        valid = parts.pop().removeprefix("valid=")
        if valid not in VALIDATIONS:
            raise ConfigError(f"protocol {spec!r}: valid={valid!r}; choose "
                              f"valid={' or valid='.join(VALIDATIONS)}")
    else:
        valid = VALIDATIONS[0]
    if head == "group-kfold" and 1 <= len(parts) <= 3 and parts[0]:
        k = _int(parts[1], "K", spec, 2) if len(parts) >= 2 else None
        seed = _int(parts[2], "SEED", spec, 0) if len(parts) == 3 else 0
        return ProtocolSpec("group-kfold", field=parts[0], k=k, seed=seed, valid=valid)
    if head == "manifest" and rest:
        return ProtocolSpec("manifest", path=rest)
    if not parts and head not in RESERVED and _NAME.match(head):
        return ProtocolSpec("named", path=head)
    raise ConfigError(f"malformed protocol {spec!r}; valid forms: {PROTOCOL_HELP}")


def split_hash(folds: list[Fold] | tuple[Fold, ...]) -> str:
    """Changes if and only if some fold's train, valid or test track ids, or its tag
    vocabulary, change."""
    payload = [[sorted(f.train), sorted(f.valid), sorted(f.test)]
               + ([list(f.vocabulary.tags)] if f.vocabulary else []) for f in folds]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]
