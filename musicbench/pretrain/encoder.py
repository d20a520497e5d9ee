"""Self-supervised backbones as encoders (family ``ssl``).

A preset names a checkpoint written by ``musicbench pretrain``, or what to pretrain on
first use (cached by content, so every later build reuses it)::

    family = "ssl"
    licence = "as the pretraining data"
    [params]
    backbone = "cnn1d-small"     # a deep system preset
    task = "synth_genre:mini"    # its default protocol's fold 0, train and valid parts
    epochs = 2
    # checkpoint = "runs/ssl/cnn1d.pt"   # or a pretrained checkpoint instead
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError
from musicbench.runtime import cache_root
from musicbench.systems.deep.contrastive import VERSION
from musicbench.systems.deep.encoder import DeepEncoder


class SSLEncoder(DeepEncoder):
    """Penultimate-layer embeddings of a contrastively pretrained backbone.

    ``checkpoint`` names a ``musicbench pretrain`` output; without one, ``backbone`` is
    pretrained on ``task`` (``protocol``/``fold``: its training part only) with ``epochs``,
    ``batch_size``, ``temperature``, ``views``, ``seed`` and backbone ``overrides``.
    """

    def __init__(self, checkpoint: str | None = None, backbone: str | None = None, task: str | None = None,
                 protocol: str | None = None, fold: int = 0, epochs: int = 20, batch_size: int = 32,
                 temperature: float = 0.1, views: list[str] | None = None, seed: int = 0,
                 overrides: dict[str, Any] | None = None, hop_seconds: float | None = None,
                 batch_chunks: int = 64, device: str = "cpu"):
        if checkpoint is None:
            if backbone is None or task is None:
                raise ConfigError("an ssl encoder needs a checkpoint, or a backbone and a task to "
                                  "pretrain on")
            checkpoint = str(pretrained(backbone=backbone, task=task, protocol=protocol, fold=fold,
                                        epochs=epochs, batch_size=batch_size, temperature=temperature,
                                        views=tuple(views) if views else None, seed=seed,
                                        overrides=dict(overrides or {})))
        super().__init__(checkpoint=checkpoint, hop_seconds=hop_seconds, batch_chunks=batch_chunks,
                         device=device)


def pretrained(**settings: Any) -> Path:
    """The checkpoint of a ``PretrainRun`` with ``settings``, pretrained on first use into
    the cache (not logged) and reused after; on CPU it runs on one thread
    (``pretrain_backbone``), so every machine builds the same weights."""
    from musicbench.pretrain.run import PretrainRun, pretrain
    from musicbench.systems import get_preset

    spec = {**settings, "preset": get_preset(settings["backbone"])["params"], "version": VERSION}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_root() / "pretrained" / f"ssl-{settings['backbone']}-{key}.pt"
    if not path.is_file():
        pretrain(PretrainRun(out=path, track=False, **settings), log=lambda _: None)
    return path
