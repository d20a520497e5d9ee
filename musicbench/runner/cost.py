"""The end-to-end inference cost of a cell's test clips: decoding, front ends or
encoders, and the head.

Features are read from the cache, so scoring time alone (``predict_seconds``) is the
head's. The rest comes from what each clip's cache entries recorded when they were
computed (``features.cache.Cost``), whenever that was: a cache hit costs as much as the
miss that filled it. A clip is decoded once for all of a system's extractors, so its cost
is the largest decode of its entries plus every extractor's compute. The median over the
clips is kept: the first clip of a worker pays one-off start-up (numba compiling librosa's
kernels, a model's first batch: seconds), which is not what a clip costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicbench.features.extract import clip_costs
from musicbench.tasks import ClipData


def inference_cost(est: Any, test: ClipData, head_seconds: float) -> tuple[dict[str, float | None], dict]:
    """(the record's per-clip cost fields, the breakdown kept in its ``details["cost"]``)."""
    n = max(1, len(test))
    head = head_seconds / n
    extractors = est.extractors(test.sample_rate)
    fields: dict[str, float | None] = {"head_seconds_per_clip": round(head, 7),
                                       "features_seconds_per_clip": 0.0,
                                       "infer_seconds_per_clip": round(head, 7)}
    if not extractors:  # the system computes its own inputs inside scoring: all of it is the head's
        return fields, {"head": head, "extractors": {}}
    costs = clip_costs(test, extractors)
    known = [c for c in costs if all(e is not None for e in c)]
    detail: dict[str, Any] = {"head": head, "clips_without_cost": len(costs) - len(known)}
    if not known:
        fields["features_seconds_per_clip"] = fields["infer_seconds_per_clip"] = None
        return fields, detail
    decode = np.median([max(e.decode for e in c) for c in known])
    compute = {ex.name: float(np.median([c[j].compute for c in known])) for j, ex in enumerate(extractors)}
    audio = float(np.mean([c[0].audio for c in known]))
    features = float(decode + sum(compute.values()))
    fields["features_seconds_per_clip"] = round(features, 7)
    fields["infer_seconds_per_clip"] = round(features + head, 7)
    detail.update(decode=float(decode), extractors=compute, audio_seconds=audio,
                  per_audio_second=(features + head) / audio if audio > 0 else None,
                  devices=sorted({e.device for c in known for e in c}),
                  workers=sorted({e.workers for c in known for e in c}))
    return fields, detail
