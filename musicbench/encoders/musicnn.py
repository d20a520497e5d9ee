"""musicnn (Pons & Serra, 2019) in torch, with the pretrained weights of the musicnn 0.1.0 wheel.

The network: a log-mel patch (187 frames x 96 bands, 16 kHz, about 3 s) goes through a
musically motivated front end (timbral convolutions 7x38 and 7x67 spanning frequency,
temporal convolutions 128x1, 64x1 and 32x1 along time, each max-pooled over frequency),
a mid end of three 1-D convolutions with dense and residual connections, and a back end
that pools over time (max and mean), then two dense layers and a sigmoid taggram.

The weights are read straight from the TF1 checkpoints that ship in the ``musicnn`` wheel
(``pip install --no-deps musicnn==0.1.0``; TensorFlow is not needed) with
:mod:`musicbench.encoders.tfcheckpoint`.

Where this port deliberately differs from musicnn 0.1.0's ``extractor``:

- the log compression ``log10(10000 * mel + 1)`` runs in float32; musicnn casts the mel to
  float16 first, so loud input overflows to ``inf`` and every value is rounded to ~3 digits;
- every patch gets its own mid-end features (musicnn's extractor repeats the first batch's
  ``cnn1``/``cnn2``/``cnn3`` for all later patches; the layers exposed here were not affected
  there, but nothing is shared across patches here either);
- missing or unreadable weights raise an error (musicnn's bare ``except`` leaves the
  randomly initialised graph in place);
- a clip shorter than one patch gives one frame: its mel frames are repeated until they
  fill 187 frames (the ``repeat-pad`` that musicnn's training pipeline used for short
  clips, recorded in the checkpoint's ``config.json``), instead of no output at all.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musicbench.encoders.base import Encoder, EncoderCard, file_digest, window_times
from musicbench.encoders.tfcheckpoint import CheckpointError, read_checkpoint
from musicbench.errors import ConfigError, MusicbenchError, UnknownNameError

__all__ = [
    "LAYERS",
    "MODELS",
    "MissingWeightsError",
    "MusicnnEncoder",
    "MusicnnNet",
    "checkpoint_dir",
    "log_mel",
    "patch_starts",
]

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as musicnn computes it
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization default
MODELS = ("MTT_musicnn", "MSD_musicnn")
LAYERS: dict[str, int] = {"taggram": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}
INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"


class MissingWeightsError(MusicbenchError, ImportError):
    """The ``musicnn`` package that carries the pretrained checkpoints is not installed."""


# --------------------------------------------------------------------------- front end


def log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's input: ``log10(10000 * mel + 1)`` of librosa's power mel, float32, [..., T, 96].

    Same librosa call and parameters as musicnn's ``batch_data`` (sr 16000, n_fft 512,
    hop 256, 96 Slaney mel bands, power 2, centred frames), without its float16 cast.
    """
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
    ).astype(np.float32)
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0)).swapaxes(-1, -2)


def patch_starts(n_frames: int, hop_frames: int) -> list[int]:
    """First frame of each full 187-frame patch (musicnn drops a partial tail); [0] if short."""
    if n_frames <= PATCH_FRAMES:
        return [0]
    return list(range(0, n_frames - PATCH_FRAMES + 1, hop_frames))


# --------------------------------------------------------------------------- network


def _bn(channels: int, dims: int = 1) -> nn.Module:
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(channels, eps=BN_EPS)


