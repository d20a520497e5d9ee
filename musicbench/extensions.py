"""Entries of higher layers in lower layers' registries, and where every registry lives.

A lower layer never names a module above it, not even as a lazy string: the encoder
families backed by the project's own trained networks (``systems``, ``pretrain``) are
registered here, in the top layer, which ``import musicbench`` loads. ``HOLDERS`` are the
modules that create a registry; ``all_registries`` imports them (registry modules import
no heavy dependency at their top) so that ``musicbench list`` and the contract tests see
every kind.
"""

from __future__ import annotations

import importlib

from musicbench.registry import REGISTRIES, Registry, extend

extend("encoder family", {
    "deep": "musicbench.systems.deep.encoder:DeepEncoder",  # a fitted deep system's backbone
    "metric": "musicbench.systems.metric:MetricEncoder",  # a metric-learned embedding
    "ssl": "musicbench.pretrain.encoder:SSLEncoder",  # a self-supervised backbone (musicbench pretrain)
})

HOLDERS = (
    "musicbench.tasks.spec",
    "musicbench.augment",
    "musicbench.features.frontends",
    "musicbench.encoders",
    "musicbench.protocol.metrics",
    "musicbench.protocol.grammar",
    "musicbench.systems",
    "musicbench.systems.deep.architectures",
    "musicbench.runner.executors",
    "musicbench.report.registry",
)


def all_registries() -> dict[str, Registry]:
    """Every registry by kind, its holder imported."""
    for module in HOLDERS:
        importlib.import_module(module)
    return dict(REGISTRIES)
