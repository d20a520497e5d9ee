"""Validation resolves each system and split once; planning and cells use what it built."""

from __future__ import annotations

import pytest

import musicbench.runner.plan as plan_module
import musicbench.runner.validate as validate_module
from musicbench.protocol import experiment
from musicbench.runner.execute import Runner
from musicbench.runner.options import RunOptions
from musicbench.runner.plan import plan_task
from musicbench.runner.suite import Suite
from musicbench.systems import build_system

TASK = "synth_genre:mini"
SYSTEMS = ("mfcc-stats-svm", "gmm")


def _counting(monkeypatch, module, name: str, counts: dict) -> None:
    real = getattr(module, name)

    def counted(*args, **kw):
        counts[f"{module.__name__}.{name}"] = counts.get(f"{module.__name__}.{name}", 0) + 1
        return real(*args, **kw)

    monkeypatch.setattr(module, name, counted)


def test_a_run_builds_each_system_and_resolves_each_split_once(tmp_path, monkeypatch):
    counts: dict[str, int] = {}
    for module in (validate_module, plan_module):
        _counting(monkeypatch, module, "build_system", counts)
        _counting(monkeypatch, module, "resolve_split", counts)
    _counting(monkeypatch, experiment, "resolve", counts)
    suite = Suite("once", (TASK,), SYSTEMS, ("kfold:3", "group-kfold:performer"), seeds=(0, 1))
    runner = Runner(suite, RunOptions(out=tmp_path / "out", quiet=True, track=False))
    records = runner.run().records()
    folds = {(r.protocol, r.fold) for r in records}
    assert len(records) == runner.counts["ok"] == len(folds) * len(SYSTEMS) * 2 > 2 * 3 * 2
    assert counts == {"musicbench.runner.validate.build_system": len(SYSTEMS),
                      "musicbench.runner.validate.resolve_split": 2,
                      "musicbench.protocol.experiment.resolve": 2}
    assert {r.n_tracks_used for r in records} == {72} and {r.seed for r in records} == {0, 1}


def test_cells_fit_a_seeded_copy_of_the_planned_system():
    suite = Suite("copy", (TASK,), ("mfcc-stats-svm",), ("kfold:3",), seeds=(0, 7))
    plans = list(plan_task(suite, experiment.TaskSource(TASK), "cpu", lambda m: None))
    by_seed = {p.seed: p for p in plans}
    est = by_seed[7].build()
    assert est is not by_seed[7].estimator and est.seed == 7 and by_seed[7].estimator.seed == 0
    assert est.get_params() == build_system("mfcc-stats-svm", seed=7).get_params()


def test_records_state_the_clip_set_without_reopening_it(monkeypatch):
    suite = Suite("rec", (TASK,), ("gmm",), ("kfold:3",))
    plan = next(iter(plan_task(suite, experiment.TaskSource(TASK), "cpu", lambda m: None)))
    monkeypatch.setattr(plan_module, "open_clips", lambda source: pytest.fail("clip set reopened"))
    rec = plan.record("none")
    assert (rec.n_tracks_used, rec.n_tracks_index, rec.n_bad_tracks) == (72, 72, 0)
