"""Frame-level front ends (librosa): each maps audio to a [frames, dims] float32 matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.features.extractor import Extractor

# name -> the parameters that change its output (and so its cache key)
FRONTENDS: dict[str, tuple[str, ...]] = {
    "mel": ("n_fft", "hop_length", "n_mels"),
    "logmel": ("n_fft", "hop_length", "n_mels"),
    "cqt": ("hop_length", "n_bins", "fmin"),
    "mfcc": ("n_fft", "hop_length", "n_mels", "n_mfcc"),
    "chroma": ("n_fft", "hop_length"),
    "rms": ("n_fft", "hop_length"),
    "centroid": ("n_fft", "hop_length"),
    "bandwidth": ("n_fft", "hop_length"),
    "rolloff": ("n_fft", "hop_length"),
    "contrast": ("n_fft", "hop_length"),
    "flatness": ("n_fft", "hop_length"),
    "zcr": ("n_fft", "hop_length"),
}


@dataclass(frozen=True)
class FrontEnd(Extractor):
    """One librosa front end and its parameters, validated against the sample rate.

    Single-threaded and CPU-bound, so extraction fans out to one worker process per core.
    """

    name: str
    sample_rate: int
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    n_bins: int = 84
    fmin: float = 32.70  # C1

    def __post_init__(self):
        if self.name not in FRONTENDS:
            raise UnknownNameError("front end", self.name, FRONTENDS)
        if self.n_fft < 64 or self.n_fft & (self.n_fft - 1):
            raise ConfigError(f"front end {self.name}: n_fft={self.n_fft} must be a power of 2 >= 64")
        if not 1 <= self.hop_length <= self.n_fft:
            raise ConfigError(f"front end {self.name}: hop_length must be in 1..n_fft={self.n_fft}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ConfigError(f"front end {self.name}: n_mfcc={self.n_mfcc} must be in 1..n_mels")
        if self.n_mels < 1 or self.n_bins < 1 or self.fmin <= 0:
            raise ConfigError(f"front end {self.name}: n_mels, n_bins and fmin must be positive")
        top = self.fmin * 2 ** (self.n_bins / 12)
        if self.name == "cqt" and top >= self.sample_rate / 2:
            raise ConfigError(
                f"front end cqt: {self.n_bins} bins from {self.fmin} Hz reach {top:.0f} Hz, above "
                f"Nyquist ({self.sample_rate / 2:.0f} Hz); lower n_bins or fmin"
            )

    def config(self) -> dict[str, Any]:
        """What defines the output: the cache key's front-end part."""
        params = asdict(self)
        return {"name": self.name, "sample_rate": self.sample_rate,
                **{k: params[k] for k in FRONTENDS[self.name]}}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import librosa

        y, sr, n_fft, hop = audio, self.sample_rate, self.n_fft, self.hop_length
        stft = dict(n_fft=n_fft, hop_length=hop)
        if self.name in ("mel", "logmel", "mfcc"):
            mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=self.n_mels, **stft)
            if self.name == "mel":
                out = mel
            else:
                out = librosa.power_to_db(mel, ref=1.0, top_db=None)
                if self.name == "mfcc":
                    out = librosa.feature.mfcc(S=out, n_mfcc=self.n_mfcc)
        elif self.name == "cqt":
            c = np.abs(librosa.cqt(y, sr=sr, hop_length=hop, n_bins=self.n_bins, fmin=self.fmin))
            out = librosa.amplitude_to_db(c, ref=1.0, top_db=None)
        elif self.name == "chroma":
            out = librosa.feature.chroma_stft(y=y, sr=sr, **stft)
        elif self.name == "rms":
            out = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)
        elif self.name == "zcr":
            out = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)
        else:
            fn = {
                "centroid": librosa.feature.spectral_centroid,
                "bandwidth": librosa.feature.spectral_bandwidth,
                "rolloff": librosa.feature.spectral_rolloff,
                "contrast": librosa.feature.spectral_contrast,
                "flatness": librosa.feature.spectral_flatness,
            }[self.name]
            kwargs = {} if self.name == "flatness" else {"sr": sr}
            out = fn(y=y, **kwargs, **stft)
        return np.ascontiguousarray(out.T, dtype=np.float32)


_warmed: set[FrontEnd] = set()


def warm(extractors: list[Extractor]) -> None:
    """Run each front end once on a short signal in this process, before worker processes
    start: librosa's numba kernels are then compiled and in numba's cache, which the workers
    load. Workers started together on a fresh install would otherwise all compile and cache
    them at once, and can crash doing so (segmentation faults in cached gufuncs)."""
    for ex in extractors:
        if isinstance(ex, FrontEnd) and ex not in _warmed:
            ex(0.1 * np.random.default_rng(0).standard_normal(ex.sample_rate).astype(np.float32))
            _warmed.add(ex)
