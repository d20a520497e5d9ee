"""What a deep network reads, computed once per clip and cached on disk.

Fixed front ends (log-mel, CQT) and the waveform itself (resampled to the network's rate)
go through the feature cache like any classical front end: ``DeepInput`` is an
``Extractor``, so ``extract_frames`` keys each clip's input by its audio content, the
clip policy and the front end's config, and later fits, folds, trials and runs read it
back instead of recomputing. Training cuts chunks from these arrays in the feature
domain (``FeatureBank``), reading each chunk's frames from disk, so an epoch costs only
the network and memory does not grow with the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from musicbench.features import Extractor, FeatureCache
from musicbench.features.cache import CachedArray
from musicbench.features.lazy import ClipFrames, open_frames
from musicbench.systems.deep.frontend import CQT, LogMel, power_to_db
from musicbench.tasks import ClipData

INPUTS = ("logmel", "cqt", "wave")
SILENCE_DB = float(power_to_db(torch.tensor(0.0)))  # what a dB front end gives for silence
FRONTEND_VERSION = 1  # bump when the torch front ends change their output


class Identity(nn.Module):
    """The waveform front end: ``[batch, samples]`` -> ``[batch, 1, samples]``."""

    hop_length = 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return wave[:, None]


@dataclass(frozen=True, eq=True)
class DeepInput(Extractor):
    """A network's input for one clip: ``[frames, bins]`` (``[samples, 1]`` for ``wave``).

    ``source_rate`` is the task's sample rate, ``sample_rate`` the network's: the audio is
    resampled first where they differ. The torch ``module()`` computes the same thing on
    a batch of waveform chunks (used for augmented chunks, whose audio changes every
    epoch); cached and on-the-fly inputs come from the same code.
    """

    kind: str
    source_rate: int
    sample_rate: int
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    f_max: float | None = None
    n_bins: int = 84
    fmin: float = 32.70

    process_parallel = False  # torch runs in this process, batched on its own threads
    batch_size = 8

    @property
    def name(self) -> str:
        return f"deep-{self.kind}"

    @property
    def hop(self) -> int:
        """Samples per input frame."""
        return 1 if self.kind == "wave" else self.hop_length

    @property
    def pad_value(self) -> float:
        """What silence looks like in this input (past a clip's end)."""
        return 0.0 if self.kind == "wave" else SILENCE_DB

    def frames(self, n_samples: int) -> int:
        """Input frames for ``n_samples`` of audio at ``sample_rate`` (centred STFT frames)."""
        return n_samples if self.kind == "wave" else 1 + n_samples // self.hop_length

    def config(self) -> dict[str, Any]:
        fields = {"logmel": ("n_fft", "hop_length", "n_mels", "f_max"),
                  "cqt": ("hop_length", "n_bins", "fmin"), "wave": ()}[self.kind]
        return {"source_rate": self.source_rate, "sample_rate": self.sample_rate,
                "version": FRONTEND_VERSION, **{f: getattr(self, f) for f in fields}}

    @cached_property
    def _module(self) -> nn.Module:
        if self.kind == "logmel":
            return LogMel(self.sample_rate, self.n_fft, self.hop_length, self.n_mels, fmax=self.f_max)
        if self.kind == "cqt":
            return CQT(self.sample_rate, self.hop_length, self.n_bins, self.fmin)
        return Identity()

    def module(self, device: torch.device | str = "cpu") -> nn.Module:
        """The front end as a torch module: ``[batch, samples]`` -> ``[batch, bins, frames]``."""
        return self._module.to(device)

    def resample(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio at the network's rate."""
        y = np.asarray(audio, dtype=np.float32)
        y = y.mean(axis=0) if y.ndim > 1 else y
        if self.source_rate != self.sample_rate:
            import librosa

            y = librosa.resample(y, orig_sr=self.source_rate, target_sr=self.sample_rate)
        return np.ascontiguousarray(y, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        y = self.resample(audio)
        if self.kind == "wave":
            return y[:, None]
        with torch.no_grad():
            out = self.module()(torch.from_numpy(y)[None])[0]
        return np.ascontiguousarray(out.numpy().T, dtype=np.float32)


def clip_inputs(data: ClipData, spec: DeepInput, transform: str | None = None) -> ClipFrames:
    """Every clip's input ``[frames, bins]``, computed and cached where missing, left on
    disk and read when indexed.

    ``transform`` defaults to ``data.deform`` (test-time deformation), as for any feature.
    """
    return open_frames(data, [spec], FeatureCache(), transform=transform)


class FeatureBank:
    """Clips' inputs, one ``[frames, bins]`` array per clip, cut into chunks on demand.

    The arrays may be in memory or cached entries left on disk (``clip_inputs``): a chunk
    reads only its own frames, so memory holds one batch, not the task, and nothing is
    padded but the chunks that run past a clip's end.
    """

    def __init__(self, arrays: Sequence[np.ndarray | CachedArray], device: torch.device,
                 pad_value: float = 0.0):
        lazy = isinstance(arrays, ClipFrames) and len(arrays.columns) == 1 and arrays.then is None
        self.arrays = list(arrays.columns[0] if lazy else arrays)  # entries stay on disk
        self.lengths = np.array([len(a) for a in self.arrays], dtype=np.int64)
        self.bins = self.arrays[0].shape[1]
        self.device, self.pad_value = device, pad_value

    def __len__(self) -> int:
        return len(self.lengths)

    def read(self, rows: np.ndarray, starts: np.ndarray, length: int) -> torch.Tensor:
        """``[len(rows), bins, length]`` chunks in host memory, silence past a clip's end."""
        out = np.full((len(rows), self.bins, length), self.pad_value, dtype=np.float32)
        for j, (r, s) in enumerate(zip(rows.tolist(), starts.tolist(), strict=True)):
            part = self.arrays[r][s: s + length]
            out[j, :, : len(part)] = part.T
        return torch.from_numpy(out)

    def cut(self, rows: np.ndarray, starts: np.ndarray, length: int) -> torch.Tensor:
        """``read`` moved to the training device."""
        return self.read(rows, starts, length).to(self.device, non_blocking=True)


__all__ = ["INPUTS", "DeepInput", "FeatureBank", "clip_inputs"]
