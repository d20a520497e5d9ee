"""One measured job of ``test_scale.py``, run in a process of its own so that its peak
resident memory is its own: ``python scale_job.py PHASE WORKLOAD TASK`` (in the folder
whose ``datasets/`` holds TASK's spec) prints one JSON line.

PHASE ``prepare`` fills the feature cache for WORKLOAD (every clip's entries, as the
runner's prefetch does) and reports the bytes per clip of each cache; ``measure`` reads
the warm cache: WORKLOAD ``cnn2d-small`` trains one epoch over every clip and scores a
fixed set of ``SCORED`` clips; ``probe`` and ``mfcc-stats-svm`` summarise every clip
(timed on its own: the data path) and then fit on all of them.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

SCORED = 256  # clips scored after the epoch: the same work at every size
PROBE = {"encoders": ["cnn1d-synth"], "summary": "mean", "classifier": "logreg", "C": 1.0}
WORKLOADS = ("cnn2d-small", "probe", "mfcc-stats-svm")


def system(workload: str):
    from musicbench.systems import build_system

    if workload == "cnn2d-small":
        return build_system("cnn2d-small", max_epochs=1, amp=False)
    if workload == "probe":
        return build_system("aisfx-probe", **PROBE)
    return build_system("mfcc-stats-svm")


def peak_rss() -> int:
    """Peak resident bytes of this process and of any it waited for (Linux: KiB units)."""
    self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self, children) * 1024


def cache_bytes(data, extractors) -> dict[str, float]:
    """Bytes per clip of each extractor's cache entries (files as written, digest included)."""
    from musicbench.features.lazy import open_frames

    out = {}
    for ex in extractors:
        entries = open_frames(data, [ex]).columns[0]
        out[ex.name] = sum(os.path.getsize(e.path) for e in entries) / len(entries)
    return out


def main(phase: str, workload: str, task: str) -> dict:
    import torch

    from musicbench.features import FeatureCache, extract_frames
    from musicbench.tasks import get_task

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    clipset = get_task(task).clips()
    data = clipset.part([c.track_id for c in clipset.clips])
    sys_ = system(workload)
    extractors = sys_.extractors(data.sample_rate)
    row = {"phase": phase, "workload": workload, "clips": len(data), "load_s": time.perf_counter() - t0}
    if phase == "prepare":
        t0 = time.perf_counter()
        extract_frames(data, extractors, FeatureCache(), keep=False)
        row["extract_s"] = time.perf_counter() - t0
        row["cache_bytes_per_clip"] = cache_bytes(data, extractors)
    elif workload == "cnn2d-small":
        t0 = time.perf_counter()
        sys_.fit(data)
        row["fit_s"] = time.perf_counter() - t0
        row["epoch_s"] = sys_.history_[0]["seconds"]
        row["work_s"] = row["epoch_s"]  # what must grow with the clips only
        scored = clipset.part([c.track_id for c in clipset.clips[:SCORED]])
        t0 = time.perf_counter()
        sys_.predict_scores(scored)
        row["predict_s"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        sys_._summarise(sys_.sources(data))
        row["summary_s"] = row["work_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sys_.fit(data)
        row["fit_s"] = time.perf_counter() - t0
    row["peak_rss"] = peak_rss()
    return row


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
