"""Contract: every registered report table is computed, rendered to Markdown and HTML (where
it has a section), written to CSV (where declared) and to JSON. A new table registered in
``musicbench.report.registry`` is covered here with no new test code."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest

from musicbench.protocol.metrics import evaluate
from musicbench.report.build import build
from musicbench.report.export import write_report
from musicbench.report.load import load_folders
from musicbench.report.registry import TABLES, sections
from musicbench.results import CellRecord, ResultStore
from musicbench.runtime import atomic_write

CLASSES, TAGS = ["a", "b", "c"], ["calm", "dark", "happy"]


def _save(store: ResultStore, rec: CellRecord, y: np.ndarray, scores: np.ndarray,
          classes: list[str]) -> None:
    result = evaluate(rec.kind, y, scores, classes)
    ids = [f"{rec.split_hash}-{rec.fold}-{i}" for i in range(len(y))]
    if rec.kind == "clustering":
        preds = pd.DataFrame({"track_id": ids, "label": [classes[t] for t in y], "cluster": scores.argmax(1)})
    elif rec.kind == "multiclass":
        preds = pd.DataFrame({"track_id": ids, "label": [classes[t] for t in y],
                              "prediction": [classes[p] for p in scores.argmax(1)]})
    else:
        labels = ["|".join(t for t, v in zip(classes, r, strict=True) if v) for r in y]
        preds = pd.DataFrame({"track_id": ids, "label": labels})
    for j, c in enumerate(classes):
        preds[f"score:{c}"] = scores[:, j]
    rec.predictions = f"predictions/{rec.cell_key}.csv"
    atomic_write(store.root / rec.predictions, preds.to_csv(index=False))
    rec.details = {k: v for k, v in result.items() if isinstance(v, (dict, list))}
    rec.metrics = {k: v for k, v in result.items() if k not in rec.details}
    rec.classes, rec.status, rec.finished_at = classes, "ok", "2026-01-01T00:00:00"
    store.save(rec)


TOY_SPEC = """
dataset = "toy"
version = "1"
source = "synthetic"
kind = "multiclass"

[protocol_warnings]
kfold = "toy folds repeat clips across parts"

[[reference]]
system = "Paper A"
metric = "accuracy"
value = 0.71
protocol = "kfold:3"
source = "A et al. 2020, Table 1"

