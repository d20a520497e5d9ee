"""The regression task kind: targets with declared ranges, their metrics, folds, systems,
paired test and refusals, and the tempo of the synthetic clips end to end through
``musicbench run`` and ``musicbench report``."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicbench.cli import main
from musicbench.errors import ConfigError, DataError
from musicbench.protocol.experiment import fit, resolve_split, score
from musicbench.protocol.metrics import evaluate, get_metric, metrics_for, primary_metric
from musicbench.report.stats import paired_error_test
from musicbench.systems import build_system
from musicbench.systems.heads import TorchRegressor
from musicbench.tasks import get_task

from helpers import SHARED, needs_shared


def test_regression_metrics_hand_computed():
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    pred = np.array([[1.0, 40.0], [2.0, 30.0], [3.0, 20.0], [5.0, 10.0]])
    out = evaluate("regression", y, pred, ["a", "b"])
    # a: residual 1, total 5 -> R² 0.8; b: reversed, residual 2000, total 500 -> R² -3
    assert out["per_target"]["a"]["r2"] == pytest.approx(0.8)
    assert out["per_target"]["b"]["r2"] == pytest.approx(-3.0)
    assert out["r2"] == pytest.approx((0.8 - 3.0) / 2)
    # a: pred (1, 2, 3, 5), mean 2.75: cov 6.5 / 4 = 1.625, var(y) 1.25, var(pred) 8.75 / 4
    assert out["per_target"]["a"]["pearson_r"] == pytest.approx(1.625 / np.sqrt(1.25 * 2.1875))
    assert out["per_target"]["b"]["pearson_r"] == pytest.approx(-1.0)
    assert out["mae"] == pytest.approx((0.25 + 20.0) / 2)  # b: errors 30, 10, 10, 30
    assert primary_metric("regression") == "r2" and metrics_for("regression")[0] == "r2"


def test_regression_metric_declarations():
    r2, r, mae = get_metric("r2"), get_metric("pearson_r"), get_metric("mae")
    assert r2.higher_is_better and r2.bounds == (-np.inf, 1.0) and r2.chance(1) == 0.0
    assert r.bounds == (-1.0, 1.0) and r.chance(2) == 0.0
    assert not mae.higher_is_better and mae.better(1.0, 2.0) and mae.bounds == (0.0, np.inf)
    assert set(metrics_for("multiclass")).isdisjoint({"r2", "pearson_r", "mae"})


def test_constant_targets_leave_r2_and_r_undefined_not_infinite():
    out = evaluate("regression", np.ones((3, 1)), np.array([[1.0], [2.0], [3.0]]), ["t"])
    assert np.isnan(out["r2"]) and np.isnan(out["pearson_r"]) and out["mae"] == pytest.approx(1.0)
    assert out["per_target"]["t"]["r2"] is None  # JSON-safe in the record's details


@pytest.fixture(scope="module")
def tempo_clips():
    return get_task("synth_tempo:mini").clips()


@pytest.fixture(scope="module")
def tempo_fold(tempo_clips):
    fold = resolve_split("group-kfold:performer", tempo_clips).folds[0]
    return tuple(tempo_clips.part(ids) for ids in (fold.train, fold.valid, fold.test))


def test_synth_tempo_reads_the_synth_genre_clips_and_varies_within_each_genre(tempo_clips):
    genre = get_task("synth_genre:mini").clips()
    assert [c.path for c in genre.clips] == [c.path for c in tempo_clips.clips]  # the same audio
    tempo = {c.track_id: c.label[0] for c in tempo_clips.clips}
    for g in genre.classes:
        values = np.array([tempo[c.track_id] for c in genre.clips if c.label == g])
        assert values.std() > 0.03 * values.mean(), g  # +-12 % of the genre's tempo, not one value
    assert 60 < min(tempo.values()) and max(tempo.values()) < 170


def test_kfold_stratifies_on_target_bins_and_is_deterministic(tempo_clips):
    a, b = resolve_split("kfold:4:3", tempo_clips), resolve_split("kfold:4:3", tempo_clips)
    assert a.hash == b.hash and a.hash != resolve_split("kfold:4:4", tempo_clips).hash
    y = {c.track_id: c.label[0] for c in tempo_clips.clips}
    quintiles = np.quantile(list(y.values()), [0.2, 0.4, 0.6, 0.8])
    for fold in a.folds:  # every fold's test part spans the quintiles evenly (72 clips: 18 per fold)
        counts = np.bincount(np.searchsorted(quintiles, [y[t] for t in fold.test]), minlength=5)
        assert counts.min() >= 3 and counts.max() <= 4, counts
    g = resolve_split("group-kfold:performer:2", tempo_clips)
    assert all(f.leakage == 0 for f in g.folds) and g.hash == resolve_split("group-kfold:performer:2",
                                                                              tempo_clips).hash


def test_mean_predictor_scores_r2_near_zero_and_a_perfect_one_scores_one(tempo_fold):
    train, valid, test = tempo_fold
    # ridge with an enormous penalty: every weight 0, the prediction the training mean
    mean_model = build_system("mfcc-stats-ridge", C=1e-9).fit(train, valid)
    pred = mean_model.predict_scores(test.without_labels())
    np.testing.assert_allclose(pred, train.y.mean(), rtol=1e-6)
    r2 = evaluate("regression", test.y, pred, test.classes)["r2"]
    assert -0.2 < r2 <= 0.0  # the training mean, not the test part's: just below 0
    assert evaluate("regression", test.y, test.y.copy(), test.classes)["r2"] == 1.0


@pytest.mark.parametrize(("name", "overrides", "floor"), [
    ("mfcc-stats-svr", {}, 0.3),
    ("aisfx-probe", {"classifier": "mlp", "loss": "huber"}, 0.5),
])
def test_tempo_is_recovered_far_above_the_mean_predictor(name, overrides, floor, tempo_fold):
    train, valid, test = tempo_fold
    est = build_system(name, **overrides)
    fit(est, train, valid, 0)
    result = score(est, test).result
    assert result["r2"] > floor and result["pearson_r"] > 0.6, result


def test_torch_regressor_fits_a_linear_target_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5))
    y = np.column_stack([x @ [1.0, -2.0, 0.5, 0.0, 3.0] + 100.0, x[:, 0] * 10])
    head = TorchRegressor(lr=0.05, epochs=400).fit(x, y)
    out = evaluate("regression", y, head.predict(x), ["a", "b"])
    assert out["r2"] > 0.99
    np.testing.assert_array_equal(TorchRegressor(lr=0.05, epochs=400).fit(x, y).predict(x), head.predict(x))
    huber = TorchRegressor(lr=0.05, epochs=400, loss="huber").fit(x, y).predict(x)
    assert evaluate("regression", y, huber, ["a", "b"])["r2"] > 0.99


def test_regressors_are_refused_for_classes_and_classifiers_for_targets(tempo_fold, synth_fold):
    with pytest.raises(ConfigError, match="handles regression tasks, not multiclass"):
        build_system("mfcc-stats-ridge").fit(*synth_fold[:2])
    with pytest.raises(ConfigError, match="handles multiclass and multilabel tasks, not regression"):
        build_system("mfcc-stats-svm").fit(*tempo_fold[:2])
    assert build_system("mfcc-stats-mlp").kinds == ("multiclass", "multilabel", "regression")


def test_paired_error_test():
    rng = np.random.default_rng(0)
    worse = paired_error_test(-np.abs(rng.standard_normal(40)) - 0.1)  # A's errors always smaller
    assert worse.p_value < 1e-6 and (worse.a_better, worse.b_better) == (40, 0)
    noise = paired_error_test(rng.standard_normal(40))
    assert noise.p_value > 0.05 and noise.n == 40
    assert paired_error_test(np.zeros(5)).p_value == 1.0


def test_tempo_end_to_end_through_run_and_report(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--task", "synth_tempo:mini", "--system", "mfcc-stats-svr", "--system", "mfcc-stats-ridge",
            "--protocol", "group-kfold:performer", "--out", str(out), "--no-mlflow", "--quiet"]
    assert main(args) == 0
    with open(out / "results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    assert len(rows) == 8 and {r["kind"] for r in rows} == {"regression"}
    svr = [float(r["r2"]) for r in rows if r["system"] == "mfcc-stats-svr"]
    assert np.mean(svr) > 0.3, svr
    pred = next((out / "predictions").glob("*.csv")).read_text().splitlines()[0]
    assert pred == "track_id,target:tempo,prediction:tempo"
    assert main(["report", str(out), "--format", "json", "--out", str(tmp_path / "rep")]) == 0
    board = json.loads((tmp_path / "rep" / "report.json").read_text())["leaderboard"]
    best, other = sorted(board, key=lambda r: r["rank"])
    assert best["system"] == "mfcc-stats-svr" and best["metric"] == "r2"
    assert {"r2_mean", "pearson_r_mean", "mae_mean"} <= set(best)
    assert other["test"] == "wilcoxon signed-rank (squared errors)" and other["p_value"] is not None


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _emotion_task(workspace: Path, tempo_clips, rows: list[str],
                  header: str = "path,arousal,valence") -> None:
    """A DEAM-like manifest over a few real clips: arousal and valence on a 1-9 scale."""
    for c in tempo_clips.clips[:4]:
        shutil.copy(c.path, workspace / f"{c.track_id}.wav")
    (workspace / "av.csv").write_text("\n".join([header, *rows]) + "\n")
    (workspace / "datasets" / "emo.toml").write_text(
        'source = "csv"\nmanifest = "../av.csv"\nkind = "regression"\ntargets = ["arousal", "valence"]\n'
        "[ranges]\narousal = [1, 9]\nvalence = [1, 9]\n")


def test_csv_targets_are_read_by_column_name(workspace, tempo_clips):
    ids = [c.track_id for c in tempo_clips.clips[:4]]
    _emotion_task(workspace, tempo_clips, [f"song {i},{t}.wav,{8 - i},{2 + i}" for i, t in enumerate(ids)],
                  header="title,path,valence,arousal")  # any order, other columns ignored
    clipset = get_task("emo").clips()
    assert clipset.classes == ["arousal", "valence"]
    np.testing.assert_array_equal(clipset.targets(clipset.clips), [[2, 8], [3, 7], [4, 6], [5, 5]])


@pytest.mark.parametrize(("row", "message"), [
    ("{t}.wav,fast,5", r"line 3 \('{t}\.wav'\): arousal = 'fast' is not a number; expected a number "
                       r"from 1 to 9"),
    ("{t}.wav,5,9.5", r"line 3 \('{t}\.wav'\): valence = 9\.5 is outside its declared range; expected a "
                      r"number from 1 to 9"),
    ("{t}.wav,5,", r"line 3 \('{t}\.wav'\): valence is missing; expected a number from 1 to 9"),
])
def test_bad_targets_are_refused_before_any_work_with_exit_2(workspace, tempo_clips, capsys, row, message):
    a, b = (c.track_id for c in tempo_clips.clips[:2])
    _emotion_task(workspace, tempo_clips, [f"{a}.wav,3,4", row.format(t=b)])
    with pytest.raises(DataError, match=r"manifest .*av\.csv, " + message.format(t=b)):
        get_task("emo").clips()
    assert main(["run", "--task", "emo", "--system", "mfcc-stats-ridge", "--out", "runs", "--no-mlflow"]) == 2
    assert "error: " in capsys.readouterr().err
    assert not (workspace / "runs" / "results.csv").exists()


def test_missing_target_column_and_bad_declarations_are_refused(workspace, tempo_clips):
    _emotion_task(workspace, tempo_clips, ["x.wav,3"], header="path,arousal")
    with pytest.raises(ConfigError, match=r"av\.csv: no column 'valence'; a regression task needs 'path' and "
                                          r"one numeric column per target \['arousal', 'valence'\]"):
        get_task("emo")
    assert main(["run", "--task", "emo", "--system", "mfcc-stats-ridge", "--no-mlflow"]) == 2
    spec = workspace / "datasets" / "emo.toml"
    spec.write_text('source = "csv"\nmanifest = "../av.csv"\nkind = "regression"\ntargets = ["arousal"]\n')
    with pytest.raises(ConfigError, match=r"ranges must give \[low, high\] for every target"):
        get_task("emo")
    spec.write_text('source = "csv"\nmanifest = "../av.csv"\nkind = "regression"\ntargets = ["arousal"]\n'
                    "[ranges]\narousal = [9, 1]\n")
    with pytest.raises(ConfigError, match=r"ranges.arousal = \[9, 1\]: expected \[low, high\]"):
        get_task("emo")


def test_a_classifier_on_a_regression_task_is_refused_up_front(tmp_path, capsys):
    assert main(["run", "--task", "synth_tempo:mini", "--system", "mfcc-stats-svm", "--out", str(tmp_path),
                 "--no-mlflow", "--quiet"]) == 2
    assert "synth_tempo:mini is regression, which system(s) mfcc-stats-svm" in capsys.readouterr().err
    assert not (tmp_path / "results.csv").exists()


@needs_shared
@pytest.mark.parametrize(("task", "expected"), [("ballroom_tempo", {"Media-105901": 84.0}),
                                                ("gtzan_tempo", {"country.00000": 85.53})])
def test_real_tempo_tasks_read_the_mirdata_sample(task, expected):
    samples = SHARED / "mirdata_sample"
    clipset = get_task(f"{task}:sample", str(samples / "resources"), str(samples / "indexes")).clips(
        allow_partial=True)
    assert {c.track_id: c.label[0] for c in clipset.clips} == pytest.approx(expected)


def test_parameters_added_for_regression_leave_earlier_cell_keys_alone():
    for name, param, other in (("aisfx-probe", "loss", "huber"), ("cnn1d-small", "head_loss", "huber")):
        assert param not in build_system(name).key_params()  # the default: keys as before
        assert build_system(name, **{param: other}).key_params()[param] == other


def test_deep_head_predicts_targets_in_their_units_and_is_deterministic(tempo_fold):
    train, valid, test = tempo_fold
    runs = [build_system("cnn1d-small", max_epochs=2, head_loss=loss).fit(train, valid)
            for loss in ("mse", "mse", "huber")]
    scores = [r.predict_scores(test.without_labels()) for r in runs]
    assert scores[0].shape == (len(test), 1)
    assert 40 < scores[0].mean() < 200  # BPM, not standardised units
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.allclose(scores[0], scores[2])
    assert "valid_r2" in runs[0].training_report()["history"][0]


def test_tempo_spread_widens_the_tempo_within_genres_and_is_checked():
    from musicbench.tasks.synth import GENRES, SynthDataset, clip_tempo

    for genre, g in GENRES.items():
        narrow = np.array([clip_tempo(genre, t % 4, t, 0) for t in range(40)]) / g.tempo
        wide = np.array([clip_tempo(genre, t % 4, t, 0, 0.35) for t in range(40)]) / g.tempo
        assert 0.88 <= narrow.min() and narrow.max() <= 1.12
        assert 0.65 <= wide.min() and wide.max() <= 1.35 and wide.std() > 2 * narrow.std()
    with pytest.raises(ConfigError, match="tempo_spread from 0 to below 0.5"):
        SynthDataset("synth_genre", {"versions": {"x": {"tempo_spread": 0.7}}}, "x", 22050)
