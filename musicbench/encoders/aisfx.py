"""aiSFX (Ma et al., ISMIR 2022): sound-effects embeddings, 512-d per 2.3 s block.

The network and its weights come from the ``aisfx`` 0.1.2 package (the checkpoint ships in
its wheel, CC BY 4.0). Its preprocessing lives here instead, because the package's own
paths cannot be used as they are: the original one needs Essentia, the librosa fallback
blocks the untransposed spectrogram (mel bands taken for frames) and its loader calls
``torch.load`` in the unsafe mode that torch >= 2.6 refuses. We rebuild the Essentia front
end it was trained on:

- 44.1 kHz mono, 2048-sample symmetric Hann frames every 1024 samples, the first centred on
  sample 0 (Essentia's ``FrameCutter``), magnitude spectrum squared (``MelBands`` power);
- 96 triangular bands, 0-22050 Hz, HTK mel scale, triangles drawn on the mel axis
  ("warping") and each normalised to unit sum;
- ``log10(1e4 * x + 1)``, divided by 9.4578 (the training set's maximum, ``spec_norm='original'``);
- blocks of 100 frames every ``hop`` blocks (0.5 in the paper); the network max-pools each
  block to one vector. A clip shorter than one block is zero-padded to one block rather
  than dropped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from musicbench.encoders.base import Encoder, EncoderCard, file_digest, window_count, window_times
from musicbench.errors import ConfigError

SAMPLE_RATE = 44100
N_FFT, HOP = 2048, 1024
N_MELS, F_MIN, F_MAX = 96, 0.0, 22050.0
BLOCK = 100  # frames per embedding, ~2.3 s
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize('original')
INSTALL = "pip install --no-deps aisfx==0.1.2"


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def essentia_mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                         fmin: float = F_MIN, fmax: float = F_MAX) -> np.ndarray:
    """Essentia ``MelBands`` (htkMel, weighting='warping', normalize='unit_sum'): [n_mels, n_fft//2+1]."""
    n_bins = n_fft // 2 + 1
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(fmin)), _hz_to_mel(np.float64(fmax)), n_mels + 2))
    scale = (sr / 2.0) / (n_bins - 1)
    freqs = np.arange(n_bins) * scale
    mels = _hz_to_mel(freqs)
    weights = np.zeros((n_mels, n_bins))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        j = np.arange(int(lo / scale + 0.5), min(int(hi / scale + 0.5), n_bins))
        f, m = freqs[j], mels[j]
        up = (f >= lo) & (f < mid)
        down = (f >= mid) & (f < hi)
        weights[i, j[up]] = (m[up] - _hz_to_mel(lo)) / (_hz_to_mel(mid) - _hz_to_mel(lo))
        weights[i, j[down]] = (_hz_to_mel(hi) - m[down]) / (_hz_to_mel(hi) - _hz_to_mel(mid))
        total = weights[i].sum()
        if total > 0:
            weights[i] /= total
    return weights


def checkpoint_path() -> Path:
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"encoder family aisfx needs the aisfx package: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise ConfigError(f"aisfx is installed but its checkpoint {path} is missing: {INSTALL}")
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The ``(state_dict, datasets)`` pickle, read with ``weights_only=True``.

    It holds numpy scalars and dtypes (pickled under numpy 1's ``numpy.core`` name), which
    are the only non-tensor globals allowed here.
    """
    from numpy._core.multiarray import scalar

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


class AisfxEncoder(Encoder):
    """aiSFX X-Sequential-CE embedding network on the Essentia log-mel front end."""

    sample_rate = SAMPLE_RATE
    scene_embedding_size = 512
    timestamp_embedding_size = 512
    licence = "CC-BY-4.0"
    output_version = 2  # blocks of a padded tail: centred inside the clip, on the regular grid

    def __init__(self, hop: float = 0.5, drop_partial_block: bool = True, batch_blocks: int = 32,
                 device: str = "cpu"):
        super().__init__()
        if not 0 < hop <= 1:
            raise ValueError(f"hop is a fraction of the 100-frame block in (0, 1], got {hop}")
        try:
            from aisfx.models.cnn2d import EmbeddingNet
        except ImportError as exc:
            raise ConfigError(f"encoder family aisfx needs the aisfx package ({exc}): {INSTALL}") from exc
        self.hop_frames = max(1, round(BLOCK * hop))
        self.hop_seconds = self.hop_frames * HOP / SAMPLE_RATE
        self.drop_partial_block = drop_partial_block
        self.batch_blocks = batch_blocks
        self._weights = checkpoint_path()
        state, _datasets = load_checkpoint(self._weights)
        prefix = "embedding_net."
        self.net = EmbeddingNet("max", 3, 1, 64)  # as aisfx.inference.load_bestModel builds it
        self.net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        self.register_buffer("mel_fb", torch.tensor(essentia_mel_filters(), dtype=torch.float32))
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=False))
        self.to(device).eval()

    def logmel(self, audio: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel frames ``[n, frames, 96]``; frame ``i`` is centred at ``i * 1024`` samples."""
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        mel = torch.matmul(self.mel_fb, power)
        return (torch.log10(1e4 * mel + 1.0) / SPEC_MAX).transpose(1, 2)

    def n_blocks(self, n_samples: int) -> int:
        """Full blocks only with ``drop_partial_block`` (the paper's setting); otherwise every
        block centred inside the clip, the last one zero-padded."""
        frames = 1 + n_samples // HOP
        if self.drop_partial_block:
            return 1 + max(0, (frames - BLOCK) // self.hop_frames)
        return window_count(n_samples, (BLOCK - 1) * HOP, self.hop_frames * HOP)

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = self.logmel(audio)
        n, frames, bands = mel.shape
        nb = self.n_blocks(audio.shape[1])
        need = (nb - 1) * self.hop_frames + BLOCK
        if need > frames:
            mel = torch.nn.functional.pad(mel, (0, 0, 0, need - frames))
        blocks = mel.unfold(1, BLOCK, self.hop_frames)[:, :nb].transpose(2, 3)  # [n, nb, 100, 96]
        flat = blocks.reshape(n * nb, BLOCK, bands)
        emb = torch.cat([self.net(flat[i:i + self.batch_blocks])
                         for i in range(0, len(flat), self.batch_blocks)])
        # frame i is centred on sample i * HOP, so a block's centre is (BLOCK - 1) / 2 frames in
        times = window_times(nb, (BLOCK - 1) * HOP, self.hop_frames * HOP, audio.shape[1], SAMPLE_RATE)
        return emb.reshape(n, nb, -1), times.to(emb.device).expand(n, -1)

    def card(self) -> EncoderCard:
        return EncoderCard(self.name, self.licence, "aisfx==0.1.2 (PyPI), aisfx/models/checkpoint.pth",
                           file_digest(self._weights), self.sample_rate, self.scene_embedding_size,
                           self.timestamp_embedding_size)