[[reference]]
system = "Paper B"
metric = "accuracy"
value = 0.65
protocol = "official"
source = "B et al. 2021, Table 2"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Results that give every table rows: two systems with augmentation x deformation
    variants, a clustering of the same split, few-shot runs of its protocol, a second task
    they also ran on, a multilabel task, a split mismatch, a failed cell and a stale one. The
    toy task's spec (in a workspace) has published figures, one under the table's protocol
    and one under another, and a known fault of ``kfold``."""
    workspace = tmp_path_factory.mktemp("toy-workspace")
    (workspace / "datasets").mkdir()
    (workspace / "datasets" / "toy.toml").write_text(TOY_SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICBENCH_WORKSPACE", str(workspace))
        yield _results(tmp_path_factory)


def _results(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    store, rng = ResultStore(root), np.random.default_rng(0)
    n = 30
    for fold in range(3):
        y = np.arange(n) % 3
        for system, skill in (("good", 0.9), ("weak", 0.5)):
            for augment in ("none", "noise"):
                for deform in ("none", "pitch:2"):
                    right = rng.random(n) < skill - (0.1 if deform != "none" else 0.0)
                    pred = np.where(right, y, (y + 1) % 3)
                    rec = CellRecord(cell_key=f"{system}-{augment}-{deform}-{fold}", task="toy",
                                     version="1", protocol="kfold:3", system=system, seed=0, fold=fold,
                                     split_hash="h1", augment=augment, deform=deform, kind="multiclass",
                                     n_train=60, n_test=n, n_tracks_used=90, n_tracks_index=90,
                                     group_leakage=0.0, fit_seconds=1.0 + skill, predict_seconds=0.1)
                    _save(store, rec, y, np.eye(3)[pred] + 0.01 * rng.random((n, 3)), CLASSES)
        right = rng.random(n) < 0.7  # clusters numbered like the classes, where right
        rec = CellRecord(cell_key=f"clusters-{fold}", task="toy", version="1", protocol="kfold:3",
                         system="clusters", seed=0, fold=fold, split_hash="h1", kind="clustering", n_train=60,
                         n_test=n, fit_seconds=0.0, predict_seconds=0.1)
        _save(store, rec, y, np.eye(3)[np.where(right, y, (y + 1) % 3)], CLASSES)
        for (system, shots), skill in np.ndenumerate(np.array([[0.5, 0.7], [0.4, 0.5]])):
            system, shots = ("good", "weak")[system], (1, 5)[shots]  # few-shot: base fold x 2 draws
            for draw in range(2):
                right = rng.random(n) < skill
                rec = CellRecord(cell_key=f"{system}-shots{shots}-{fold}-{draw}", task="toy", version="1",
                                 protocol=f"kfold:3:shots={shots}", system=system, seed=0,
                                 fold=2 * fold + draw, split_hash=f"s{shots}", kind="multiclass",
                                 n_train=3 * shots, n_test=n, fit_seconds=0.1, predict_seconds=0.1)
                _save(store, rec, y, np.eye(3)[np.where(right, y, (y + 1) % 3)], CLASSES)
        for system, skill in (("good", 0.8), ("weak", 0.6)):  # a second task for the cross-task tables
            right = rng.random(n) < skill
            rec = CellRecord(cell_key=f"{system}-toy2-{fold}", task="toy2", version="1", protocol="kfold:3",
                             system=system, seed=0, fold=fold, split_hash="t2", kind="multiclass",
                             n_train=60, n_test=n, fit_seconds=1.0, predict_seconds=0.1)
            _save(store, rec, y, np.eye(3)[np.where(right, y, (y + 1) % 3)], CLASSES)
        rec = CellRecord(cell_key=f"other-{fold}", task="toy", version="1", protocol="kfold:3",
                         system="other", seed=0, fold=fold, split_hash="h2", kind="multiclass", n_train=50,
                         n_test=n, n_tracks_used=80, n_tracks_index=90, fit_seconds=1.0, predict_seconds=0.1)
        _save(store, rec, y, np.eye(3)[y], CLASSES)
        ml = (rng.random((n, 3)) < 0.4).astype(int)
        ml[0], ml[1] = 1, 0
        for system, noise in (("tagger", 0.3), ("random", 3.0)):
            rec = CellRecord(cell_key=f"{system}-ml-{fold}", task="moods", version="1",
                             protocol="official", system=system, seed=0, fold=fold, split_hash="m",
                             kind="multilabel", n_train=60, n_test=n, fit_seconds=1.0, predict_seconds=0.1)
            _save(store, rec, ml, ml + noise * rng.random(ml.shape), TAGS)
    store.save(CellRecord(cell_key="broken", task="toy", version="1", protocol="group-kfold:x",
                          system="good", seed=0, kind="multiclass", error="ConfigError: no field 'x'"))
    store.save(CellRecord(cell_key="stale", task="toy", version="1", protocol="kfold:3", system="good",
                          seed=0, kind="multiclass", error="DataError: 1 track missing",
                          finished_at="2025-01-01T00:00:00"))  # resolved by the folds run later
    return load_folders([root])


@pytest.fixture(scope="module")
def report(results):
    return build(results, "tables", reference_system="weak")


@pytest.mark.parametrize("name", list(TABLES))
def test_every_registered_table_is_compiled_rendered_and_exported(name, report, tmp_path):
    entry = TABLES[name]
    table = report[name]
    assert len(table) > 0, f"the fixture gives {name} no rows"
    written = write_report(report, tmp_path, ["md", "html", "csv", "json"])
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data[name]) == len(table)
    assert (tmp_path / f"{name}.csv" in written) == entry.csv
    if entry.csv:
        assert len(pd.read_csv(tmp_path / f"{name}.csv")) == len(table)
    if entry.section is not None:
        section = entry.section(report, False)
        assert section is not None and section.blocks
        assert section in sections(report, figures=False)
        md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
        for block in section.blocks:
            assert block.title in md
            assert block.title in page or html.escape(block.title) in page


def test_the_printed_leaderboard_holds_the_brief_tables_only(results):
    from musicbench.report.leaderboard import to_markdown

    brief = build(results, "brief", brief=True)
    assert set(brief.tables) == {n for n, t in TABLES.items() if t.brief} == {
        "leaderboard", "published", "protocol_faults", "split_mismatches", "failed", "stale"}
    text = to_markdown(results)
    assert "Failed cells" in text and "Split mismatches" in text and "Per class" not in text
    assert "1 earlier failed record(s) ignored" in text
    assert "Paper A (published)" in text and "Known fault of kfold:3 on toy" in text


def test_published_figures_are_rows_of_their_protocol_only_and_never_tested(report):
    from musicbench.report.display import PUBLISHED, leaderboard_section

    blocks = {b.title: b for b in leaderboard_section(report).blocks}
    toy = blocks["toy:1 — kfold:3 (split h1)"]
    ref = [r for r in toy.rows if r[0] == PUBLISHED]
    assert [r[1] for r in ref] == ["Paper A (published)"]  # Paper B was measured under official
    (row,) = ref
    assert "0.7100" in row and row[-1] == "not tested" and len(row) == len(toy.headers)
    assert any("Paper B" not in n and "under other protocols" in n for n in toy.notes)
    assert any(n.startswith("⚠ Known fault of kfold:3 on toy") for n in toy.notes)
    # the figure is not a variant: nothing was tested against it and it holds no rank
    lb = report["leaderboard"]
    toy_rows = lb[(lb.split_hash == "h1") & (lb.kind == "multiclass")]  # the clustering ranks apart
    assert "Paper A" not in set(lb["system"]) and len(toy_rows) == toy_rows["rank"].max()
    other = blocks["toy2:1 — kfold:3 (split t2)"]
    assert not any(r[0] == PUBLISHED for r in other.rows) and not any("Known fault" in n for n in other.notes)
