"""A small, deterministic HEAR 2021 module for the adapter tests: a fixed random projection
of log-power spectrogram frames (16 kHz, 32 ms frames every 16 ms)."""

from __future__ import annotations

import torch
from torch import nn

__license__ = "MIT"
__version__ = "0.0.1"


class ToyModel(nn.Module):
    sample_rate = 16000
    scene_embedding_size = 32
    timestamp_embedding_size = 32
    n_fft, hop = 512, 256

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(self.n_fft // 2 + 1, self.timestamp_embedding_size)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=g) / 16)
            self.proj.bias.zero_()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.n_fft, device=audio.device)
        spec = torch.stft(audio, self.n_fft, self.hop, window=window, return_complex=True)
        return self.proj(torch.log1p(spec.abs() ** 2).transpose(1, 2))


def load_model(model_file_path: str = "") -> ToyModel:
    model = ToyModel()
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path, weights_only=True))
    return model.eval()


def get_timestamp_embeddings(audio: torch.Tensor, model: ToyModel) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        emb = model(audio)
    ms = torch.arange(emb.shape[1], dtype=torch.float32) * model.hop / model.sample_rate * 1000
    return emb, ms.expand(audio.shape[0], -1)


def get_scene_embeddings(audio: torch.Tensor, model: ToyModel) -> torch.Tensor:
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(dim=1)
