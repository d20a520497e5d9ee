"""Optuna tuning: search spaces, validation-only objective, studies, workers, MLflow, --tuned.

Studies are real Optuna studies in real SQLite files, trials fit real systems on the
synthetic task, and MLflow runs land in the session's temporary store.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import optuna
import pytest

from musicbench.cli import main
from musicbench.errors import ConfigError, UnknownNameError
from musicbench.results import ResultStore
from musicbench.systems.classical import ClassicalSystem
from musicbench.tuning import load_tuned
from musicbench.tuning.space import parse_space
from musicbench.tuning.study import N_STARTUP_TRIALS
from musicbench.tuning.tune import TuneConfig, shares, tune

from jobs import CHEAP_SVM

TASK = "synth_genre:mini"
PROTOCOL = "group-kfold:performer:3"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace holding the cheap preset ``tune-svm``; the working directory is tmp_path."""
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "tune-svm.toml").write_text(CHEAP_SVM)
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def cfg(storage: str, **kw) -> TuneConfig:
    base = dict(task=TASK, system="tune-svm", protocol=PROTOCOL, trials=3, storage=storage,
                folds=1, track=False, study_name="s")
    return TuneConfig(**{**base, **kw})


def trials_of(storage: str, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


# -- search spaces ---------------------------------------------------------------------------


def space_of(search_space: dict, params: dict | None = None):
    preset = {"family": "classical", "_path": "systems/x.toml", "params": params or {},
              "search_space": search_space}
    return parse_space("x", preset, ClassicalSystem)


@pytest.mark.parametrize("entry, message", [
    ({"gama": {"type": "float", "low": 0.1, "high": 1.0}}, "gama: not a tunable parameter"),
    ({"seed": {"type": "int", "low": 0, "high": 3}}, "seed: not a tunable parameter"),
    ({"C": {"type": "float", "low": 1.0, "high": 1.0}}, "C: empty range"),
    ({"C": {"type": "float", "low": 10.0, "high": 1.0}}, "C: inverted range"),
    ({"C": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "log scale needs low > 0"),
    ({"C": {"type": "real", "low": 0.1, "high": 1.0}}, "type = 'real' must be one of"),
    ({"C": {"type": "float", "low": 0.1, "hi": 1.0}}, "unknown key(s) ['hi']"),
    ({"C": {"type": "float", "low": "a", "high": 1.0}}, "low = 'a' must be a finite number"),
    ({"n_mfcc": {"type": "int", "low": 13.5, "high": 40}}, "must be an integer"),
    ({"kernel": {"type": "categorical", "choices": []}}, "choices must be a non-empty list"),
    ({"C": 3.0}, "expected a table"),
    ({"gamma": {"type": "float", "low": 0.1, "high": 1.0, "when": {"kernal": "rbf"}}},
     "when names unknown parameter 'kernal'"),
    ({"kernel": {"type": "categorical", "choices": ["rbf", "linear"]},
      "gamma": {"type": "float", "low": 0.1, "high": 1.0, "when": {"kernel": "poly"}}},
     "when.kernel = ['poly'] is not among kernel's choices"),
    ({"C": {"type": "float", "low": 0.1, "high": 1.0, "when": {"n_mfcc": 20}},
      "n_mfcc": {"type": "int", "low": 13, "high": 40, "when": {"C": 1.0}}}, "conditions form a cycle"),
])
def test_bad_search_space_is_a_clear_error(entry, message):
    with pytest.raises(ConfigError) as err:
        space_of(entry)
    assert message in str(err.value)
    assert "systems/x.toml" in str(err.value)


def test_bad_preset_file_fails_the_command_before_any_study(workspace, capsys):
    (workspace / "systems" / "bad.toml").write_text(
        'family = "classical"\n[search_space]\nC = { type = "float", low = 5.0, high = 1.0 }\n')
    url = sqlite_url(workspace / "optuna.db")
    rc = main(["tune", "--task", TASK, "--system", "bad", "--storage", url, "--no-mlflow"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad.toml" in err and "[search_space] C: inverted range" in err
    assert not (workspace / "optuna.db").exists()


def test_conditional_parameter_is_sampled_only_when_its_condition_holds(tmp_path):
    space = space_of({
        "kernel": {"type": "categorical", "choices": ["rbf", "linear"]},
        "gamma": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "when": {"kernel": "rbf"}},
        # conditions on fixed parameters: the preset says classifier = "svm"
        "C": {"type": "float", "low": 0.1, "high": 10.0, "when": {"classifier": ["svm", "logreg"]}},
        "n_neighbors": {"type": "int", "low": 1, "high": 9, "when": {"classifier": "knn"}},
    }, params={"classifier": "svm"})
    assert [d.name for d in space.dims][:2] == ["kernel", "gamma"]
    study = optuna.create_study(storage=sqlite_url(tmp_path / "o.db"),
                                sampler=optuna.samplers.RandomSampler(seed=1))
    sampled = []
    study.optimize(lambda t: sampled.append(space.sample(t)) or 0.0, n_trials=30)
    kernels = {p["kernel"] for p in sampled}
    assert kernels == {"rbf", "linear"}
    for params in sampled:
        assert ("gamma" in params) == (params["kernel"] == "rbf")
        assert "C" in params and "n_neighbors" not in params
    stored = study.get_trials()
    assert all(("gamma" in t.params) == (t.params["kernel"] == "rbf") for t in stored)


def test_shares_divide_trials_exactly():
    assert shares(7, 3) == [3, 2, 2]
    assert shares(1, 2) == [1, 0]
    assert shares(None, 2) == [None, None]


# -- the test fold is never read -------------------------------------------------------------


def test_tuning_never_reads_the_test_fold(workspace, capsys):
    """Fold 0's test audio is replaced with loud noise on a private copy of the data; tuning
    on fold 0 gives the very trial values it gives on the real data. The control run proves
    that the noise is read (and changes them) as soon as a clip tuning needs is replaced."""
    import numpy as np
    import soundfile as sf

    from musicbench.protocol.splits import resolve
    from musicbench.tasks import get_task

    source = Path(get_task(TASK).dataset.data_home)
    data = workspace / "data"
    shutil.copytree(source, data / "synth_genre" / source.name)  # a folder made for it: used
    task = get_task(TASK, data_home=str(data))
    clipset = task.clips()
    fold = resolve(PROTOCOL, clipset).folds[0]
    rng = np.random.default_rng(0)

    def noise(track_id: str) -> None:
        path = clipset.by_id[track_id].path
        info = sf.info(path)
        sf.write(path, rng.uniform(-0.9, 0.9, info.frames).astype(np.float32), info.samplerate)

    for track_id in fold.test:
        assert clipset.by_id[track_id].path.startswith(str(data))
        noise(track_id)

    url = sqlite_url(workspace / "optuna.db")
    common = ["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL,
              "--folds", "1", "--storage", url, "--no-mlflow", "--quiet", "--trials", "3"]
    assert main([*common, "--study-name", "real"]) == 0
    assert main([*common, "--data-home", str(data), "--study-name", "noisy-test"]) == 0
    assert capsys.readouterr().out.count("best valid  accuracy") == 2
    real, noisy = trials_of(url, "real"), trials_of(url, "noisy-test")
    assert [t.state for t in noisy] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.value for t in noisy] == [t.value for t in real]

    for track_id in fold.valid:
        noise(track_id)
    assert main([*common, "--data-home", str(data), "--study-name", "control"]) == 0
    assert [t.value for t in trials_of(url, "control")] != [t.value for t in real]


# -- studies: resume, seeds, workers ----------------------------------------------------------


def test_rerun_resumes_the_study_and_a_larger_target_extends_it(workspace):
    url = sqlite_url(workspace / "optuna.db")
    first = tune(cfg(url, trials=2))
    assert (first.n_ran, first.n_finished) == (2, 2)
    before = [t.params for t in trials_of(url)]
    again = tune(cfg(url, trials=2))
    assert again.n_ran == 0 and len(trials_of(url)) == 2
    extended = tune(cfg(url, trials=4))
    trials = trials_of(url)
    assert extended.n_ran == 2 and [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.params for t in trials[:2]] == before
    assert trials[2].params not in before  # the resumed sampler does not replay the first trials


def test_same_seed_and_fresh_storage_give_the_same_trials(workspace):
    """Nine trials: eight random start-up trials, then one proposed by TPE."""
    assert N_STARTUP_TRIALS == 8
    runs = {}
    for name, seed, n in (("a", 7, 9), ("b", 7, 9), ("c", 8, 3)):
        url = sqlite_url(workspace / f"{name}.db")
        tune(cfg(url, trials=n, seed=seed))
        runs[name] = [(t.params, t.value) for t in trials_of(url)]
    assert runs["a"] == runs["b"]
    assert [p for p, _ in runs["a"][:3]] != [p for p, _ in runs["c"]]


def test_two_worker_processes_share_one_study_without_losing_or_duplicating(workspace, capsys):
    url = sqlite_url(workspace / "optuna.db")
    rc = main(["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--folds", "1",
               "--trials", "6", "--workers", "2", "--storage", url, "--study-name", "w", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    trials = trials_of(url, "w")
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6
    assert len({t.user_attrs["worker"] for t in trials}) == 2

    from mlflow import MlflowClient

    from musicbench.tuning.tracking import EXPERIMENT, STUDY_TAG, study_key

    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([exp], f"tags.`{STUDY_TAG}` = '{study_key(url, 'w')}'")
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["musicbench.trial"]) for r in children) == list(range(6))
    assert {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        trial = trials[int(run.data.tags["musicbench.trial"])]
        assert run.data.params == {k: str(v) for k, v in trial.params.items()}
        assert run.data.metrics["valid_accuracy"] == pytest.approx(trial.value)
    best = optuna.load_study(study_name="w", storage=url).best_trial
    assert parent.data.tags["best.C"] == str(best.params["C"])
    assert json.loads(parent.data.params["space.gamma"])["when"] == {"kernel": ["rbf"]}
    assert parent.data.metrics["best_valid_accuracy"] == pytest.approx(best.value)
    assert parent.info.status == "FINISHED"


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("url, message", [
    ("sqlite:////no/such/folder/optuna.db", "cannot open Optuna storage sqlite:////no/such/folder"),
    ("nosuchdb://host/db", "cannot open Optuna storage nosuchdb://host/db"),
    ("postgresql+nosuchdriver://u:secret@localhost/db", "postgresql+nosuchdriver://u:***@localhost/db"),
])
def test_storage_that_cannot_be_opened_is_a_clear_error(workspace, capsys, url, message):
    assert main(["tune", "--task", TASK, "--system", "tune-svm", "--storage", url, "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert message in err and "secret" not in err


def test_study_with_another_search_space_is_refused_and_kept(workspace):
    url = sqlite_url(workspace / "optuna.db")
    tune(cfg(url, trials=2))
    kept = [(t.params, t.value) for t in trials_of(url)]
    preset = workspace / "systems" / "tune-svm.toml"
    preset.write_text(CHEAP_SVM.replace("high = 100.0", "high = 1000.0"))
    with pytest.raises(ConfigError, match=r"another search space \(C: .*1000\.0"):
        tune(cfg(url, trials=4))
    assert [(t.params, t.value) for t in trials_of(url)] == kept
    preset.write_text(CHEAP_SVM)
    other = "group-kfold:performer:2"
    with pytest.raises(ConfigError, match=f"created for protocol '{PROTOCOL}', not '{other}'"):
        tune(cfg(url, trials=4, protocol=other))


def test_load_tuned_errors_name_the_study(workspace):
    url = sqlite_url(workspace / "optuna.db")
    with pytest.raises(UnknownNameError, match="unknown Optuna study .* 'nope'"):
        load_tuned("nope", url)
    optuna.create_study(study_name="foreign", storage=url)
    with pytest.raises(UnknownNameError, match="valid .*: foreign"):
        load_tuned("nope", url)
    with pytest.raises(ConfigError, match="not created by `musicbench tune`"):
        load_tuned("foreign", url)


# -- the best parameters flow into evaluation -------------------------------------------------


def test_run_tuned_uses_the_best_parameters_and_marks_rows(workspace, capsys):
    """Default storage (./optuna.db) end to end: tune, then `run --tuned` on the test folds."""
    assert main(["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--folds", "1",
                 "--trials", "3", "--study-name", "best", "--no-mlflow", "--quiet"]) == 0
    assert (workspace / "optuna.db").exists()
    tuned = load_tuned("best")
    study = optuna.load_study(study_name="best", storage=sqlite_url(workspace / "optuna.db"))
    assert tuned == {"tune-svm": {"params": study.best_params, "study": "best", "trials": 3,
                                  "kind": "shared"}}
    capsys.readouterr()

    out = workspace / "runs"
    assert main(["run", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--tuned", "best",
                 "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert row["tuned"] == "True" and row["tuned_study"] == "best" and row["tuned_trials"] == "3"
        assert row["tuned_kind"] == "shared"
    for record in ResultStore(out).records():
        assert {k: record.params[k] for k in study.best_params} == study.best_params


def test_per_fold_tuning_gives_each_test_fold_its_own_folds_parameters(workspace, capsys):
    """One study per outer fold, each scored on its own fold's valid part only; run --tuned
    applies fold i's best parameters to fold i, and the rows say the tuning was nested."""
    from musicbench.protocol.experiment import TaskSource, open_clips
    from musicbench.protocol.splits import resolve
    from musicbench.report.load import load_folders
    from musicbench.report.tables import leaderboard

    assert main(["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--per-fold",
                 "--trials", "3", "--study-name", "nest", "--no-mlflow", "--quiet"]) == 0
    assert "--tuned 'nest'" in capsys.readouterr().out
    url = sqlite_url(workspace / "optuna.db")
    split = resolve(PROTOCOL, open_clips(TaskSource(TASK)))
    studies = [optuna.load_study(study_name=f"nest#fold{i}", storage=url) for i in range(3)]
    for i, study in enumerate(studies):
        assert (study.user_attrs["outer_fold"], study.user_attrs["folds"]) == (i, 1)
        assert set(study.best_trial.user_attrs["fold_scores"]) == {str(i)}  # its own fold only
    tuned = load_tuned("nest")["tune-svm"]
    assert tuned["kind"] == "per-fold" and tuned["split_hash"] == split.hash
    assert tuned["per_fold"] == {i: s.best_params for i, s in enumerate(studies)}

    out = workspace / "runs"
    assert main(["run", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--tuned", "nest",
                 "--out", str(out), "--no-mlflow", "--quiet"]) == 0
    records = {r.fold: r for r in ResultStore(out).records()}
    assert sorted(records) == [0, 1, 2]
    for i, study in enumerate(studies):
        assert {k: records[i].params[k] for k in study.best_params} == study.best_params
        assert (records[i].tuned, records[i].tuned_kind, records[i].tuned_study) == (True, "per-fold", "nest")
    row = leaderboard(load_folders([out])).iloc[0]
    assert row["tuned_kind"] == "per-fold" and row["tuned_label"] == "yes (nested, per fold, nest, 3 trials)"

    # a family tuned on other folds is refused before any cell runs
    capsys.readouterr()
    assert main(["run", "--task", TASK, "--system", "tune-svm", "--protocol", "group-kfold:performer:2",
                 "--tuned", "nest", "--out", str(workspace / "other"), "--no-mlflow", "--quiet"]) == 2
    assert "tuned per fold of group-kfold:performer:3" in capsys.readouterr().err
    assert not (workspace / "other" / "cells").exists()
    assert main(["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--per-fold",
                 "--folds", "1", "--no-mlflow", "--quiet"]) == 2


# -- fixed parameters (--set) ------------------------------------------------------------------


def test_set_fixes_a_parameter_for_every_trial_and_is_part_of_the_study(workspace):
    url = sqlite_url(workspace / "optuna.db")
    tune(cfg(url, study_name="plain"))
    tune(cfg(url, study_name="fixed", fixed={"n_mfcc": 4}))
    plain, fixed = trials_of(url, "plain"), trials_of(url, "fixed")
    # same seed, so the same sampled parameters; only the fixed one can change the scores
    assert [t.params for t in plain] == [t.params for t in fixed]
    assert [t.value for t in plain] != [t.value for t in fixed]
    assert load_tuned("fixed", url)["tune-svm"]["params"]["n_mfcc"] == 4
    kept = [t.value for t in fixed]
    with pytest.raises(ConfigError, match=r'tuned with --set n_mfcc=4, not n_mfcc=5'):
        tune(cfg(url, study_name="fixed", fixed={"n_mfcc": 5}, trials=4))
    assert [t.value for t in trials_of(url, "fixed")] == kept


@pytest.mark.parametrize("fixed, error, message", [
    ({"C": 2.0}, ConfigError, r"--set C: searched by .*tune-svm.toml"),
    ({"n_mfc": 4}, UnknownNameError, r"n_mfc.*valid .*n_mfcc"),
])
def test_set_of_a_searched_or_unknown_parameter_is_refused_before_any_study(workspace, fixed, error,
                                                                             message):
    with pytest.raises(error, match=message):
        tune(cfg(sqlite_url(workspace / "optuna.db"), fixed=fixed))
    assert not (workspace / "optuna.db").exists()


def test_set_values_parse_as_toml_and_a_malformed_setting_is_a_usage_error(workspace, capsys):
    from musicbench.flags import setting as _setting

    assert _setting("chunk_seconds=1.0") == ("chunk_seconds", 1.0)
    assert _setting("deltas = 2") == ("deltas", 2)
    assert _setting("kernel=linear") == ("kernel", "linear")
    assert _setting('features=["mfcc", "chroma"]') == ("features", ["mfcc", "chroma"])
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--task", TASK, "--system", "tune-svm", "--set", "n_mfcc"])
    assert exc.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_run_tuned_with_a_suite_keeps_the_suites_other_parameters(workspace, capsys):
    (workspace / "bench" / "suites").mkdir(parents=True)
    (workspace / "bench" / "suites" / "tiny.toml").write_text(
        f'tasks = ["{TASK}"]\nsystems = ["tune-svm"]\nprotocols = ["{PROTOCOL}"]\n\n'
        '[params.tune-svm]\nn_mfcc = 6\nC = 50.0\n')
    assert main(["tune", "--task", TASK, "--system", "tune-svm", "--protocol", PROTOCOL, "--folds", "1",
                 "--trials", "2", "--study-name", "t", "--set", "deltas=1", "--no-mlflow", "--quiet"]) == 0
    best = load_tuned("t")["tune-svm"]["params"]
    out = workspace / "runs"
    assert main(["run", "--suite", "tiny", "--tuned", "t", "--out", str(out), "--no-mlflow",
                 "--quiet"]) == 0
    records = list(ResultStore(out).records())
    assert len(records) == 3
    for record in records:
        assert record.params["n_mfcc"] == 6  # the suite's, not tuned
        assert record.params["deltas"] == 1  # fixed while tuning
        assert record.params["C"] == best["C"] != 50.0  # tuned beats the suite's


def test_rows_of_two_studies_with_the_same_parameters_are_two_records(workspace):
    """A shared study and a per-fold study may pick the same parameters on a fold; each
    row keeps its own record (the key holds the study), and an untuned run keeps its key."""
    from musicbench.protocol.experiment import TaskSource
    from musicbench.runner.plan import plan_task
    from musicbench.runner.suite import Suite

    def keys(tuned: dict) -> list[str]:
        suite = Suite("k", (TASK,), ("tune-svm",), (PROTOCOL,), tuned=tuned)
        return [p.keys["none"] for p in plan_task(suite, TaskSource(TASK), "cpu", lambda m: None)]

    untuned = keys({})
    shared = keys({"tune-svm": {"study": "a", "trials": 3, "kind": "shared"}})
    other = keys({"tune-svm": {"study": "b", "trials": 3, "kind": "shared"}})
    assert len(set(untuned + shared + other)) == 3 * len(untuned)
