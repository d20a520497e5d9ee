"""A suite mixing task kinds (``by_kind``): each system runs on the tasks of the kinds it
handles, and without ``by_kind`` such a suite is refused before any work."""

from __future__ import annotations

import pytest

from musicbench.errors import ConfigError
from musicbench.protocol.experiment import TaskSource
from musicbench.runner.plan import plan_task
from musicbench.runner.suite import Suite, get_suite
from musicbench.runner.validate import validate_run
from musicbench.systems import build_system

TASKS = ("synth_genre:mini", "synth_tempo:mini")
SYSTEMS = ("mfcc-stats-svm", "mfcc-stats-ridge", "mfcc-stats-cluster")


def test_by_kind_plans_each_system_on_the_tasks_it_handles():
    suite = Suite("mixed", TASKS, SYSTEMS, ("kfold:3",), by_kind=True)
    logged = []
    present = validate_run(suite, [TaskSource(t) for t in TASKS], "cpu", logged.append).sources
    assert [s.ref for s in present] == list(TASKS)
    assert any("synth_tempo:mini is regression: left out for mfcc-stats-svm" in m for m in logged), logged
    pairs = {(p.task, p.system, p.kind) for t in TASKS
             for p in plan_task(suite, TaskSource(t), "cpu", lambda m: None)}
    assert pairs == {("synth_genre", "mfcc-stats-svm", "multiclass"),
                     ("synth_genre", "mfcc-stats-cluster", "clustering"),
                     ("synth_tempo", "mfcc-stats-ridge", "regression")}


def test_a_mixed_suite_without_by_kind_is_refused_naming_the_systems():
    suite = Suite("mixed", TASKS, SYSTEMS, ("kfold:3",))
    refusal = r"synth_genre:mini is multiclass, which system\(s\) mfcc-stats-ridge \(regression tasks only\)"
    with pytest.raises(ConfigError, match=refusal + r".*by_kind = true"):
        validate_run(suite, [TaskSource(t) for t in TASKS], "cpu", lambda m: None)


def test_a_task_no_system_handles_is_refused_even_by_kind():
    suite = Suite("mixed", ("synth_tempo:mini",), ("mfcc-stats-svm",), ("kfold:3",), by_kind=True)
    with pytest.raises(ConfigError, match="synth_tempo:mini is regression"):
        validate_run(suite, [TaskSource("synth_tempo:mini")], "cpu", lambda m: None)


def test_the_standard_suite_has_every_view():
    """Classifiers, regressors and clusterings each find tasks of their kind in it."""
    from musicbench.tasks import get_spec

    suite = get_suite("standard")
    kinds = {get_spec(t).kind for t in suite.tasks}
    for name in suite.systems:
        preset, overrides = suite.resolve_system(name)
        assert kinds & set(build_system(preset, **overrides).kinds), name
    assert suite.by_kind and {"multiclass", "multilabel", "regression"} <= kinds


def test_a_suite_flag_that_is_not_true_or_false_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bench" / "suites").mkdir(parents=True)
    (tmp_path / "bench" / "suites" / "odd.toml").write_text(
        'tasks = ["synth_genre:mini"]\nsystems = ["mfcc-stats-svm"]\nby_kind = "yes"\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"odd.toml: by_kind is 'yes'; valid: true or false"):
        get_suite("odd")