class MusicnnNet(nn.Module):
    """The musicnn graph (``build_musicnn`` with 64 mid-end filters and 200 back-end units).

    ``forward`` takes log-mel patches ``[batch, frames, 96]`` and returns every patch-level
    output: ``logits``, ``taggram``, ``penultimate``, ``mean_pool`` and ``max_pool``.
    The network is fully convolutional up to the temporal pooling, so any patch length
    works, but the weights were trained on 187 frames.
    """

    def __init__(self, n_classes: int = 50, n_mels: int = N_MELS, midend: int = 64, backend: int = 200):
        super().__init__()
        self.input_bn = _bn(1, 2)
        # timbral: filters spanning 40% and 70% of the mel axis, 7 frames long
        self.timbral = nn.ModuleList(nn.Conv2d(1, 204, (7, int(f * n_mels))) for f in (0.4, 0.7))
        self.timbral_bn = nn.ModuleList(_bn(204, 2) for _ in range(2))
        # temporal: one band wide, 128/64/32 frames long ("same" padding in TF)
        self.temporal = nn.ModuleList(nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32))
        self.temporal_bn = nn.ModuleList(_bn(51, 2) for _ in range(3))
        front = 2 * 204 + 3 * 51
        self.mid = nn.ModuleList(nn.Conv1d(c, midend, 7) for c in (front, midend, midend))
        self.mid_bn = nn.ModuleList(_bn(midend) for _ in range(3))
        pooled = 2 * (front + 3 * midend)
        self.pool_bn = _bn(pooled)
        self.dense = nn.Linear(pooled, backend)
        self.dense_bn = _bn(backend)
        self.out = nn.Linear(backend, n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(x.unsqueeze(1))  # [B, 1, T, F]
        front = []
        for conv, bn in zip(self.timbral, self.timbral_bn, strict=True):
            front.append(bn(F.relu(conv(F.pad(x, (0, 0, 3, 3))))).amax(dim=3))
        for conv, bn in zip(self.temporal, self.temporal_bn, strict=True):
            k = conv.kernel_size[0]
            # TF "same" puts the extra pad row of an even kernel after the input
            pad = (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2)
            front.append(bn(F.relu(conv(F.pad(x, pad)))).amax(dim=3))
        h = torch.cat(front, dim=1)  # [B, 561, T]
        maps = [h]
        for i, (conv, bn) in enumerate(zip(self.mid, self.mid_bn, strict=True)):
            y = bn(F.relu(conv(F.pad(maps[-1], (3, 3)))))
            maps.append(y if i == 0 else y + maps[-1])
        feats = torch.cat(maps, dim=1)  # [B, 753, T]
        max_pool = feats.amax(dim=2)
        mean_pool = feats.mean(dim=2)
        # TF concatenates [max, mean] on a trailing axis, then flattens: interleaved order
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        logits = self.out(penultimate)
        return {
            "logits": logits,
            "taggram": torch.sigmoid(logits),
            "penultimate": penultimate,
            "mean_pool": mean_pool,
            "max_pool": max_pool,
        }

    def load_tf_weights(self, tensors: dict[str, np.ndarray]) -> None:
        """Copy the variables of a musicnn TF1 checkpoint in; every one must be present."""

        def get(name: str) -> torch.Tensor:
            if name not in tensors:
                raise CheckpointError(f"musicnn checkpoint lacks the variable {name!r}")
            return torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32))

        # TF creates layers in graph order: input BN, then conv/BN pairs, pool BN, dense
        convs = [*self.timbral, *self.temporal, *self.mid]
        bns = [self.input_bn, *self.timbral_bn, *self.temporal_bn, *self.mid_bn, self.pool_bn, self.dense_bn]
        state: dict[str, torch.Tensor] = {}
        names = {id(m): n for n, m in self.named_modules()}
        for i, conv in enumerate(convs):
            tf = f"conv2d_{i}" if i else "conv2d"
            kernel = get(f"{tf}/kernel")  # [kh, kw, in, out]
            if isinstance(conv, nn.Conv1d):  # TF conv2d whose width spans all channels
                weight = kernel[:, :, 0, :].permute(2, 1, 0)
            else:
                weight = kernel.permute(3, 2, 0, 1)
            state[f"{names[id(conv)]}.weight"] = weight
            state[f"{names[id(conv)]}.bias"] = get(f"{tf}/bias")
        for i, bn in enumerate(bns):
            tf = f"batch_normalization_{i}" if i else "batch_normalization"
            n = names[id(bn)]
            state[f"{n}.weight"] = get(f"{tf}/gamma")
            state[f"{n}.bias"] = get(f"{tf}/beta")
            state[f"{n}.running_mean"] = get(f"{tf}/moving_mean")
            state[f"{n}.running_var"] = get(f"{tf}/moving_variance")
            state[f"{n}.num_batches_tracked"] = torch.tensor(0)
        for lin, tf in ((self.dense, "dense"), (self.out, "dense_1")):
            state[f"{names[id(lin)]}.weight"] = get(f"{tf}/kernel").T
            state[f"{names[id(lin)]}.bias"] = get(f"{tf}/bias")
        own = self.state_dict()
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise CheckpointError(
                    f"musicnn checkpoint: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}"
                )
        self.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- weights


def _package_dir() -> Path:
    spec = importlib.util.find_spec("musicnn")
    if spec is None or spec.origin is None:
        raise MissingWeightsError(
            f"the musicnn encoder needs the pretrained weights of the musicnn package; "
            f"install them with: {INSTALL_HINT} (--no-deps: its pins would replace numpy/TensorFlow)"
        )
    return Path(spec.origin).parent


def checkpoint_dir(model: str) -> Path:
    """Folder of ``model``'s TF1 checkpoint inside the installed musicnn package."""
    if model not in MODELS:
        raise UnknownNameError("musicnn model", model, MODELS)
    return _package_dir() / model


