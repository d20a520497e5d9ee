"""Seeded audio transforms for train-time augmentation and test-time deformation.

A spec chains transforms with ``+``: ``pitch``, ``stretch``, ``eq``, ``noise`` (or
``all`` for the four). Without a value a transform draws its amount at random from its
range (augmentation); with one it applies exactly that amount (deformation):

- ``pitch[:SEMITONES]`` pitch shift, random in [-2, 2] semitones;
- ``stretch[:RATE]`` time stretch, random rate in [0.85, 1.15] (> 1 is faster);
- ``eq[:DB]`` two random peaking/shelving filters, gains up to +-DB (default 6);
- ``noise[:SNR_DB]`` additive Gaussian noise at SNR_DB, random in [10, 30] dB.

The same (spec, seed) always gives the same output, so runs are reproducible; the spec
is recorded with every result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from musicbench.errors import ConfigError
from musicbench.registry import Registry


@dataclass(frozen=True)
class Transform:
    """``fn(audio, sr, rng, amount)``: ``amount`` fixed (deformation), or None to draw it from
    ``rng`` (augmentation); a fixed amount must lie in ``limits``."""

    fn: Callable[[np.ndarray, int, np.random.Generator, float | None], np.ndarray]
    limits: tuple[float, float]
    doc: str = ""

    def check(self, name: str, spec: str, amount: float) -> None:
        lo, hi = self.limits
        if not lo <= amount <= hi:
            raise ConfigError(f"augmentation {spec!r}: {name} amount must be in [{lo}, {hi}]")


TRANSFORMS: Registry[Transform] = Registry("augmentation", doc="a step of an augmentation or "
                                           "deformation spec (chained with +, amount fixed with :VALUE)")


def parse(spec: str) -> list[tuple[str, float | None]]:
    """``"pitch:2+noise"`` -> ``[("pitch", 2.0), ("noise", None)]``; errors name the valid forms."""
    steps = []
    for part in spec.replace("all", "+".join(TRANSFORMS)).split("+"):
        name, _, value = part.strip().partition(":")
        if name not in TRANSFORMS:
            raise ConfigError(
                f"augmentation {spec!r}: unknown transform {name!r}; valid: {', '.join(TRANSFORMS)}, "
                "all, none (chain with +, fix an amount with :VALUE)"
            )
        amount = None
        if value:
            try:
                amount = float(value)
            except ValueError:
                raise ConfigError(f"augmentation {spec!r}: {value!r} is not a number") from None
            TRANSFORMS[name].check(name, spec, amount)
        steps.append((name, amount))
    return steps


def seed_for(*parts: str) -> int:
    """A stable 32-bit seed from strings (e.g. track id and spec), so each clip's transform
    is the same in every process and every run."""
    return int.from_bytes(hashlib.sha1("|".join(parts).encode()).digest()[:4], "little")


def validate_spec(spec: str) -> str:
    parse(spec)
    return spec


def _eq(audio: np.ndarray, sr: int, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """Two random biquads: a peaking filter and a low or high shelf (RBJ cookbook)."""
    from scipy import signal  # here, not at the top: scipy.signal loads scipy.stats (~0.7 s)

    out = audio
    for kind in ("peak", rng.choice(["lowshelf", "highshelf"])):
        gain = rng.uniform(-max_db, max_db)
        f0 = rng.uniform(100, min(8000, 0.4 * sr)) if kind == "peak" else (
            rng.uniform(100, 400) if kind == "lowshelf" else rng.uniform(2000, min(6000, 0.4 * sr)))
        a = 10 ** (gain / 40)
        w0 = 2 * np.pi * f0 / sr
        alpha = np.sin(w0) / (2 * 0.7)
        cw = np.cos(w0)
        if kind == "peak":
            b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
            den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
        else:
            sign = 1 if kind == "lowshelf" else -1
            sq = 2 * np.sqrt(a) * alpha
            b = [a * ((a + 1) - sign * (a - 1) * cw + sq), sign * 2 * a * ((a - 1) - sign * (a + 1) * cw),
                 a * ((a + 1) - sign * (a - 1) * cw - sq)]
            den = [(a + 1) + sign * (a - 1) * cw + sq, -sign * 2 * ((a - 1) + sign * (a + 1) * cw),
                   (a + 1) + sign * (a - 1) * cw - sq]
        out = signal.lfilter(b, den, out)
    return out


def _pitch(y: np.ndarray, sr: int, rng: np.random.Generator, amount: float | None) -> np.ndarray:
    import librosa

    steps = amount if amount is not None else rng.uniform(-2, 2)
    return librosa.effects.pitch_shift(y, sr=sr, n_steps=float(steps))


def _stretch(y: np.ndarray, sr: int, rng: np.random.Generator, amount: float | None) -> np.ndarray:
    import librosa

    rate = amount if amount is not None else rng.uniform(0.85, 1.15)
    return librosa.effects.time_stretch(y, rate=float(rate))


def _noise(y: np.ndarray, sr: int, rng: np.random.Generator, amount: float | None) -> np.ndarray:
    snr = amount if amount is not None else rng.uniform(10, 30)
    power = float(np.mean(np.square(y))) + 1e-12
    return y + rng.standard_normal(y.shape) * np.sqrt(power / 10 ** (snr / 10))


TRANSFORMS.register("pitch", Transform(_pitch, (-12.0, 12.0), "pitch shift in semitones, random in [-2, 2]"))
TRANSFORMS.register("stretch", Transform(_stretch, (0.25, 4.0), "time stretch rate (> 1 faster), "
                                         "random in [0.85, 1.15]"))
TRANSFORMS.register("eq", Transform(lambda y, sr, rng, db: _eq(y, sr, rng, 6.0 if db is None else db),
                                    (0.0, 24.0), "two random peaking/shelving filters, gains up to "
                                                 "+-DB (default 6)"))
TRANSFORMS.register("noise", Transform(_noise, (-20.0, 80.0), "additive Gaussian noise at SNR_DB, "
                                       "random in [10, 30] dB"))


def apply(spec: str, audio: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """Apply the transforms of ``spec`` in order; float32 out, same number of channels."""
    rng = np.random.default_rng(seed)
    y = np.asarray(audio, dtype=np.float32)
    for name, amount in parse(spec):
        y = TRANSFORMS[name].fn(y, sr, rng, amount)
    return np.ascontiguousarray(y, dtype=np.float32)
