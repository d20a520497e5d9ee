"""Frozen pretrained encoders: audio in, embeddings out, in the shape of the HEAR 2021 API.

The registry works like the system registry: a preset in ``encoders/*.toml`` names its
``family`` (a name of the ``FAMILIES`` registry), its ``description``, ``licence`` and
default ``[params]``. Register a new family with one entry in ``FAMILIES`` (families of
higher layers, the project's own trained networks, are registered by
``musicbench.extensions``); register a new encoder by adding one preset file (a
workspace ``encoders/`` folder adds to or overrides the shipped ones). Family modules
are imported only when an encoder is built, so a missing optional package breaks only the
encoders that need it.
"""

from __future__ import annotations

from typing import Any

from musicbench.encoders.base import Encoder, EncoderCard
from musicbench.errors import ConfigError, MusicbenchError
from musicbench.presets import check_param_names, constructor_params, load_preset, preset_files
from musicbench.registry import Registry
from musicbench.runtime import check_device

FAMILIES: Registry[type[Encoder]] = Registry("encoder family", {
    "musicnn": "musicbench.encoders.musicnn:MusicnnEncoder",
    "aisfx": "musicbench.encoders.aisfx:AisfxEncoder",
    "crepe": "musicbench.encoders.crepe:CrepeEncoder",
    "hear": "musicbench.encoders.hear:HearEncoder",
}, doc="what an encoder preset's 'family' names: a frozen network, audio in, embeddings out")


def encoder_names() -> list[str]:
    return sorted(preset_files("encoder"))


def encoder_family_class(family: str) -> type[Encoder]:
    return FAMILIES[family]


def get_encoder_preset(name: str) -> dict[str, Any]:
    preset = load_preset("encoder", name)
    for key in ("family", "licence"):
        if key not in preset:
            raise ConfigError(f"encoder preset {preset['_path']}: missing {key!r}")
    preset.setdefault("description", "")
    preset.setdefault("params", {})
    return preset


def encoder_params(cls: type[Encoder]) -> list[str]:
    """The parameters a family accepts from a preset (``device`` comes from the caller)."""
    return constructor_params(cls, exclude=("device",))


def build_encoder(name: str, device: str = "cpu", **overrides: Any) -> Encoder:
    """A frozen encoder from its preset, in eval mode on ``device``, with parameter overrides."""
    preset = get_encoder_preset(name)
    return build_family_encoder(preset["family"], {**preset["params"], **overrides}, name, device,
                                licence=preset["licence"])


def build_family_encoder(family: str, params: dict[str, Any], name: str, device: str = "cpu",
                         licence: str | None = None) -> Encoder:
    """A frozen encoder of ``family`` built from ``params`` and called ``name``: what a preset
    and a checkpoint loaded without one (``musicbench.hear``) share. A family that cannot
    know its own licence (``hear``) takes ``licence``, the preset's."""
    check_device(device)
    cls = encoder_family_class(family)
    valid = encoder_params(cls)
    check_param_names(params, valid, name, family)
    if licence is not None and "licence" in valid:
        params = {"licence": licence, **params}
    try:
        encoder = cls(device=device, **params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"encoder {name}: {exc}") from None
    encoder.name = name
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def describe_encoder(name: str) -> dict[str, Any]:
    """One listing row: preset fields plus the card of the built encoder, or why it is unavailable.

    Building is the only honest availability check (the package imports *and* its weights
    load), so a listing pays for loading each encoder once.
    """
    row: dict[str, Any] = {"name": name, "family": "?", "licence": "?", "description": ""}
    try:
        preset = get_encoder_preset(name)
        row.update(family=preset["family"], licence=preset["licence"],
                   description=preset["description"])
        card = build_encoder(name).card()
    except Exception as exc:  # noqa: BLE001 - one broken preset must not hide the others
        reason = str(exc) if isinstance(exc, MusicbenchError) else f"{type(exc).__name__}: {exc}"
        row.update(available=False, reason=reason.splitlines()[0])
        return row
    row.update(available=True, sample_rate=card.sample_rate,
               scene_embedding_size=card.scene_embedding_size,
               timestamp_embedding_size=card.timestamp_embedding_size,
               source=card.source, weights_digest=card.weights_digest)
    return row


__all__ = ["FAMILIES", "Encoder", "EncoderCard", "build_encoder", "build_family_encoder",
           "describe_encoder", "encoder_names", "get_encoder_preset"]
