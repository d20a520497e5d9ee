"""What every network of the deep family is: a backbone (``embed``: the head's input) and a
``head`` on it, so any of them can be pretrained, frozen, or used as an encoder."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """``forward`` is ``head(embed(x))``; subclasses define ``embed`` and a ``head`` module.
    A frozen backbone trains the head only: the rest keeps its weights and, in eval mode,
    its batch-norm statistics (a linear probe on a fixed backbone)."""

    frozen = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input chunks -> ``[batch, embedding_size]``: the head's input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    @property
    def embedding_size(self) -> int:
        return next(m for m in self.head.modules() if isinstance(m, nn.Linear)).in_features

    def freeze_backbone(self) -> Backbone:
        self.frozen = True
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("head."))
        return self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:
            for name, part in self.named_children():
                if name != "head":
                    part.eval()
        return self
