"""The default ``cnn2d`` preset against the plain PyTorch script whose recipe it is.

``plain_cnn.py`` is the script a user would otherwise write. Both run on the same folds
(``kfold:5``, seed 0) of ``synth_genre:bench`` (120 clips of 30 s, 6 genres) by default,
fold by fold in turn in one process, so load from elsewhere hits both alike. The harness
side is what a cell does: ``cnn2d`` fitted on the fold's training part (its validation
part held out for early stopping) and scored on the test part, log-mels computed once
per clip through an empty feature cache; the script computes its log-mels up front and
trains on training and validation parts together. Goals: the preset's mean accuracy at
least the script's (within 2.5 points, 3 clips in 120) in at most 1.1x its time.

``MUSICBENCH_PLAIN_CNN_TASK`` names another multiclass task, for example ``gtzan_genre``
with ``MUSICBENCH_DATA_HOME`` set, to run the comparison on real music;
``MUSICBENCH_PLAIN_CNN_FOLDS`` runs only the first N folds. Run with
``pytest bench/test_cnn_vs_plain_script.py --benchmark-only``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import plain_cnn
import pytest

from musicbench.protocol.experiment import TaskSource, fit, open_clips, resolve_split, score
from musicbench.systems import build_system

TASK = os.environ.get("MUSICBENCH_PLAIN_CNN_TASK", "synth_genre:bench")
FOLDS = os.environ.get("MUSICBENCH_PLAIN_CNN_FOLDS", "5")


def test_cnn2d_preset_against_the_plain_script(benchmark, bench_device, tmp_path, monkeypatch):
    if FOLDS not in ("1", "2", "3", "4", "5"):
        pytest.fail(f"MUSICBENCH_PLAIN_CNN_FOLDS={FOLDS!r}: must be 1 to 5 (the first N of 5 folds)")
    clipset = open_clips(TaskSource(TASK))  # a synthetic task is generated in the usual cache
    if clipset.task.spec.kind != "multiclass":
        pytest.fail(f"MUSICBENCH_PLAIN_CNN_TASK={TASK!r} is {clipset.task.spec.kind}; the script "
                    "is a single-label classifier: name a multiclass task")
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path))  # the features' cache starts empty
    folds = resolve_split("kfold:5", clipset).folds[: int(FOLDS)]
    index = {c.track_id: i for i, c in enumerate(clipset.clips)}
    y = clipset.targets(clipset.clips)

    t0 = time.perf_counter()
    mels = [plain_cnn.logmel(c.path) for c in clipset.clips]
    seconds = {"harness": 0.0, "script": time.perf_counter() - t0}
    accuracy: dict[str, list[float]] = {"harness": [], "script": []}

    def run_folds() -> None:
        for fold in folds:
            system = build_system("cnn2d", device=bench_device)
            seconds["harness"] += fit(system, clipset.part(fold.train), clipset.part(fold.valid), 0)
            scoring = score(system, clipset.part(fold.test))
            seconds["harness"] += scoring.seconds
            accuracy["harness"].append(scoring.result["accuracy"])

            train = [index[t] for t in fold.train + fold.valid]
            test = [index[t] for t in fold.test]
            t0 = time.perf_counter()
            probs = plain_cnn.fit_predict([mels[i] for i in train], y[train], [mels[i] for i in test],
                                          len(clipset.classes), 0, bench_device)
            seconds["script"] += time.perf_counter() - t0
            accuracy["script"].append(float((probs.argmax(1) == y[test]).mean()))

    benchmark.pedantic(run_folds, rounds=1, iterations=1)
    mean = {k: float(np.mean(v)) for k, v in accuracy.items()}
    ratio = seconds["harness"] / seconds["script"]
    benchmark.extra_info.update(task=TASK, folds=len(folds), harness_accuracy=accuracy["harness"],
                                script_accuracy=accuracy["script"], harness_seconds=seconds["harness"],
                                script_seconds=seconds["script"], harness_vs_script_time=ratio)
    assert mean["harness"] >= mean["script"] - 0.025, f"accuracy {mean} over {len(folds)} folds"
    assert ratio <= 1.1, f"harness {seconds['harness']:.1f} s vs script {seconds['script']:.1f} s"
