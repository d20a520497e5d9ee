"""A run extracts every clip its cells need in one pass before they start: the cells
then find all their frames in the cache and extract nothing themselves."""

from __future__ import annotations

import json

from musicbench.protocol.experiment import TaskSource, open_clips
from musicbench.runner.execute import extract_for, run_cell
from musicbench.runner.plan import plan_task
from musicbench.runner.suite import Suite
from musicbench.systems import build_system


def test_one_extraction_pass_covers_every_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path / "cache"))
    systems = ("mfcc-stats-svm", "mfcc-vq-svm", "gmm")
    suite = Suite("pass", ("synth_genre:mini",), systems, ("kfold:3",), deform=("none", "noise:20"))
    plans = list(plan_task(suite, TaskSource("synth_genre:mini"), "cpu", print))
    sample_rate = open_clips(TaskSource("synth_genre:mini")).task.spec.clip.sample_rate
    extractors = {json.dumps(e.cache_config(), sort_keys=True)
                  for s in systems for e in build_system(s).extractors(sample_rate)}
    assert extractors  # these systems read cached frames
    extract_for(plans, 2, print)
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "features").rglob("*.npy")}
    # every clip plain, every clip deformed (each is in some test part), per extractor
    assert len(cached) == 72 * len(extractors) * 2
    for plan in plans[:: len(systems)]:
        outcome = run_cell(plan, list(plan.keys))
        assert all(r.ok for r in outcome.records), [r.error for r in outcome.records]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "features").rglob("*.npy")} == cached
