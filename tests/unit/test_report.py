"""The report compiler on run folders built from per-track predictions whose answers are known.

Table ``h1`` (3 folds x 40 tracks, classes a/b): ``best`` is right on 36, 34, 32 tracks;
``close`` differs from it on 4 tracks (3 against 1: not significant); ``bad`` is wrong on
10 more tracks per fold (30 against 0: significant); ``best`` under the deformation
``noise:10`` loses 2, 4, 6 tracks. Table ``h2`` is the same task and protocol on another
track set, where ``other`` scores higher than anything in ``h1``; it must stay apart.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from musicbench.cli import main
from musicbench.protocol.metrics import evaluate
from musicbench.report import tables
from musicbench.report.build import build
from musicbench.report.export import write_report
from musicbench.report.load import load_folders
from musicbench.results import CellRecord, ResultStore
from musicbench.runtime import atomic_write

CLASSES = ["a", "b"]
N = 40


def _cell(store: ResultStore, *, system: str, fold: int, correct: np.ndarray, split_hash: str = "h1",
          deform: str = "none", augment: str = "none", seed: int = 0, fit: float = 1.0, predict: float = 0.1,
          used: int = 120, task: str = "toy", infer: float | None = None) -> None:
    ids = [f"{split_hash}-f{fold}-t{i:02d}" for i in range(len(correct))]
    truth = np.arange(len(correct)) % 2
    pred = np.where(correct, truth, 1 - truth)
    scores = np.eye(2)[pred]
    key = f"{task}-{split_hash}-{system}-{augment}-{deform}-{fold}-{seed}"
    result = evaluate("multiclass", truth, scores, CLASSES)
    preds = pd.DataFrame({"track_id": ids, "label": [CLASSES[t] for t in truth],
                          "prediction": [CLASSES[p] for p in pred],
                          **{f"score:{c}": scores[:, j] for j, c in enumerate(CLASSES)}})
    atomic_write(store.predictions_dir / f"{key}.csv", preds.to_csv(index=False))
    details = {k: v for k, v in result.items() if isinstance(v, (dict, list))}
    store.save(CellRecord.from_dict({
        "task": task, "version": "1", "protocol": "kfold:3", "split_hash": split_hash, "fold": fold,
        "system": system, "seed": seed, "augment": augment, "deform": deform, "status": "ok",
        "n_train": 80, "n_valid": 0, "n_test": len(correct), "n_tracks_used": used, "n_tracks_index": 120,
        "group_leakage": 0.0, "fit_seconds": fit, "predict_seconds": predict, "tuned": False,
        "device": "cpu", "cell_key": key, "classes": CLASSES, "details": details,
        "predictions": f"predictions/{key}.csv", "finished_at": "2026-01-01T00:00:00",
        "infer_seconds_per_clip": infer, **{k: v for k, v in result.items() if k not in details},
    }))


def _right(n_right: int) -> np.ndarray:
    return np.arange(N) < n_right


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("toyrun")
    store = ResultStore(root)
    for fold, n_right in enumerate((36, 34, 32)):
        best = _right(n_right)
        _cell(store, system="best", fold=fold, correct=best, fit=1.0, predict=0.1, infer=0.01)
        close = best.copy()
        close[0] = False  # best right, close wrong: 3 such tracks over the folds...
        if fold == 0:
            close[N - 1] = True  # ...and 1 the other way
        _cell(store, system="close", fold=fold, correct=close, fit=2.0, predict=0.4, infer=0.02)
        bad = best.copy()
        bad[:10] = False
        # fastest head, but its features cost the most: off the end-to-end front
        _cell(store, system="bad", fold=fold, correct=bad, fit=0.1, predict=0.01, infer=0.5)
        deformed = best.copy()
        deformed[n_right - 2 * (fold + 1):n_right] = False
        _cell(store, system="best", fold=fold, correct=deformed, deform="noise:10")
        _cell(store, system="other", fold=fold, correct=_right(39), split_hash="h2", used=100)
    store.save(CellRecord.from_dict({
                "task": "toy", "version": "1", "protocol": "group-kfold:tonic", "split_hash": "",
                "fold": -1, "system": "best", "seed": 0, "augment": "none", "deform": "none",
                "status": "failed", "error": "ConfigError: no field 'tonic'", "cell_key": "unresolved"}))
    return root


@pytest.fixture(scope="module")
def results(run_dir):
    return load_folders([run_dir])


@pytest.fixture(scope="module")
def board(results):
    return tables.leaderboard(results)


def _row(board: pd.DataFrame, system: str, split_hash: str = "h1", deform: str = "none") -> pd.Series:
    sel = board[(board.system == system) & (board.split_hash == split_hash) & (board.deform == deform)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_paired_test_marks_tied_and_worse(board):
    assert _row(board, "best")["vs_best"] == "best"
    close = _row(board, "close")
    assert close["vs_best"] == "tied"
    assert close["discordant"] == "3/1"
    assert close["p_value"] == pytest.approx(0.625)  # McNemar exact: binomial(3 of 4)
    bad = _row(board, "bad")
    assert bad["vs_best"] == "worse"
    assert bad["p_value"] == pytest.approx(2 * 0.5**30)
    assert bad["discordant"] == "30/0"


def test_mean_std_and_confidence_interval(board):
    best = _row(board, "best")
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(3 folds)
    assert best["accuracy_mean"] == pytest.approx(0.85)
    assert best["accuracy_std"] == pytest.approx(0.05)
    assert (best["accuracy_ci_low"], best["accuracy_ci_high"]) == pytest.approx((0.85 - half, 0.85 + half))
    assert (best["cells"], best["folds"], best["seeds"]) == (3, 3, 1)


def test_split_hash_mismatch_is_kept_apart_and_reported(results, board):
    # 'other' (0.975) would top h1 if the splits were mixed; it leads only its own table.
    assert set(board[board.split_hash == "h2"].system) == {"other"}
    assert _row(board, "other", "h2")["vs_best"] == "best"
    assert set(board[board.split_hash == "h1"].system) == {"best", "close", "bad"}
    mism = tables.split_mismatches(results)
    assert sorted(mism.split_hash) == ["h1", "h2"]
    assert mism.set_index("split_hash").loc["h2", "tracks_used"] == 100


def test_deformation_ablation_delta_and_interval(results):
    abl = tables.ablations(results)
    row = abl[(abl.system == "best") & (abl.axis == "deform")].iloc[0]
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # fold deltas -0.05, -0.10, -0.15
    assert row["delta"] == pytest.approx(-0.10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.10 - half, -0.10 + half))
    assert row["pairs"] == 3
    assert row["significant"]  # 12 tracks lost, none gained: McNemar p = 2 * 0.5**12


def test_augmentation_is_compared_under_the_same_deformation_and_shown_as_a_matrix(tmp_path):
    store = ResultStore(tmp_path / "run")
    right = {("none", "none"): (36, 34), ("none", "pitch:2"): (30, 28),
             ("noise", "none"): (35, 35), ("noise", "pitch:2"): (33, 33)}
    for (augment, deform), per_fold in right.items():
        for fold, n in enumerate(per_fold):
            _cell(store, system="s", fold=fold, correct=_right(n), augment=augment, deform=deform)
    results = load_folders([tmp_path / "run"])
    abl = tables.ablations(results).set_index("variant")
    assert abl.loc["noise @ pitch:2", "reference"] == "none @ pitch:2"
    assert abl.loc["noise @ pitch:2", "delta"] == pytest.approx((66 - 58) / 80)
    assert abl.loc["noise", "delta"] == pytest.approx((70 - 70) / 80)
    assert abl.loc["pitch:2", "axis"] == "deform" and abl.loc["pitch:2", "reference"] == "none"
    grid = tables.robustness(results).set_index(["augment", "deform"])["score"]
    assert grid[("noise", "pitch:2")] == pytest.approx(33 / 40) and len(grid) == 4
    write_report(build(results, "aug"), tmp_path / "out", ["md"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| augment \\ deform | none | pitch:2 | mean |" in md
    assert "| ★ noise | 0.875 | 0.825 | 0.850 |" in md  # (70/80 + 66/80) / 2 beats none's


def test_reference_system_ablation(results):
    abl = tables.ablations(results, reference_system="best")
    sys_rows = abl[abl.axis == "system"].set_index("system")
    assert set(sys_rows.index) == {"close", "bad"}  # 'other' has no matching split
    assert sys_rows.loc["bad", "delta"] == pytest.approx(-0.25)


def test_per_class_and_confusion(results):
    pc = tables.per_class(results)
    best = pc[(pc.system == "best") & (pc.deform == "none") & (pc.split_hash == "h1")].set_index("class")
    # best is wrong on the last tracks of each fold: odd indices are class b.
    assert best.loc["a", "recall_mean"] == pytest.approx(np.mean([18 / 20, 17 / 20, 16 / 20]))
    conf = [c for c in tables.confusions(results) if c["system"] == "best" and c["split_hash"] == "h1"]
    assert len(conf) == 1 and np.asarray(conf[0]["matrix"]).sum() == 3 * N


def test_throughput_and_pareto_front(results):
    tp = tables.throughput(results)
    h1 = tp[tp.split_hash == "h1"].set_index("system")
    assert h1.loc["best", "head_clips_per_s"] == pytest.approx(400.0)  # 40 clips in 0.1 s
    assert h1.loc["best", "infer_clips_per_s"] == pytest.approx(100.0)  # 0.01 s a clip end to end
    assert set(h1["speed_basis"]) == {"end-to-end"}
    assert h1.loc["best", "on_front"]  # most accurate, and fastest end to end
    assert not h1.loc["close", "on_front"] and not h1.loc["bad", "on_front"]
    assert h1.loc["bad", "head_clips_per_s"] > h1.loc["best", "head_clips_per_s"]  # head-only would rank it


def test_pareto_front_of_records_without_end_to_end_cost_uses_head_only(results):
    """Records written before the cost was measured (table h2) keep a front, on head-only speed."""
    h2 = tables.throughput(results).query("split_hash == 'h2'")
    assert set(h2["speed_basis"]) == {"head only"}
    assert (h2["infer_clips_per_s"] == h2["head_clips_per_s"]).all()
    assert h2["on_front"].all()


def test_failed_cells_are_listed(results):
    failed = tables.failed_cells(results)
    assert failed["error"].str.contains("tonic").any()


def test_write_every_format(results, tmp_path):
    report = build(results, "toy report", reference_system="best")
    written = write_report(report, tmp_path, ["md", "html", "csv", "json"])
    md = (tmp_path / "report.md").read_text()
    assert "★" in md and "≈" in md and "Split mismatches" in md and "no field 'tonic'" in md
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) >= 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    for p in pngs:
        assert f"figures/{p.name}" in md
    data = json.loads((tmp_path / "report.json").read_text())  # strict JSON: no NaN
    assert {r["system"]: r["vs_best"] for r in data["leaderboard"]
            if r["split_hash"] == "h1" and r["deform"] == "none"} == {
        "best": "best", "close": "tied", "bad": "worse"}
    lb = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(lb) == 5 and {"accuracy_ci_low", "p_value", "vs_best"} <= set(lb.columns)


def test_cli_report(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--format", "md,json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tied (p_adj=0.625; raw p=0.625)" in out and "worse (p_adj<0.001; raw p<0.001)" in out
    assert "Holm's step-down correction" in out
    assert (tmp_path / "report.json").is_file() and not (tmp_path / "report.html").exists()
    assert main(["report", str(run_dir), "--format", "pdf"]) == 2
    assert main(["report"]) == 2
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert main(["report", str(run_dir), "--reference", "nosuch"]) == 2


def test_multilabel_per_tag_and_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    tags = ["calm", "dark", "happy"]
    y = (rng.random((60, 3)) < 0.4).astype(int)
    y[0], y[1] = 1, 0  # every tag has both classes
    store = ResultStore(tmp_path)
    for system, scores in {"good": y + 0.3 * rng.random(y.shape), "also-good": y + 0.3 * rng.random(y.shape),
                           "random": rng.random(y.shape)}.items():
        result = evaluate("multilabel", y, scores, tags)
        preds = pd.DataFrame({"track_id": [f"t{i}" for i in range(60)],
                              "label": ["|".join(t for t, v in zip(tags, r, strict=True) if v) for r in y],
                              **{f"score:{t}": scores[:, j] for j, t in enumerate(tags)}})
        atomic_write(tmp_path / "predictions" / f"{system}.csv", preds.to_csv(index=False))
        details = {k: v for k, v in result.items() if isinstance(v, (dict, list))}
        store.save(CellRecord.from_dict({
                    "task": "moods", "version": "1", "protocol": "official", "split_hash": "m", "fold": 0,
                    "system": system, "seed": 0, "status": "ok", "cell_key": system, "n_test": 60,
                    "n_train": 100, "fit_seconds": 1.0, "predict_seconds": 0.1, "details": details,
                    "classes": tags, "predictions": f"predictions/{system}.csv",
                    **{k: v for k, v in result.items() if k not in details}}))
    results = load_folders([tmp_path])
    board = tables.leaderboard(results).set_index("system")
    assert board.loc["good", "metric"] == "roc_auc_macro"
    assert board.loc["random", "vs_best"] == "worse"
    assert board.loc["also-good" if board.loc["good", "vs_best"] == "best" else "good", "vs_best"] == "tied"
    pt = tables.per_tag(results)
    assert set(pt.tag) == set(tags)
    assert pt[pt.system == "good"].roc_auc_mean.min() == 1.0  # noise < 1 never crosses the labels


def test_per_fold_table_holds_each_folds_score(results):
    pf = tables.per_fold(results)
    best = pf[(pf.system == "best") & (pf.split_hash == "h1") & (pf.deform == "none")].set_index("fold")
    assert best["score"].to_dict() == {0: 36 / N, 1: 34 / N, 2: 32 / N}
    assert set(best["n_test"]) == {N}


def test_many_variants_against_the_best_are_counted_together(tmp_path):
    """Ten variants each lose 7 discordant tracks to the best (McNemar p = 2/128 < 0.05):
    uncorrected all ten are 'worse'; Holm over ten tests ties them all; Benjamini-Hochberg,
    with ten equal p-values, keeps them worse."""
    store = ResultStore(tmp_path)
    best = _right(36)
    _cell(store, system="best", fold=0, correct=best)
    for i in range(10):
        worse = best.copy()
        worse[i:i + 7] = False
        _cell(store, system=f"v{i}", fold=0, correct=worse)
    results = load_folders([tmp_path])
    verdict = {c: tables.leaderboard(results, correction=c).query("system != 'best'")
               for c in ("none", "holm", "bh")}
    assert set(verdict["none"].vs_best) == {"worse"}
    assert set(verdict["holm"].vs_best) == {"tied"}
    assert set(verdict["bh"].vs_best) == {"worse"}
    holm = verdict["holm"]
    assert holm["p_value"].to_numpy() == pytest.approx(2 / 128)  # the raw p-values stay
    assert holm["p_adjusted"].to_numpy() == pytest.approx(10 * 2 / 128)
    assert set(holm["comparisons"]) == {10} and set(holm["correction"]) == {"holm"}

    out = tmp_path / "report"
    assert main(["report", str(tmp_path), "--format", "md,csv,json", "--out", str(out),
                 "--correction", "bh"]) == 0
    lb = pd.read_csv(out / "leaderboard.csv")
    assert {"p_value", "p_adjusted", "correction"} <= set(lb.columns) and set(lb.correction) == {"bh"}
    assert json.loads((out / "report.json").read_text())["correction"] == "bh"
    assert "10 variants tested against the best" in (out / "report.md").read_text()
    with pytest.raises(SystemExit, match="2"):
        main(["report", str(tmp_path), "--correction", "bonferroni"])
