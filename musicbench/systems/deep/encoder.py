"""The project's own deep systems as encoders: a fitted network's penultimate layer.

A checkpoint saved by ``DeepSystem.save`` (or trained on first use from a system preset
and a task, ``trained_checkpoint``) is cut into chunks as the system scores clips, and
each chunk gives the head's input (mean and max over time of the last feature maps). A
preset makes transfer from one task to another one line::

    family = "deep"
    licence = "as the training data"
    [params]
    system = "cnn1d"            # trained on first use on `task`, cached by content
    task = "synth_genre:mini"
    # checkpoint = "runs/cnn1d-gtzan.pt"   # or a saved checkpoint instead
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.encoders.base import Encoder, EncoderCard, file_digest, window_count, window_times
from musicbench.errors import ConfigError
from musicbench.systems.deep.checkpoint import encoder_family, load_checkpoint
from musicbench.systems.deep.inputs import FeatureBank
from musicbench.systems.deep.trained import trained_checkpoint


class DeepEncoder(Encoder):
    """Penultimate-layer embeddings of a fitted ``cnn1d``/``cnn2d``/``samplecnn``/``harmoniccnn``.

    ``checkpoint`` names a saved checkpoint; without one, ``system`` is fitted on every
    clip of ``task`` with ``seed`` and ``train_params`` (parameter overrides) on first use.
    Chunks are the system's own (``chunk_seconds``), every ``hop_seconds`` rounded to whole
    input frames (default: the system's own inference hop, ``1 - eval_overlap`` of a chunk:
    0.743 s for 1.5 s chunks of 512-sample frames at 22.05 kHz); the attribute
    ``hop_seconds`` is the hop used. Every chunk centred inside the clip is embedded, the
    last one padded with silence, so the frames stay on the regular grid HEAR requires
    (the system itself scores an end-aligned last chunk instead).
    """

    output_version = 2  # regular chunks with a padded tail (1: an extra chunk aligned to the clip's end)

    def __init__(self, checkpoint: str | None = None, system: str | None = None, task: str | None = None,
                 seed: int = 0, train_params: dict[str, Any] | None = None,
                 hop_seconds: float | None = None, batch_chunks: int = 64, device: str = "cpu"):
        super().__init__()
        if checkpoint is None:
            if system is None or task is None:
                raise ConfigError("a deep encoder needs a checkpoint, or a system and a task to train it on")
            checkpoint = str(trained_checkpoint(system, task, seed, **(train_params or {})))
        self.checkpoint = Path(checkpoint)  # the weights' file, also what musicbench.hear.load_model takes
        self.net, trained, self.meta = load_checkpoint(self.checkpoint)
        self.sample_rate = trained.sample_rate
        # the network's input computed from audio already at its rate (no resampling here)
        self.input = dataclasses.replace(trained, source_rate=trained.sample_rate)
        self.chunk_samples = int(round(self.meta["params"]["chunk_seconds"] * self.sample_rate))
        self.chunk = self.input.frames(self.chunk_samples)
        if hop_seconds is None:  # the system's own inference hop
            self.hop = max(1, int(round(self.chunk * (1 - self.meta["params"]["eval_overlap"]))))
        elif hop_seconds * self.sample_rate < self.input.hop:
            raise ConfigError(f"hop_seconds={hop_seconds}: must be at least one input frame")
        else:
            self.hop = int(round(hop_seconds * self.sample_rate / self.input.hop))  # in input frames
        self.hop_seconds = self.hop * self.input.hop / self.sample_rate
        self.batch_chunks = batch_chunks
        self.scene_embedding_size = self.timestamp_embedding_size = self.net.embedding_size
        self.to(device).eval()

    def _timestamps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, length = audio.shape
        inputs = [self.input(a) for a in audio.cpu().numpy()]  # [frames, bins] each
        bank = FeatureBank(inputs, self.device, self.input.pad_value)
        hop_samples = self.hop * self.input.hop
        count = window_count(length, self.chunk_samples, hop_samples)
        starts = np.arange(count) * self.hop
        chunks = bank.cut(np.repeat(np.arange(n), count), np.tile(starts, n), self.chunk)  # clip-major
        emb = torch.cat([self.net.embed(chunks[i:i + self.batch_chunks])
                         for i in range(0, len(chunks), self.batch_chunks)])
        times = window_times(count, self.chunk_samples, hop_samples, length, self.sample_rate)
        return emb.reshape(n, count, -1), times.to(self.device).expand(n, -1)

    def card(self) -> EncoderCard:
        meta = self.meta
        licence = f"own checkpoint, trained on {meta['task']} (the data's licence applies)"
        return EncoderCard(self.name, licence,
                           f"{meta['params']['model']} checkpoint {self.checkpoint}",
                           file_digest(self.checkpoint),
                           self.sample_rate, self.scene_embedding_size, self.timestamp_embedding_size)


def checkpoint_encoder_family(path: str | Path) -> str:
    """The encoder family that reads checkpoint ``path`` (``checkpoint.encoder_family``)."""
    return encoder_family(load_checkpoint(path)[2])
