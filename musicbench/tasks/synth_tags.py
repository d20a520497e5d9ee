"""``synth_tags``: a deterministic synthetic multilabel dataset, generated on first use.

Each clip is a short ensemble piece that carries a random subset of ten tags:

- instruments (timbres): ``piano`` (struck, decaying harmonics), ``organ`` (sustained
  octave drawbars), ``strings`` (sawtooth with slow attack and vibrato), ``bell``
  (inharmonic partials), ``pluck`` (odd harmonics, very short decay), ``drums`` (a kit);
  each is present with some probability, and at least one pitched instrument plays;
- rhythm: ``slow`` or ``fast`` tempo (a medium tempo carries neither), ``syncopated``
  (notes on off-beats rather than on the beats);
- register: ``low`` or ``high`` (a middle register carries neither).

"Performers" (the group field) each play with a sound of their own (brightness, detune,
mix, noise), so performer-disjoint folds test generalisation to unseen players. Tags are
drawn per clip from a generator seeded by the dataset's seed and the clip number, so the
data is byte-identical wherever it is generated. Files, index and per-track metadata
(tags, performer) are read back through mirdata's ``core.Dataset``/``core.Track``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mirdata import core

from musicbench.tasks.synth import Generator, _drums, _midi_hz, write_wav

GENERATOR_VERSION = 1
INSTRUMENTS = ("piano", "organ", "strings", "bell", "pluck")
TAGS = (*INSTRUMENTS, "drums", "slow", "fast", "syncopated", "low", "high")
TEMPI = {"slow": (62, 84), None: (96, 116), "fast": (136, 168)}  # bpm range per tempo tag
REGISTERS = {"low": (36, 44), None: (52, 60), "high": (74, 82)}  # lowest note (MIDI) per register tag
STRAIGHT = (0, 4, 8, 12)  # onsets on the beats of a 16-step bar
OFFBEAT = (3, 6, 10, 14)
SCALE = (0, 2, 4, 7, 9, 12)


def _tone(instrument: str, f0: float, length: int, sr: int, tilt: float,
          rng: np.random.Generator) -> np.ndarray:
    """One note of ``instrument`` at ``f0`` Hz, ``length`` samples long."""
    t = np.arange(length) / sr
    attack = np.minimum(1.0, t / 0.004)
    release = np.minimum(1.0, (length / sr - t) / 0.02)
    if instrument == "bell":
        ratios, amps, decays = (1.0, 2.76, 5.40, 8.93), (1.0, 0.6, 0.4, 0.25), (1.2, 0.8, 0.5, 0.3)
    elif instrument == "organ":
        ratios, amps, decays = (1.0, 2.0, 4.0, 8.0), (1.0, 0.8, 0.6, 0.4), (60.0,) * 4
    elif instrument == "piano":
        ratios = tuple(float(k) for k in range(1, 9))
        amps, decays = tuple(1 / k for k in range(1, 9)), tuple(0.7 / k**0.5 for k in range(1, 9))
    elif instrument == "pluck":
        ratios = tuple(float(k) for k in range(1, 12, 2))
        amps, decays = tuple(1 / k for k in range(1, 12, 2)), (0.1,) * 6
    else:  # strings: every harmonic, slow attack, vibrato
        ratios = tuple(float(k) for k in range(1, 13))
        amps, decays = tuple(1 / k for k in range(1, 13)), (60.0,) * 12
        attack = np.minimum(1.0, t / 0.15)
    vibrato = 1 + (0.006 * np.sin(2 * np.pi * 5.5 * t) if instrument == "strings" else 0.0)
    out = np.zeros(length)
    for k, (r, a, d) in enumerate(zip(ratios, amps, decays, strict=True)):
        f = r * f0
        if f < sr / 2:
            phase = 2 * np.pi * np.cumsum(f * vibrato) / sr + rng.uniform(0, 2 * np.pi)
            out += a * tilt**-k * np.sin(phase) * np.exp(-t / d)
    return out * attack * np.clip(release, 0.0, 1.0)


def draw_tags(seed: int, take: int) -> tuple[str, ...]:
    """The clip's tags: instruments independently, one tempo, syncopation, one register."""
    rng = np.random.default_rng([seed, take, 1])
    tags = [i for i in INSTRUMENTS if rng.random() < 0.35]
    if not tags:
        tags = [INSTRUMENTS[rng.integers(len(INSTRUMENTS))]]
    if rng.random() < 0.5:
        tags.append("drums")
    tags += [k for k in (list(TEMPI)[rng.integers(3)], list(REGISTERS)[rng.integers(3)]) if k]
    if rng.random() < 0.4:
        tags.append("syncopated")
    return tuple(t for t in TAGS if t in tags)


