"""Frame-level front ends (librosa): each maps audio to a [frames, dims] float32 matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.features.extractor import Extractor
from musicbench.registry import Registry


@dataclass(frozen=True)
class Kind:
    """A front end: ``compute(front_end, audio) -> [bins, frames]``, and ``params``, the fields
    of ``FrontEnd`` that change its output (and so its cache key)."""

    compute: Callable[[FrontEnd, np.ndarray], np.ndarray]
    params: tuple[str, ...]
    doc: str = ""


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
                **{k: params[k] for k in FRONTENDS[self.name].params}}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(FRONTENDS[self.name].compute(self, audio).T, dtype=np.float32)

    @property
    def stft(self) -> dict[str, int]:
        return {"n_fft": self.n_fft, "hop_length": self.hop_length}


def _mel(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.melspectrogram(y=y, sr=fe.sample_rate, n_mels=fe.n_mels, **fe.stft)


def _logmel(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.power_to_db(_mel(fe, y), ref=1.0, top_db=None)


def _mfcc(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(S=_logmel(fe, y), n_mfcc=fe.n_mfcc)


def _cqt(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
    import librosa

    c = np.abs(librosa.cqt(y, sr=fe.sample_rate, hop_length=fe.hop_length, n_bins=fe.n_bins, fmin=fe.fmin))
    return librosa.amplitude_to_db(c, ref=1.0, top_db=None)


def _framed(name: str) -> Callable[[FrontEnd, np.ndarray], np.ndarray]:
    """librosa's ``rms`` and ``zero_crossing_rate``: frames of ``n_fft`` samples."""
    def compute(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
        import librosa

        return getattr(librosa.feature, name)(y=y, frame_length=fe.n_fft, hop_length=fe.hop_length)
    return compute


def _spectral(name: str, with_rate: bool = True) -> Callable[[FrontEnd, np.ndarray], np.ndarray]:
    """A librosa spectral feature on the STFT (``chroma_stft``, ``spectral_centroid``, ...)."""
    def compute(fe: FrontEnd, y: np.ndarray) -> np.ndarray:
        import librosa

        rate = {"sr": fe.sample_rate} if with_rate else {}
        return getattr(librosa.feature, name)(y=y, **rate, **fe.stft)
    return compute


_STFT, _MEL = ("n_fft", "hop_length"), ("n_fft", "hop_length", "n_mels")
FRONTENDS: Registry[Kind] = Registry("front end", {
    "mel": Kind(_mel, _MEL, "mel power spectrogram"),
    "logmel": Kind(_logmel, _MEL, "mel spectrogram in dB"),
    "cqt": Kind(_cqt, ("hop_length", "n_bins", "fmin"), "constant-Q magnitude in dB"),
    "mfcc": Kind(_mfcc, (*_MEL, "n_mfcc"), "MFCCs of the log-mel spectrogram"),
    "chroma": Kind(_spectral("chroma_stft"), _STFT, "12 pitch classes from the STFT"),
    "rms": Kind(_framed("rms"), _STFT, "root-mean-square energy"),
    "centroid": Kind(_spectral("spectral_centroid"), _STFT, "spectral centroid (Hz)"),
    "bandwidth": Kind(_spectral("spectral_bandwidth"), _STFT, "spectral bandwidth (Hz)"),
    "rolloff": Kind(_spectral("spectral_rolloff"), _STFT, "85% roll-off frequency (Hz)"),
    "contrast": Kind(_spectral("spectral_contrast"), _STFT, "spectral contrast of 7 bands"),
    "flatness": Kind(_spectral("spectral_flatness", with_rate=False), _STFT, "spectral flatness"),
    "zcr": Kind(_framed("zero_crossing_rate"), _STFT, "zero-crossing rate"),
}, doc="what a system's 'features' name: frame-wise features computed with librosa and cached")


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
