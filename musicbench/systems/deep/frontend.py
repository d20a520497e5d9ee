"""Batched time-frequency front ends in plain torch, numerically matching librosa.

They run on whatever device their input lives on, so a GPU computes features for a whole
batch at once instead of one clip per CPU process. Outputs follow the classical front
ends of ``musicbench.features.frontends`` (``logmel``: ``power_to_db`` of a power
mel spectrogram; ``cqt``: ``amplitude_to_db`` of ``|librosa.cqt|``, both with
``ref=1`` and no ``top_db``), channel-first: ``[batch, bins, frames]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

AMIN_POWER = 1e-10  # librosa.power_to_db's default floor
AMIN_AMPLITUDE = 1e-5  # librosa.amplitude_to_db's default floor


def power_to_db(power: torch.Tensor, amin: float = AMIN_POWER) -> torch.Tensor:
    """``librosa.power_to_db(S, ref=1.0, top_db=None)``."""
    return 10.0 * torch.log10(torch.clamp(power, min=amin))


class Spectrogram(nn.Module):
    """Power (``power=2``) or magnitude (``power=1``) STFT: ``librosa.stft`` defaults
    (periodic Hann window, centred frames, zero padding)."""

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, power: float = 2.0):
        super().__init__()
        self.n_fft, self.hop_length, self.power = n_fft, hop_length, power
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` (or ``[samples]``) -> ``[batch, 1 + n_fft // 2, frames]``."""
        spec = torch.stft(wave, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        mag = spec.abs()
        return mag.square() if self.power == 2.0 else mag.pow(self.power)


class LogMel(nn.Module):
    """Log-power mel spectrogram in dB; the filter bank is ``librosa.filters.mel``."""

    def __init__(self, sample_rate: int, n_fft: int = 2048, hop_length: int = 512,
                 n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        import librosa

        self.spectrogram = Spectrogram(n_fft, hop_length, power=2.0)
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        self.hop_length, self.n_bins = hop_length, n_mels

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.spectrogram(wave)
        return power_to_db(torch.matmul(self.mel_basis, power))


class CQT(nn.Module):
    """Constant-Q magnitude in dB, as ``librosa.cqt`` (Hann wavelets, L1 norm, scaled).

    librosa filters octave by octave on a downsampled signal; here every bin is filtered
    at the full rate in one batched FFT product (frames of the longest wavelet's padded
    length), which is what a GPU is good at. The two agree to within resampling error.
    """

    def __init__(self, sample_rate: int, hop_length: int = 512, n_bins: int = 84,
                 fmin: float = 32.70, bins_per_octave: int = 12):
        super().__init__()
        import librosa

        freqs = librosa.cqt_frequencies(n_bins=n_bins, fmin=fmin, bins_per_octave=bins_per_octave)
        if freqs[-1] * (1 + 0.5 * (2 ** (1 / bins_per_octave) - 1)) >= sample_rate / 2:
            raise ValueError(f"cqt: {n_bins} bins from {fmin} Hz reach above Nyquist")
        alpha = librosa.filters._relative_bandwidth(freqs=freqs)
        basis, lengths = librosa.filters.wavelet(freqs=freqs, sr=sample_rate, norm=1, pad_fft=True,
                                                 window="hann", alpha=alpha)
        n_fft = basis.shape[1]
        basis = basis * (lengths[:, None] / n_fft)
        fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1] / np.sqrt(lengths)[:, None]
        fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=0.01).toarray()
        used = np.flatnonzero(np.abs(fft_basis).sum(axis=0))
        self.lo, self.hi = int(used[0]), int(used[-1]) + 1  # the band the bins cover: skip the rest
        band = fft_basis[:, self.lo:self.hi].astype(np.complex64)
        self.register_buffer("fft_basis", torch.from_numpy(band), persistent=False)
        self.register_buffer("window", torch.ones(n_fft), persistent=False)
        self.n_fft, self.hop_length, self.n_bins = n_fft, hop_length, n_bins

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = torch.stft(wave, self.n_fft, self.hop_length, window=self.window, center=True,
                            pad_mode="constant", return_complex=True)
        magnitude = torch.matmul(self.fft_basis, frames[..., self.lo:self.hi, :]).abs()
        return 20.0 * torch.log10(torch.clamp(magnitude, min=AMIN_AMPLITUDE))


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT over ``n_samples``."""
    return 1 + n_samples // hop_length


def midi_frequencies_hz(n: int, low_midi: float, high_midi: float) -> np.ndarray:
    """``n`` frequencies evenly spaced in pitch between two MIDI notes."""
    midi = np.linspace(low_midi, high_midi, n)
    return 440.0 * 2 ** ((midi - 69) / 12)


def erb_width(freq: torch.Tensor) -> torch.Tensor:
    """Equivalent rectangular bandwidth (Glasberg & Moore) in Hz."""
    return 0.1079 * freq + 24.7


class HarmonicFilterbank(nn.Module):
    """Learnable harmonic filter bank (Won et al., ICASSP 2020), applied to a power STFT.

    For each of ``n_f0`` fundamental frequencies (spaced by semitone between MIDI notes
    ``low_midi`` and ``high_midi``, and trainable) and each harmonic ``h`` it sums the
    spectrum under a triangular band centred on ``h * f0`` whose width is the ERB divided
    by a trainable quality factor (``learn_f0=False`` keeps the centres fixed, as in the
    published model, where only Q is trained). Output: ``[batch, n_harmonics, n_f0, frames]`` in dB,
    harmonics as channels, so a 2-D CNN sees pitch-aligned harmonic structure.
    """

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop_length: int = 512,
                 n_harmonics: int = 6, n_f0: int = 48, low_midi: float = 36.0,
                 high_midi: float | None = None, learn_f0: bool = True, width_scale: float = 1.0):
        super().__init__()
        high_midi = low_midi + n_f0 - 1 if high_midi is None else high_midi
        self.spectrogram = Spectrogram(n_fft, hop_length, power=2.0)
        log_f0 = torch.tensor(np.log(midi_frequencies_hz(n_f0, low_midi, high_midi)), dtype=torch.float32)
        if learn_f0:
            self.log_f0 = nn.Parameter(log_f0)
        else:
            self.register_buffer("log_f0", log_f0, persistent=False)
        self.log_q = nn.Parameter(torch.zeros(()))  # Q = 1 at start
        self.width_scale = width_scale  # half-width of a band = width_scale * ERB / Q
        fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
        self.register_buffer("fft_freqs", torch.tensor(fft_freqs, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("harmonics", torch.arange(1, n_harmonics + 1, dtype=torch.float32),
                             persistent=False)
        self.hop_length, self.n_bins = hop_length, n_f0

    def filters(self) -> torch.Tensor:
        """``[n_harmonics, n_f0, fft_bins]`` triangular weights."""
        centre = self.harmonics[:, None] * self.log_f0.exp()[None, :]
        width = self.width_scale * erb_width(centre) / self.log_q.exp()
        dist = (self.fft_freqs[None, None, :] - centre[..., None]).abs()
        return torch.relu(1.0 - dist / width[..., None])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.spectrogram(wave)  # [b, f, t]
        bank = torch.einsum("hkf,bft->bhkt", self.filters(), power)
        return power_to_db(bank)


__all__ = ["CQT", "HarmonicFilterbank", "LogMel", "Spectrogram", "n_frames", "power_to_db"]