def render_clip(tags: tuple[str, ...], performer: int, take: int, duration: float, sr: int,
                seed: int) -> np.ndarray:
    """One clip playing ``tags``; depends only on its arguments."""
    perf = np.random.default_rng([seed, 1000, performer])
    tilt, detune = perf.uniform(0.6, 1.6), perf.uniform(-0.3, 0.3)
    rng = np.random.default_rng([seed, take, 2])
    n = int(duration * sr)
    out = np.zeros(n + 2 * sr)
    tempo = rng.uniform(*TEMPI[next((t for t in ("slow", "fast") if t in tags), None)])
    lowest = rng.integers(*REGISTERS[next((t for t in ("low", "high") if t in tags), None)])
    step = 60.0 / tempo / 4
    onsets = OFFBEAT if "syncopated" in tags else STRAIGHT
    steps = [s for s in range(int(duration / step) + 1) if s % 16 in onsets]
    for v, instrument in enumerate(i for i in INSTRUMENTS if i in tags):
        gain = perf.uniform(0.5, 1.0) * rng.uniform(0.5, 1.0)
        for j, s in enumerate(steps):
            nxt = steps[j + 1] if j + 1 < len(steps) else s + 4
            length = int(min((nxt - s) * step, 1.5) * sr)
            note = lowest + SCALE[(j + 2 * v) % len(SCALE)] + detune
            at = int(s * step * sr)
            out[at: at + length] += gain * rng.uniform(0.7, 1.0) * _tone(
                instrument, _midi_hz(note), length, sr, tilt, rng)
    if "drums" in tags:
        kit = _drums(sr, rng)
        level = perf.uniform(0.4, 1.0)
        for s in range(int(duration / step) + 1):
            parts = (["kick"] if s % 8 == 0 else []) + (["snare"] if s % 8 == 4 else []) + (
                ["hat"] if s % 2 == 0 else [])
            at = int(s * step * sr)
            for part in parts:
                sig = kit[part] * (0.3 if part == "hat" else 1.0)
                out[at: at + sig.size] += level * sig
    out = out[:n]
    p = np.mean(out**2) + 1e-12
    out += rng.standard_normal(n) * np.sqrt(p / 10 ** (rng.uniform(10, 30) / 10))
    return (0.9 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def write_tags(folder: Path, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render every clip into ``folder``: index entries, and tags and performer per track."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    tracks, metadata = {}, {}
    for take in range(p["n_clips"]):
        performer = take % p["performers"]
        track_id = f"p{performer}.{take:04d}"
        tags = draw_tags(p["seed"], take)
        audio = render_clip(tags, performer, take, p["duration"], p["sample_rate"], p["seed"])
        tracks[track_id] = write_wav(folder, f"audio/{track_id}.wav", audio, p["sample_rate"])
        metadata[track_id] = {"tags": list(tags), "performer": f"p{performer}"}
    return tracks, metadata


class Track(core.Track):
    """A synthetic tagged track: ``tags`` (the labels) and ``performer`` (the group)."""

    def __init__(self, track_id, data_home, dataset_name, index, metadata):
        super().__init__(track_id, data_home, dataset_name, index, metadata)
        self.audio_path = self.get_path("audio")
        self.tags = tuple(self._track_metadata["tags"])
        self.performer = self._track_metadata["performer"]


def _check(p: dict[str, Any]) -> str | None:
    if p["n_clips"] < 2 * p["performers"] or p["duration"] <= 0:
        return "n_clips >= 2 * performers and duration > 0"
    return None


GENERATOR = Generator({"n_clips": 200, "performers": 4, "duration": 4.0, "seed": 0}, _check,
                      write_tags, GENERATOR_VERSION, Track)
