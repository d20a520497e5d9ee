"""The metric family's networks: an audio branch and a tag branch in one space.

Apart from the system that trains them, so that a checkpoint rebuilds its network from
the backbone's ``NetSpec`` and the projection sizes alone (``build_metric_net``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from musicbench.systems.deep.netspec import NetSpec

BUILD = "musicbench.systems.metric_net:build_metric_net"  # what a metric checkpoint names


class MetricNet(nn.Module):
    """The two branches. ``embed(chunks)``: the audio branch, ``[batch, dim]`` unit vectors;
    ``tag_vectors()``: ``[tags, dim]`` unit vectors; ``forward``: their cosine similarities.

    ``backbone`` maps input chunks to ``[batch, size]`` (a deep network's pooled feature
    maps, or the flattened pooled encoder embedding); both branches end in a projection.
    """

    def __init__(self, backbone: nn.Module, size: int, n_tags: int, dim: int, hidden: int):
        super().__init__()
        self.backbone = backbone
        self.audio_projection = nn.Sequential(nn.BatchNorm1d(size), nn.Linear(size, hidden), nn.ReLU(),
                                              nn.Linear(hidden, dim))
        self.tags = nn.Embedding(n_tags, dim)
        self.tag_projection = nn.Linear(dim, dim)
        self.embedding_size = dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.audio_projection(self.backbone(x).float()), dim=1)

    def tag_vectors(self) -> torch.Tensor:
        return nn.functional.normalize(self.tag_projection(self.tags.weight), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x) @ self.tag_vectors().T


class DeepBackbone(nn.Module):
    """A deep-family network's penultimate layer (``ChunkClassifier.embed``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


class Pooled(nn.Module):
    """A clip's pooled encoder embedding, stored as a one-frame input: ``[b, size, 1]`` -> ``[b, size]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0]


def build_metric_net(backbone: dict[str, Any], n_tags: int, dim: int, hidden: int) -> MetricNet:
    """The network of a metric checkpoint: the deep backbone of ``backbone`` (a ``NetSpec``'s
    ``to_dict``), its pooled feature maps projected to ``dim``, and ``n_tags`` tag vectors."""
    net = DeepBackbone(NetSpec.from_dict(backbone).build())
    return MetricNet(net, net.net.embedding_size, n_tags, dim, hidden)
