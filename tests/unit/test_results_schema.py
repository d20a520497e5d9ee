"""The results schema: one record layout for JSON, CSV and MLflow, and old records still read.

``fixtures/schema1-run`` is a run folder written by the version before the schema field
existed (metrics at the top level, no ``kind``), with the report that version compiled from
it (``report-landed.json``); the current code must read it and compile the same numbers.
Its ``group-kfold`` validation parts were stratified hold-outs, so its protocol now reads
back as ``group-kfold:...:valid=stratified``, apart from group-disjoint results.
"""

from __future__ import annotations

import json
import math

import pytest

from musicbench.protocol.metrics import METRICS, metrics_for, primary_metric
from musicbench.report.build import build
from musicbench.report.export import to_json
from musicbench.report.load import load_experiment, load_folders
from musicbench.results import SCHEMA_VERSION, CellRecord, ResultStore, columns
from musicbench.results.schema import protocol_of

from helpers import FIXTURES

OLD_RUN = FIXTURES / "schema1-run"


def _same(a, b, path="") -> None:
    """Deep equality of what ``a`` holds, floats within 1e-9 (NaN and None alike); ``b``
    may hold more (columns added since), and a protocol means what ``protocol_of`` says."""
    if isinstance(a, dict):
        assert set(a) <= set(b), f"{path}: keys {sorted(set(a) - set(b))}"
        if "protocol" in a:
            a = {**a, "protocol": protocol_of(a["protocol"], 1)}
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or math.isnan(a):
            assert (a is None or math.isnan(a)) and (b is None or math.isnan(b)), path
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_schema1_records_load_and_migrate():
    raw = [json.loads(p.read_text()) for p in sorted((OLD_RUN / "cells").glob("*.json"))]
    assert raw and all("schema" not in r and "accuracy" in r for r in raw)  # really the old layout
    by_key = {r.cell_key: r for r in ResultStore(OLD_RUN).records()}
    assert len(by_key) == len(raw)
    assert all(r.schema == SCHEMA_VERSION and r.kind == "multiclass" for r in by_key.values())
    for old in raw:
        rec = by_key[old["cell_key"]]
        # every multiclass metric but those narrowed to other tasks' classes (the key score)
        assert set(rec.metrics) == {m for m in metrics_for("multiclass") if METRICS[m].applies is None}
        assert all(rec.metrics[m] == old[m] for m in rec.metrics)
        assert (rec.fold, rec.system, rec.split_hash, rec.n_test) == (old["fold"], old["system"],
                                                                       old["split_hash"], old["n_test"])
        assert rec.details["confusion_matrix"] == old["details"]["confusion_matrix"]
        assert rec.protocol == old["protocol"] + ":valid=stratified"  # not mixed with group-disjoint


def test_schema2_group_kfold_records_read_as_stratified_validation_and_keep_their_hash(tmp_path):
    old = {"schema": 2, "cell_key": "k", "task": "t", "version": "1", "protocol": "group-kfold:tonic:3",
           "split_hash": "old", "system": "s", "seed": 0, "metrics": {}}
    rec = CellRecord.from_dict(old)
    assert (rec.protocol, rec.split_hash, rec.schema) == ("group-kfold:tonic:3:valid=stratified", "old",
                                                          SCHEMA_VERSION)
    assert CellRecord.from_dict({**old, "protocol": "kfold:5"}).protocol == "kfold:5"
    assert CellRecord.from_json(rec.to_json()) == rec  # written back as schema 3, read unchanged
    new = CellRecord.from_dict({**old, "schema": SCHEMA_VERSION})
    assert new.protocol == "group-kfold:tonic:3"


def test_old_records_compile_to_the_numbers_the_landed_version_compiled():
    landed = json.loads((OLD_RUN / "report-landed.json").read_text())
    now = to_json(build(load_folders([OLD_RUN]), "again", correction="none"))  # it did not correct
    for table, rows in landed.items():
        _same(rows, now[table], table)


def test_json_round_trip_and_csv_row_follow_the_metric_registry(tmp_path):
    rec = CellRecord(cell_key="k", task="t", version="1", protocol="kfold:3", system="s", seed=0, fold=1,
                     split_hash="h", kind="multilabel", status="ok",
                     metrics={"roc_auc_macro": 0.8, "pr_auc_macro": 0.5, "n_tags_dropped": 1},
                     details={"per_tag": {"a": {"roc_auc": 0.8, "pr_auc": 0.5}}}, classes=["a", "b"])
    again = CellRecord.from_json(rec.to_json())
    assert again == rec
    row = rec.row()
    assert list(row)[:len(columns())] == columns()
    assert row["roc_auc_macro"] == 0.8 and row["accuracy"] is None
    assert set(METRICS) <= set(columns())
    store = ResultStore(tmp_path)
    store.save(rec)
    assert store.records() == [rec]
    assert list(store.table().columns) == columns()


def test_mlflow_round_trip_through_a_real_store(tmp_path):
    from musicbench.results.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rec = CellRecord(cell_key="abc", task="t", version="1", protocol="kfold:3", system="s", seed=2, fold=1,
                     split_hash="h", kind="multiclass", status="ok", device="cpu", n_train=10, n_valid=2,
                     n_test=5, fit_seconds=1.5, predict_seconds=0.5, group_leakage=0.0,
                     infer_seconds_per_clip=0.25, features_seconds_per_clip=0.15, head_seconds_per_clip=0.1,
                     metrics={"accuracy": 0.6, "balanced_accuracy": 0.55, "macro_f1": 0.5},
                     params={"C": 1.0}, tuned=True, tuned_study="st", tuned_trials=7)
    tracker = Tracker("schema", uri)
    run_id = tracker.log_cell(rec, [])
    assert tracker.log_cell(rec, []) == run_id  # idempotent by cell key
    back = load_experiment("schema", uri, tmp_path / "artifacts")
    assert len(back) == 1
    row = back.iloc[0]
    for col in ("task", "version", "protocol", "system", "seed", "fold", "split_hash", "kind", "status",
                "n_train", "n_valid", "n_test", "fit_seconds", "tuned", "tuned_study", "tuned_trials",
                "infer_seconds_per_clip", "features_seconds_per_clip", "head_seconds_per_clip"):
        assert row[col] == getattr(rec, col), col
    for m, v in rec.metrics.items():
        assert row[m] == pytest.approx(v)


def test_each_kind_has_one_primary_metric_and_directions_are_declared():
    for kind in ("multiclass", "multilabel"):
        primaries = [m for m in METRICS.values() if m.primary and kind in m.kinds]
        assert len(primaries) == 1 and primary_metric(kind) == primaries[0].name
        assert metrics_for(kind)[0] == primary_metric(kind)
    assert not METRICS["n_tags_dropped"].higher_is_better


def test_records_before_schema4_read_without_the_end_to_end_cost():
    old = {"schema": 3, "cell_key": "k", "task": "t", "version": "1", "protocol": "kfold:5",
           "split_hash": "h", "system": "s", "seed": 0, "metrics": {}, "predict_seconds": 0.1}
    rec = CellRecord.from_dict(old)
    cost = (rec.infer_seconds_per_clip, rec.features_seconds_per_clip, rec.head_seconds_per_clip)
    assert cost == (None, None, None)
    assert rec.predict_seconds == 0.1 and rec.schema == SCHEMA_VERSION
    assert {"infer_seconds_per_clip", "head_seconds_per_clip"} <= set(columns())
