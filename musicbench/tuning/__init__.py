"""Optuna tuning over the presets' search spaces, on validation data only (``musicbench tune``)."""

from musicbench.tuning.study import load_tuned

__all__ = ["load_tuned"]