def _checkpoint_files(folder: Path) -> tuple[Path, Path]:
    index, data = folder / ".index", folder / ".data-00000-of-00001"
    for f in (index, data):
        if not f.is_file():
            raise CheckpointError(
                f"musicnn checkpoint file missing: {f}; reinstall with: "
                f"{INSTALL_HINT.replace('--no-deps', '--no-deps --force-reinstall')}"
            )
    return index, data


# --------------------------------------------------------------------------- encoder


class MusicnnEncoder(Encoder):
    """Frozen musicnn (MTT or MSD) as an encoder: one embedding per 3-second patch.

    ``layer`` picks the patch-level output: ``taggram`` (50 tag probabilities),
    ``penultimate`` (200), ``mean_pool`` or ``max_pool`` (753, the temporal pooling of
    the concatenated front- and mid-end maps). Patches are 187 mel frames (2.99 s) taken
    every ``hop_seconds`` (``floor(hop_seconds * 16000 / 256)`` frames; the default 3.0
    gives musicnn's non-overlapping step of 187); a partial patch at the end is dropped
    as musicnn does, and a clip shorter than one patch is repeat-padded to one patch.
    Timestamps are the patches' centres, ``hop_seconds`` (the whole frames of the hop asked
    for) apart; a repeat-padded short clip's one patch is centred on the clip.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: str = "MTT_musicnn",
        layer: str = "max_pool",
        hop_seconds: float = 3.0,
        device: str = "cpu",
    ):
        super().__init__()
        if layer not in LAYERS:
            raise UnknownNameError("musicnn layer", layer, LAYERS)
        if not hop_seconds > 0:
            raise ConfigError(f"musicnn hop_seconds must be positive, got {hop_seconds!r}")
        folder = checkpoint_dir(model)
        index, data = _checkpoint_files(folder)
        labels = _labels(folder)
        self.model_name, self.layer = model, layer
        self.hop_frames = max(1, int(hop_seconds * SAMPLE_RATE / HOP_LENGTH))
        self.hop_seconds = self.hop_frames * HOP_LENGTH / SAMPLE_RATE  # 2.992 s for the default 3.0
        self.labels = labels
        self.name = f"musicnn-{model.split('_')[0].lower()}"
        self.scene_embedding_size = self.timestamp_embedding_size = LAYERS[layer]
        self.net = MusicnnNet(n_classes=len(labels))
        self.net.load_tf_weights(read_checkpoint(folder))
        self._files = (index, data)
        self.batch_size = 32
        self.eval().requires_grad_(False).to(device)

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = log_mel(audio.cpu().numpy())  # [n, T, 96]
        n, n_frames = mel.shape[0], mel.shape[1]
        starts = patch_starts(n_frames, self.hop_frames)
        if n_frames < PATCH_FRAMES:
            reps = -(-PATCH_FRAMES // n_frames)
            patches = np.tile(mel, (1, reps, 1))[:, None, :PATCH_FRAMES]
        else:
            patches = np.stack([mel[:, s : s + PATCH_FRAMES] for s in starts], axis=1)
        flat = torch.from_numpy(np.ascontiguousarray(patches.reshape(-1, PATCH_FRAMES, N_MELS)))
        out = [
            self.net(flat[i : i + self.batch_size].to(self.device))[self.layer]
            for i in range(0, flat.shape[0], self.batch_size)
        ]
        emb = torch.cat(out).reshape(n, len(starts), -1)
        # mel frame i is centred on sample i * HOP_LENGTH; a patch spans PATCH_FRAMES - 1 hops
        times = window_times(len(starts), (PATCH_FRAMES - 1) * HOP_LENGTH, self.hop_frames * HOP_LENGTH,
                             audio.shape[1], SAMPLE_RATE)
        return emb, times.to(self.device).expand(n, -1)

    def card(self) -> EncoderCard:
        try:
            version = importlib.metadata.version("musicnn")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return EncoderCard(
            name=self.name,
            licence=f"ISC (musicnn {version})",
            source=f"musicnn {version} wheel: musicnn/{self.model_name}/.data-00000-of-00001",
            weights_digest=file_digest(*self._files),
            sample_rate=self.sample_rate,
            scene_embedding_size=self.scene_embedding_size,
            timestamp_embedding_size=self.timestamp_embedding_size,
        )


def _labels(folder: Path) -> list[str]:
    """Tag names: musicnn keeps them in ``configuration.py`` (importing it needs no TF)."""
    from musicnn import configuration  # type: ignore[import-not-found]

    labels = configuration.MTT_LABELS if folder.name.startswith("MTT") else configuration.MSD_LABELS
    cfg = folder / "config.json"
    if cfg.is_file():
        n = json.loads(cfg.read_text()).get("num_classes_dataset")
        if n is not None and n != len(labels):
            raise CheckpointError(f"{cfg}: {n} classes but musicnn lists {len(labels)} tag names")
    return list(labels)
