"""Results a user can trust after a mistake: bad input refused before any work (exit 2,
nothing written), stale failures superseded, records listed, dropped and retried from the
command line, broken presets reported instead of breaking ``list``.

Every run here is a real run of the command line on the synthetic task.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from musicbench.cli import main
from musicbench.results import ResultStore

from helpers import REPO

TASK = "synth_genre:mini"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh working directory (the workspace presets are read from)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> int:
    return main(["run", "--no-mlflow", "--quiet", *args])


# -- bad input: exit 2, one message, nothing written ------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--task", "synth_genre:9.9"], "valid versions of synth_genre: 1.0, bench, mini"),
    (["--task", TASK, "--protocol", "kfold:1000"], "K=1000 exceeds the 72 clips"),
    (["--task", TASK, "--protocol", "group-kfold:nosuchfield"], "valid attributes of synth_genre tracks"),
    (["--task", TASK, "--protocol", "manifest:/nonexistent"], "/nonexistent is not a folder"),
    (["--task", TASK, "--seeds", "-1"], "a seed is an integer from 0 to 4294967295"),
    (["--task", TASK, "--seeds", "0,0"], "seed(s) 0 given more than once"),
    (["--task", TASK, "--system", "mfcc-stats-svm", "--tracking-uri", "bogus://x"],
     "tracking URI 'bogus://x' cannot be used"),
    (["--task", TASK, "--system", "metric-small"],
     "task synth_genre:mini is multiclass, which system(s) metric-small (multilabel tasks only)"),
    (["--task", "synth_tags:tiny"], "task synth_tags:tiny is multilabel, which system(s) gmm (multiclass"),
])
def test_bad_input_is_refused_before_any_work(workspace, capsys, args, message):
    rc = main(["run", "--system", "gmm", *args, "--out", "out", "--quiet"])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (workspace / "out").exists()


def test_empty_seeds_are_refused_not_read_as_seed_0(workspace, capsys):
    with pytest.raises(SystemExit) as exc:
        run("--task", TASK, "--system", "gmm", "--seeds", "", "--out", "out")
    assert exc.value.code == 2
    assert "expected integers like 0,1,2" in capsys.readouterr().err
    assert not (workspace / "out").exists()


def test_missing_data_without_allow_partial_is_refused(workspace, capsys):
    home = workspace / "data"
    (home / "synth_genre").mkdir(parents=True)
    from musicbench.tasks import get_task

    Path(get_task(TASK, data_home=str(home)).clips().clips[0].path).unlink()
    assert run("--task", TASK, "--system", "gmm", "--data-home", str(home), "--out", "out") == 2
    err = capsys.readouterr().err
    assert "1 of 72 tracks in the index are not on disk" in err and "--allow-partial" in err
    assert not (workspace / "out").exists()


@pytest.mark.parametrize("param, value", [("C", '"abc"'), ("n_mfcc", "-5")])
def test_a_preset_with_a_bad_value_is_refused_naming_its_file(workspace, capsys, param, value):
    (workspace / "systems").mkdir()
    preset = workspace / "systems" / "bad-svm.toml"
    text = (REPO / "systems" / "mfcc-stats-svm.toml").read_text()
    preset.write_text(text.replace(f"\n{param} = ", f"\n{param} = {value}\n# was: ", 1))
    assert run("--task", TASK, "--system", "bad-svm", "--out", "out") == 2
    err = capsys.readouterr().err
    assert str(preset) in err and param in err
    assert not (workspace / "out").exists()


def test_tuned_study_for_a_system_the_run_lacks_is_refused(workspace, capsys):
    assert main(["tune", "--task", TASK, "--system", "mfcc-stats-svm", "--protocol", "kfold:3",
                 "--folds", "1", "--trials", "1", "--study-name", "svm-study", "--no-mlflow",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert run("--task", TASK, "--system", "gmm", "--tuned", "svm-study", "--out", "out") == 2
    err = capsys.readouterr().err
    assert "study 'svm-study' tuned system 'mfcc-stats-svm'" in err and "--system mfcc-stats-svm" in err
    assert not (workspace / "out").exists()


def test_task_preset_with_an_unknown_key_lists_the_valid_keys(workspace, capsys):
    (workspace / "datasets").mkdir()
    spec = (REPO / "datasets" / "synth_genre.toml").read_text()
    (workspace / "datasets" / "typo.toml").write_text(spec.replace("label =", "lable ="))
    assert run("--task", "typo:mini", "--system", "gmm", "--out", "out") == 2
    err = capsys.readouterr().err
    assert "unknown key(s) 'lable'" in err and "valid keys: name, kind, dataset, version, label" in err


def test_a_broken_workspace_preset_is_listed_as_broken_and_the_rest_still_listed(workspace, capsys):
    (workspace / "systems").mkdir()
    (workspace / "systems" / "broken.toml").write_text('family = "classical"\n[params]\nC = "abc"\n')
    (workspace / "datasets").mkdir()
    (workspace / "datasets" / "halfdone.toml").write_text('dataset = "x"\nversion = "1"\nkind = "nope"\n')
    assert main(["list", "systems"]) == 1
    out = capsys.readouterr().out
    assert "broken                   BROKEN: system preset" in out and "C='abc' must be a number > 0" in out
    assert "gmm" in out and "mfcc-vq-svm" in out
    assert main(["list", "tasks"]) == 1
    out = capsys.readouterr().out
    assert "halfdone" in out and "BROKEN" in out
    assert "synth_genre" in out and "mridangam_stroke" in out
    (workspace / "bench" / "suites").mkdir(parents=True)
    (workspace / "bench" / "suites" / "typo.toml").write_text('tasks = ["x"]\nsystem = ["gmm"]\n')
    assert main(["list", "suites"]) == 1
    out = capsys.readouterr().out
    assert "unknown key(s) 'system'; valid keys: name, tasks, systems" in out and "demo" in out


def test_list_shows_task_versions_and_system_parameters(workspace, capsys):
    assert main(["list", "tasks"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("synth_genre ")]
    assert "1.0,mini,bench" in line
    assert main(["list", "systems", "--params"]) == 0
    out = capsys.readouterr().out
    assert "    n_mfcc = 20" in out
    assert "    search C: {'type': 'float', 'low': 0.01, 'high': 1000.0, 'log': True}" in out


def test_run_help_names_the_environment(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "MLFLOW_TRACKING_URI" in out and "--on-bad-track" in out and "--retry-failed" in out


# -- stale failures ---------------------------------------------------------------------------

def _old_failures(out: Path, **changes) -> None:
    """Failed records of the synthetic task as an earlier run left them, an hour ago."""
    from musicbench.errors import DataError
    from musicbench.runner.plan import unresolved_records
    from musicbench.runner.suite import Suite
    from musicbench.tasks import get_task

    suite = Suite("adhoc", (TASK,), ("mfcc-stats-svm",), ("kfold:3",), (0,))
    exc = DataError("task synth_genre:mini: 1 of 72 tracks in the index are not on disk")
    store = ResultStore(out)
    for rec in unresolved_records(suite, get_task(TASK), "kfold:3", exc, "cpu"):
        store.save(replace(rec, finished_at="2020-01-01T00:00:00+00:00", **changes))
    store.write_csv()


def test_a_fixed_problem_stops_showing_as_failed(workspace, capsys):
    """An unresolved (fold -1) failure, then a run that resolves the task: the leaderboard,
    the results and the gate count the new cells only, and say how many records went stale."""
    out = workspace / "out"
    _old_failures(out)
    args = ["--task", TASK, "--system", "mfcc-stats-svm", "--protocol", "kfold:3", "--out", str(out)]
    assert run(*args) == 0
    captured = capsys.readouterr()
    assert "1 stale record(s) superseded" in captured.err
    board = (out / "leaderboard.md").read_text()
    assert "Failed cells" not in board
    assert "1 earlier failed record(s) ignored" in board
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 3 and (df.status == "ok").all()
    assert len(list((out / "cells").glob("*.json"))) == 4  # the stale record is kept on disk
    assert main(["check", "--results", str(out), "--write-baseline", "base.json"]) == 0
    assert main(["check", "--results", str(out), "--baseline", "base.json"]) == 0
    assert "FAILED CELLS" not in capsys.readouterr().out
    assert main(["report", str(out), "--format", "md", "--out", "rep"]) == 0
    assert "1 earlier failed record(s) ignored" in (workspace / "rep" / "report.md").read_text()


def test_a_report_from_mlflow_also_ignores_stale_failures(workspace, capsys):
    from musicbench.results.tracking import Tracker

    out, uri = workspace / "out", f"sqlite:///{workspace / 'mlflow.db'}"
    _old_failures(out)
    tracker = Tracker("adhoc", uri)
    for rec in ResultStore(out).all_records():
        tracker.log_cell(rec, [])
    assert main(["run", "--task", TASK, "--system", "mfcc-stats-svm", "--protocol", "kfold:3", "--out",
                 str(out), "--tracking-uri", uri, "--quiet"]) == 0
    assert main(["report", "--experiment", "adhoc", "--tracking-uri", uri, "--format", "md",
                 "--out", "rep"]) == 0
    text = (workspace / "rep" / "report.md").read_text()
    assert "1 earlier failed record(s) ignored" in text and "Failed cells" not in text


def test_a_failure_of_a_seed_no_longer_asked_for_is_superseded(workspace, capsys):
    out = workspace / "out"
    _old_failures(out, fold=0, split_hash="0123", seed=7)
    assert run("--task", TASK, "--system", "mfcc-stats-svm", "--protocol", "kfold:3", "--out", str(out)) == 0
    (stale,) = ResultStore(out).current()[1]
    assert stale.seed == 7 and stale.details["superseded"].startswith("seed 7 was no longer asked for")
    assert "Failed cells" not in (out / "leaderboard.md").read_text()


# -- results ls / rm, --retry-failed, attempts --------------------------------------------------

def test_failed_cells_are_retried_listed_and_dropped_from_the_command_line(workspace, capsys):
    """k-NN with more neighbours than training clips fails in every fold; the GMM is fine."""
    (workspace / "bench" / "suites").mkdir(parents=True)
    (workspace / "bench" / "suites" / "knn.toml").write_text(
        f'tasks = ["{TASK}"]\nsystems = ["gmm", "mfcc-stats-knn"]\nprotocols = ["kfold:3"]\n'
        '[params.mfcc-stats-knn]\nn_neighbors = 500\n')
    assert run("--suite", "knn", "--out", "out") == 1
    capsys.readouterr()
    store = ResultStore(workspace / "out")
    failed = [r for r in store.records() if not r.ok]
    assert len(failed) == 3 and all("n_neighbors" in r.error for r in failed)

    assert main(["run", "--suite", "knn", "--out", "out", "--retry-failed", "--seeds", "0,1",
                 "--no-mlflow"]) == 1
    err = capsys.readouterr().err
    assert "0 cell(s) run, 3 already finished, 3 failed" in err  # seed 1 is not a retry: not run
    for rec in failed:
        (earlier,) = store.attempts(rec.cell_key)
        assert earlier.finished_at == rec.finished_at != store.load(rec.cell_key).finished_at

    assert main(["results", "ls", "out", "--status", "failed"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(x.split()[0] for x in listed) == sorted(r.cell_key for r in failed)
    assert all("mfcc-stats-knn" in x and "ValueError" in x for x in listed)

    assert main(["results", "rm", "out", "--system", "mfcc-stats-knn"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    df = pd.read_csv(workspace / "out" / "results.csv")
    assert len(df) == 3 and (df.system == "gmm").all()
    assert not (workspace / "out" / "attempts" / failed[0].cell_key).exists()
    assert main(["results", "rm", "out"]) == 2  # refuses to drop everything unasked


# -- files ------------------------------------------------------------------------------------

def test_outputs_honour_the_umask(workspace):
    from musicbench.runtime import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(workspace / "a.txt", "x")
        assert run("--task", TASK, "--system", "gmm", "--protocol", "kfold:3", "--out", "out") == 0
    finally:
        os.umask(old)
    files = [workspace / "a.txt", *(workspace / "out").rglob("*.*")]
    assert len(files) > 6
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_report_from_mlflow_prints_no_download_progress(workspace):
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "musicbench"]
    res = subprocess.run([*cmd, "run", "--task", TASK, "--system", "gmm", "--protocol", "kfold:3",
                          "--out", "out", "--quiet"], cwd=workspace, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([*cmd, "report", "--experiment", "adhoc", "--format", "json", "--out", "rep"],
                         cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "Downloading artifacts" not in res.stderr and "%|" not in res.stderr
    assert json.loads((workspace / "rep" / "report.json").read_text())
