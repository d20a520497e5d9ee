"""The cell record: what one cell (task x protocol x fold x system x seed x augmentation x
deformation) produced, and its one serialisation to JSON, to a CSV row and to MLflow.

The runner, the store, MLflow logging, the report tables and the gate all read and write
cells through ``CellRecord``; nothing else knows the layout. Records carry ``schema``;
``from_dict`` reads every earlier layout (schema 1, written before this field existed,
kept the metrics at the top level and no ``kind``; up to schema 2, ``group-kfold``
validation parts were stratified, shared groups with training and now read back as
``group-kfold:...:valid=stratified``), so no stored result is lost or mixed up by an
upgrade. Schema 4 added the end-to-end inference cost per clip
(``infer_seconds_per_clip`` and its parts); records written before read back with it
absent (None), since it was never measured for them. Metric columns come from the
metric registry (``musicbench.protocol.metrics``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from musicbench.protocol.metrics import METRICS, all_metric_names, metrics_for

SCHEMA_VERSION = 4
CELL_TAG = "musicbench.cell_key"

#: fields kept as structures, not CSV columns; ``metrics`` is spread into one column per metric
STRUCTURED = ("params", "classes", "details", "predictions", "schema")
#: the record's numbers MLflow keeps as metrics, besides the registered ones
MLFLOW_METRICS = ("fit_seconds", "predict_seconds", "extract_seconds", "infer_seconds_per_clip",
                  "features_seconds_per_clip", "head_seconds_per_clip", "group_leakage", "n_bad_tracks")
#: what MLflow keeps as run parameters (besides the system's own parameters)
MLFLOW_PARAMS = ("task", "version", "protocol", "fold", "system", "seed", "augment", "deform", "kind",
                 "tuned", "tuned_study", "tuned_trials", "tuned_kind", "n_train", "n_valid", "n_test")

#: what MLflow keeps of each encoder card
ENCODER_CARD_PARAMS = ("licence", "source", "weights_digest")


def columns() -> list[str]:
    """The results table's columns, in order (``results.csv``): the record's fields, with
    one column per registered metric where ``metrics`` stands."""
    out: list[str] = []
    for f in fields(CellRecord):
        if f.name == "metrics":
            out += all_metric_names()
        elif f.name not in STRUCTURED:
            out.append(f.name)
    return out


@dataclass(kw_only=True)
class CellRecord:
    """One attempt at one cell. ``status`` is ``ok`` or ``failed`` (read back as
    ``superseded`` where later work made a failure stale); a failed cell keeps its
    ``error`` (and a traceback in ``details``). ``fold`` is -1 where the protocol could not
    even be resolved. ``metrics`` holds the registered metrics of the task's ``kind``.
    Field order is the order of the results table's columns: a new field is a new column."""

    task: str
    version: str | None
    protocol: str
    split_hash: str = ""
    fold: int = -1
    system: str
    seed: int
    augment: str = "none"
    deform: str = "none"
    status: str = "failed"
    kind: str | None = None
    n_train: int | None = None
    n_valid: int | None = None
    n_test: int | None = None
    n_tracks_used: int | None = None
    n_tracks_index: int | None = None
    n_bad_tracks: int | None = None  # damaged files left out (--on-bad-track skip)
    bad_tracks: str | None = None  # their ids, space-separated
    group_leakage: float | None = None
    fit_seconds: float | None = None  # fitting, less feature extraction
    predict_seconds: float | None = None  # scoring, less feature extraction
    extract_seconds: float | None = None  # feature extraction this cell paid for (cache misses)
    # end-to-end inference cost of one test clip, cache hit or not: decoding and front ends
    # or encoders (as recorded when their cache entries were computed) plus the head
    infer_seconds_per_clip: float | None = None
    features_seconds_per_clip: float | None = None  # decode + front ends / encoders
    head_seconds_per_clip: float | None = None  # scoring less extraction, per clip
    metrics: dict[str, float] = field(default_factory=dict)
    tuned: bool = False
    tuned_study: str | None = None
    tuned_trials: int | None = None
    tuned_kind: str | None = None  # "per-fold" (nested: each fold its own study) or "shared"
    device: str | None = "cpu"
    error: str | None = None
    cell_key: str
    mlflow_run_id: str | None = None
    finished_at: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    predictions: str | None = None  # per-track scores, relative to the run folder
    schema: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    # -- JSON (the cell file) -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_jsonable)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellRecord:
        """A record from any stored layout (migrating older schemas)."""
        data = dict(data)
        schema = data.get("schema", 1)
        if schema < 2:
            data = _migrate_v1(data)
        data["protocol"] = protocol_of(data["protocol"], schema)
        if data.get("tuned") and not data.get("tuned_kind"):
            data["tuned_kind"] = "shared"  # one study over every fold was the only kind
        data["schema"] = SCHEMA_VERSION
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> CellRecord:
        return cls.from_dict(json.loads(text))

    # -- CSV row / report table -----------------------------------------------------------
    def row(self) -> dict[str, Any]:
        """Flat: every column of ``columns()``, plus ``classes``, ``details``, ``predictions``."""
        flat = {k: v for k, v in self.to_dict().items() if k not in ("metrics", "params", "schema")}
        return {**{c: None for c in columns()}, **flat, **self.metrics}

    # -- MLflow ---------------------------------------------------------------------------
    def run_name(self) -> str:
        return "|".join(str(getattr(self, k)) for k in ("task", "protocol", "fold", "system", "seed"))

    def mlflow_params(self) -> dict[str, str]:
        """The system's parameters, the cell's identity, and the provenance (licence,
        source, weight digest) of every encoder the system used."""
        flat = {**self.params, **{k: getattr(self, k) for k in MLFLOW_PARAMS}}
        for card in self.encoder_cards():
            flat.update({f"encoder.{card['name']}.{k}": card[k] for k in ENCODER_CARD_PARAMS if k in card})
        return {k: str(v)[:6000] for k, v in flat.items()}

    def encoder_cards(self) -> list[dict[str, Any]]:
        """The cards of the encoders the system used (``training_report()["encoders"]``)."""
        return list((self.details.get("training") or {}).get("encoders") or [])

    def mlflow_tags(self) -> dict[str, str]:
        tags = {CELL_TAG: self.cell_key, "mlflow.runName": self.run_name(), "split_hash": self.split_hash,
                "device": str(self.device), "status": self.status, "schema": str(self.schema)}
        if self.error:
            tags["error"] = self.error
        if self.finished_at:
            tags["finished_at"] = self.finished_at
        return tags

    def mlflow_metrics(self) -> list[tuple[str, float, int]]:
        """(key, value, step): the registered metrics, counts and timings, then the training
        curves of neural systems per epoch."""
        out = [(k, float(v), 0) for k, v in self.metrics.items() if v is not None]
        out += [(k, float(getattr(self, k)), 0) for k in MLFLOW_METRICS if getattr(self, k) is not None]
        training = self.details.get("training") or {}
        for row in training.get("history", []):
            step = int(row.get("epoch", 0))
            out += [(f"epoch.{k}", float(v), step) for k, v in row.items()
                    if k != "epoch" and isinstance(v, (int, float)) and v == v]
        out += [(k, float(training[k]), 0) for k in ("best_epoch", "n_parameters") if k in training]
        return out

    @classmethod
    def from_mlflow(cls, params: dict[str, str], tags: dict[str, str], metrics: dict[str, float],
                    run_id: str, finished: bool) -> CellRecord | None:
        """The record logged as an MLflow run (None for runs that are not cells)."""
        key = tags.get(CELL_TAG)
        if key is None or "task" not in params:
            return None
        kind = params.get("kind") or _kind_of(metrics)
        status = "ok" if tags.get("status", "ok") == "ok" and finished else "failed"
        return cls(
            cell_key=key, task=params["task"], version=_none(params.get("version")),
            protocol=protocol_of(params["protocol"], int(tags.get("schema", 1))),
            fold=int(params["fold"]), system=params["system"],
            seed=int(params["seed"]), augment=params.get("augment", "none"),
            deform=params.get("deform", "none"), kind=kind, status=status, error=tags.get("error"),
            device=tags.get("device"), tuned=params.get("tuned") == "True",
            tuned_study=_none(params.get("tuned_study")),
            tuned_trials=_int(params.get("tuned_trials")),
            tuned_kind=_none(params.get("tuned_kind")),
            split_hash=tags.get("split_hash", ""),
            n_train=_int(params.get("n_train")), n_valid=_int(params.get("n_valid")),
            n_test=_int(params.get("n_test")),
            fit_seconds=metrics.get("fit_seconds"), predict_seconds=metrics.get("predict_seconds"),
            extract_seconds=metrics.get("extract_seconds"),
            **{k: metrics.get(k) for k in ("infer_seconds_per_clip", "features_seconds_per_clip",
                                          "head_seconds_per_clip")},
            n_bad_tracks=_int(metrics.get("n_bad_tracks")),
            group_leakage=metrics.get("group_leakage"),
            metrics={k: v for k, v in metrics.items() if k in METRICS},
            mlflow_run_id=run_id, finished_at=tags.get("finished_at"),
        )


def protocol_of(protocol: str, schema: int) -> str:
    """The protocol name a record of ``schema`` means today: before schema 3 a
    ``group-kfold`` validation part was a stratified hold-out sharing groups with training."""
    if schema < 3 and protocol.startswith("group-kfold:") and ":valid=" not in protocol:
        return f"{protocol}:valid=stratified"
    return protocol


def _kind_of(metrics: dict[str, Any]) -> str | None:
    """The task kind whose metrics a record holds (schema 1 records did not say)."""
    for kind in ("multiclass", "multilabel"):
        if any(metrics.get(m) is not None for m in metrics_for(kind)):
            return kind
    return None


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1: metrics at the top level, no ``kind``, no ``schema``."""
    metrics = {k: data.pop(k) for k in list(data) if k in METRICS}
    data["metrics"] = {k: v for k, v in metrics.items() if v is not None}
    data.setdefault("kind", _kind_of(metrics))
    data["details"] = data.get("details") or {}
    return data


def _none(text: str | None) -> str | None:
    return None if text in (None, "None") else text


def _int(text: str | None) -> int | None:
    return None if text in (None, "None", "") else int(float(text))


def _jsonable(obj: Any) -> Any:
    """numpy scalars and arrays in details become plain JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
