"""What the literature gives a task: its split lists, its published figures and the known
faults of some protocols on it, declared in the task spec.

```toml
[protocols.fault-filtered]          # --protocol fault-filtered
lists = "splits/gtzan_genre/fault-filtered"   # train.txt, valid.txt, test.txt
version = "1.0"                     # the version the lists were made for
source = "Kereliuk, Sturm and Larsen 2015"

[protocol_warnings]                 # by protocol kind (kfold, group-kfold, official) or name
kfold = "random folds put one artist's songs on both sides (Sturm 2013): optimistic"

[[reference]]                       # shown beside measured rows, never tested against them
system = "Musicnn (Pons et al. 2018)"
metric = "roc_auc_macro"
value = 0.9106
protocol = "top50"
source = "Won et al. 2020, SMC, Table 2"
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError

PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class NamedProtocol:
    """A split given as lists of track ids or audio paths (one per line, ``#`` comments),
    shipped with the task spec or the user's own. ``version``: the version whose index the
    lists were made for; there every entry must name a track of the index, on other
    versions (a subset such as ``mini``) the lists are cut to the tracks they have."""

    name: str
    lists: Path
    version: str | None = None
    source: str = ""

    def files(self) -> dict[str, Path]:
        return {part: self.lists / f"{part}.txt" for part in PARTS}


@dataclass(frozen=True)
class ReferenceFigure:
    """A published figure: who scored what under which protocol, and where it is printed."""

    system: str
    metric: str
    value: float
    protocol: str
    source: str
    note: str = ""


def read_list(path: Path) -> list[str]:
    """The entries of a split list: non-empty lines that are not ``#`` comments."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def parse_protocols(data: dict[str, Any], where: str, base: Path) -> dict[str, NamedProtocol]:
    out = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or "lists" not in entry:
            raise ConfigError(f"task spec {where}: [protocols.{name}] needs lists = FOLDER (holding "
                              f"{', '.join(p + '.txt' for p in PARTS)})")
        unknown = sorted(set(entry) - {"lists", "version", "source"})
        if unknown:
            raise ConfigError(f"task spec {where}: [protocols.{name}] has unknown key(s) {unknown}; "
                              "valid: lists, version, source")
        folder = Path(entry["lists"]).expanduser()
        out[name] = NamedProtocol(name, folder if folder.is_absolute() else base / folder,
                                  entry.get("version"), entry.get("source", ""))
    return out


def parse_references(data: list[dict[str, Any]], where: str) -> tuple[ReferenceFigure, ...]:
    fields = set(ReferenceFigure.__dataclass_fields__)
    required = fields - {"note"}
    out = []
    for i, entry in enumerate(data):
        missing, unknown = sorted(required - set(entry)), sorted(set(entry) - fields)
        if missing or unknown or not isinstance(entry.get("value"), int | float):
            raise ConfigError(f"task spec {where}: [[reference]] {i + 1} needs {', '.join(sorted(required))} "
                              f"(value a number); missing {missing}, unknown {unknown}")
        out.append(ReferenceFigure(**{**entry, "value": float(entry["value"])}))
    return tuple(out)
