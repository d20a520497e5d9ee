"""Encoders through the extractor seam: timestamp embeddings become a clip's frames.

``EncoderExtractor`` wraps a registered encoder so that ``extract_frames`` caches,
deforms, batches and reports on embeddings exactly as on hand-crafted frame features.
Its ``config()`` holds the encoder's preset name, resolved parameters, weight digest and
output version, so the cache key changes when the weights, the preset or the way the
encoder frames a clip do, never otherwise.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from musicbench.encoders import Encoder, EncoderCard, build_encoder, get_encoder_preset
from musicbench.features.extractor import Extractor

_built: dict[tuple[str, str, str], Encoder] = {}


def shared_encoder(name: str, device: str = "cpu", **overrides: Any) -> Encoder:
    """One built encoder per (name, device, overrides) and process: folds, trials and probes
    that use the same encoder load its weights once."""
    key = (name, device, repr(sorted(overrides.items())))
    if key not in _built:
        _built[key] = build_encoder(name, device=device, **overrides)
    return _built[key]


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (scipy): deterministic and exact in length ratio."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(orig_sr, target_sr)
    return resample_poly(audio, target_sr // g, orig_sr // g).astype(np.float32)


class EncoderExtractor(Extractor):
    """A clip's timestamp embeddings ``[frames, dims]`` from encoder preset ``encoder``.

    Clips arrive at the task's ``clip_rate`` and are resampled to the encoder's rate; a
    batch encodes clips of equal length together (the encoders take ``[n, samples]``).
    """

    process_parallel = False  # one model in this process, batched; never copied to workers

    def __init__(self, encoder: str, clip_rate: int, device: str = "cpu", batch_size: int = 16,
                 **overrides: Any):
        self.name = encoder
        self.clip_rate = clip_rate
        self.device = device
        self.batch_size = batch_size
        self.overrides = overrides

    @cached_property
    def encoder(self) -> Encoder:
        return shared_encoder(self.name, self.device, **self.overrides)

    def card(self) -> EncoderCard:
        return self.encoder.card()

    def config(self) -> dict[str, Any]:
        preset = get_encoder_preset(self.name)
        return {"family": preset["family"], "params": {**preset["params"], **self.overrides},
                "weights_digest": self.card().weights_digest,
                "output_version": self.encoder.output_version}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self.batch([audio])[0]

    def batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        rate = self.encoder.sample_rate
        waves = [resample(a.mean(axis=0) if a.ndim > 1 else a, self.clip_rate, rate) for a in audios]
        out: list[np.ndarray | None] = [None] * len(waves)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            by_length.setdefault(len(w), []).append(i)
        with torch.no_grad():
            for rows in by_length.values():
                x = torch.from_numpy(np.stack([waves[i] for i in rows])).to(self.encoder.device)
                emb, _ = self.encoder.timestamps(x)
                for i, e in zip(rows, emb.float().cpu().numpy(), strict=True):
                    out[i] = np.ascontiguousarray(e, dtype=np.float32)
        return out
