"""Every record carries the end-to-end inference cost of a test clip (decode, front end or
encoder, head), whether its features were computed in the cell or found in the cache:
each cache entry remembers what it cost, and a hit reads it back."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from musicbench.features import FeatureCache
from musicbench.features.cache import Cost
from musicbench.protocol.experiment import TaskSource
from musicbench.runner.execute import run_cell
from musicbench.runner.plan import plan_task
from musicbench.runner.suite import Suite

COST = ("infer_seconds_per_clip", "features_seconds_per_clip", "head_seconds_per_clip")


def _plan(system: str):
    suite = Suite("cost", ("synth_genre:mini",), (system,), ("kfold:2",))
    return next(iter(plan_task(suite, TaskSource("synth_genre:mini"), "cpu", print)))


@pytest.mark.parametrize("system", ["mfcc-stats-svm", "aisfx-probe"])
def test_record_cost_is_end_to_end_on_a_miss_and_on_a_hit(tmp_path, monkeypatch, system):
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path / "cache"))
    plan = _plan(system)
    (cold,) = run_cell(plan, ["none"]).records  # computes and caches the features
    (warm,) = run_cell(plan, ["none"]).records  # finds them all in the cache
    for rec in (cold, warm):
        assert rec.ok, rec.error
        assert all(getattr(rec, k) > 0 for k in COST), [getattr(rec, k) for k in COST]
        assert rec.infer_seconds_per_clip == pytest.approx(rec.features_seconds_per_clip
                                                           + rec.head_seconds_per_clip, abs=1e-6)
        cost = rec.details["cost"]
        assert cost["clips_without_cost"] == 0 and cost["audio_seconds"] == pytest.approx(3.0)
        assert cost["devices"] == ["cpu"]
    # the hit reads back the cost the miss recorded, not the cost of reading the cache
    assert warm.features_seconds_per_clip == cold.features_seconds_per_clip
    assert warm.details["cost"]["extractors"] == cold.details["cost"]["extractors"]
    assert warm.features_seconds_per_clip > 5 * warm.head_seconds_per_clip  # the features dominate


def test_entry_keeps_its_cost_and_an_entry_without_one_is_rebuilt(tmp_path):
    cache = FeatureCache(tmp_path)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    cost = Cost(decode=0.01, compute=0.2, audio=3.0, device="cpu", workers=2)
    cache.put("ab" * 20, arr, cost)
    assert np.array_equal(cache.get("ab" * 20), arr) and cache.cost("ab" * 20) == cost
    assert cache.has("ab" * 20) and cost.per_audio_second == pytest.approx(0.07)
    # the file is still a plain .npy array to numpy, memory-mapped or not (the cost trails it)
    path = tmp_path / "ab" / f"{'ab' * 20}.npy"
    assert np.array_equal(np.load(path, mmap_mode="r"), arr) and np.array_equal(np.load(path), arr)
    # an entry of the layout before costs were recorded: npy payload + digest, no header
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    payload = buf.getvalue()
    old = tmp_path / "cd" / f"{'cd' * 20}.npy"
    old.parent.mkdir()
    old.write_bytes(payload + hashlib.blake2b(payload, digest_size=16).digest())
    assert cache.get("cd" * 20) is None and cache.cost("cd" * 20) is None and not cache.has("cd" * 20)
    assert cache.rebuilt == 0  # not counted as corrupt: it is simply recomputed and overwritten


def test_progress_lines_give_rate_and_eta_and_quiet_silences_them(monkeypatch, capsys):
    from musicbench.runtime import QUIET_ENV, progress

    monkeypatch.setenv("MUSICBENCH_PROGRESS_SECONDS", "0")
    monkeypatch.delenv(QUIET_ENV, raising=False)
    bar = progress(4, "features x")
    for _ in range(2):
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("features x: 2/4 (50%)") and "/s, ETA" in line for line in lines), lines
    monkeypatch.setenv(QUIET_ENV, "1")
    bar = progress(4, "features x")
    bar.update()
    bar.close()
    assert capsys.readouterr().err == ""
