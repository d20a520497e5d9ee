"""Embedded synthetic datasets, generated on first use; ``synth_genre`` is defined here.

Six "genres" differ in rhythm (tempo, drum pattern, swing), timbre (harmonic recipe,
envelope, distortion) and harmony (chord quality and rhythm). Each genre is played by a
few "performers" (fixed timbre and mix deviations), the group field that group protocols
split on. The data is written as WAV files plus a mirdata-format index, and read back
through mirdata's ``core.Dataset``/``core.Track``, the same path as the real datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from mirdata import core

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.runtime import cache_root

GENERATOR_VERSION = 4
TEMPO_SPREAD = 0.12  # a clip's tempo: its genre's times a uniform factor in 1 +- this


@dataclass(frozen=True)
class Genre:
    tempo: float
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    chord_steps: tuple[int, ...]
    intervals: tuple[int, ...]
    harmonics: tuple[float, ...]
    decay: float  # seconds, note envelope
    swing: float = 0.0
    drive: float = 0.0  # soft-clipping distortion
    hat_decay: float = 0.03


GENRES: dict[str, Genre] = {
    "ballad": Genre(72, (0,), (), (0, 4, 8, 12), (0,), (0, 4, 7), (1, 0.3, 0.1), 1.6),
    "rock": Genre(
        116, (0, 8, 10), (4, 12), (0, 2, 4, 6, 8, 10, 12, 14), (0, 2, 4, 6, 8, 10, 12, 14),
        (0, 7, 12), tuple(1 / k for k in range(1, 11)), 0.25, drive=3.0,
    ),
    "electro": Genre(
        126, (0, 4, 8, 12), (4, 12), (2, 6, 10, 14), (3, 6, 11), (0, 3, 7),
        tuple(1 / k if k % 2 else 0 for k in range(1, 12)), 0.18,
    ),
    "jazz": Genre(
        150, (0, 10), (), (0, 4, 6, 8, 12, 14), (2, 7, 11, 14), (0, 4, 7, 11),
        tuple(1 / k**2 if k % 2 else 0 for k in range(1, 10)), 0.5, swing=0.33, hat_decay=0.25,
    ),
    "reggae": Genre(78, (8,), (8,), (0, 2, 4, 6, 8, 10, 12, 14), (4, 12), (0, 4, 7),
                    (1, 0.8, 0.7, 0.6), 0.12),
    "latin": Genre(
        100, (0, 6, 12), (10,), (0, 3, 6, 10, 12), (0, 3, 6, 10, 12), (0, 3, 7),
        (1, 0.6, 0.5, 0.4, 0.3, 0.2), 0.09,
    ),
}


def _midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def _drums(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.3 * sr)) / sr
    f = 50 + 70 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
    noise = rng.standard_normal(t.size)
    snare = (0.7 * noise + 0.5 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.07)
    hat = np.diff(noise, prepend=0.0) * 0.4
    return {"kick": kick, "snare": snare, "hat": hat}


def _draws(genre: str, performer: int, take: int, seed: int, spread: float = TEMPO_SPREAD) -> tuple:
    """The random choices a clip makes before its notes, in the order ``render_track``
    has always drawn them, so its tempo can be read back without rendering it."""
    g_idx = list(GENRES).index(genre)
    perf_rng = np.random.default_rng([seed, g_idx, performer])
    tilt = perf_rng.uniform(0.5, 1.6)  # performer's brightness
    rng = np.random.default_rng([seed, g_idx, performer, take])
    # tracks often borrow another genre's instrument: timbre alone does not give the
    # genre away, so rhythm and harmony have to help
    borrowed = GENRES[list(GENRES)[rng.integers(len(GENRES))]]
    blend = rng.uniform(0.3, 1.0) if rng.random() < 0.6 else 0.0
    levels = perf_rng.uniform(0.4, 1.0, size=3) * rng.uniform(0.15, 1.0, size=3)  # drums, chords, bass
    tempo = GENRES[genre].tempo * rng.uniform(1 - spread, 1 + spread)  # varies within a genre
    return rng, tilt, borrowed, blend, levels, tempo


def clip_tempo(genre: str, performer: int, take: int, seed: int, spread: float = TEMPO_SPREAD) -> float:
    """The tempo in BPM ``render_track`` plays a clip at (the tempo regression target)."""
    return float(_draws(genre, performer, take, seed, spread)[-1])


def render_track(genre: str, performer: int, take: int, duration: float, sr: int,
                 seed: int, tempo_spread: float = TEMPO_SPREAD) -> np.ndarray:
    """One clip; depends only on its arguments, so the dataset is reproducible."""
    g = GENRES[genre]
    rng, tilt, borrowed, blend, levels, tempo = _draws(genre, performer, take, seed, tempo_spread)
    n = int(duration * sr)
    out = np.zeros(n + sr)
    step = 60.0 / tempo / 4
    root = int(rng.integers(45, 57))
    degrees = rng.choice([0, 2, 4, 5, 7, 9], size=4)
    drums = _drums(sr, rng)
    hat_env = np.exp(-np.arange(drums["hat"].size) / sr / g.hat_decay)
    width = max(len(g.harmonics), len(borrowed.harmonics))
    own = np.pad(np.array(g.harmonics), (0, width - len(g.harmonics)))
    other = np.pad(np.array(borrowed.harmonics), (0, width - len(borrowed.harmonics)))
    harmonics = ((1 - blend) * own + blend * other) * tilt ** -np.arange(width)
    n_steps = int(duration / step) + 1

    def add(sig: np.ndarray, at: float, gain: float) -> None:
        i = int(at * sr)
        if i < n:
            j = min(i + sig.size, out.size)
            out[i:j] += gain * sig[: j - i]

    for s in range(n_steps):
        pos = s % 16
        at = s * step + (g.swing * step if pos % 4 == 2 else 0.0)
        vel = rng.uniform(0.7, 1.0)
        if pos in g.kick:
            add(drums["kick"], at, levels[0] * vel)
        if pos in g.snare:
            add(drums["snare"], at, 0.6 * levels[0] * vel)
        if pos in g.hat:
            add(drums["hat"] * hat_env, at, 0.3 * levels[0] * vel)
        bar = s // 16
        if pos in g.chord_steps:
            chord_root = root + 12 + int(degrees[bar % 4])
            length = min(g.decay * 3, 2.0)
            t = np.arange(int(length * sr)) / sr
            env = np.exp(-t / g.decay) * np.minimum(1.0, t / 0.005)
            tone = np.zeros_like(t)
            for iv in g.intervals:
                f0 = _midi_hz(chord_root + iv) * rng.uniform(0.998, 1.002)
                for k, a in enumerate(harmonics, start=1):
                    if a and k * f0 < sr / 2:
                        tone += a * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
            tone *= env / len(g.intervals)
            if g.drive:
                tone = np.tanh(g.drive * tone) / np.tanh(g.drive)
            add(tone, at, 0.5 * levels[1] * vel)
        if pos in (0, 8) and genre != "ballad":
            t = np.arange(int(0.4 * sr)) / sr
            f0 = _midi_hz(root + int(degrees[bar % 4]) - 12)
            add(np.sin(2 * np.pi * f0 * t) * np.exp(-t / 0.25), at, 0.6 * levels[2])
    out = out[:n]
    snr_db = rng.uniform(0, 24)
    p = np.mean(out**2) + 1e-12
    out += rng.standard_normal(n) * np.sqrt(p / 10 ** (snr_db / 10))
    return (0.9 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


class Track(core.Track):
    """A synthetic track: ``genre`` (the label), ``performer`` (the group: each performer
    plays every genre with a sound of its own, so group folds test unseen performers) and
    ``tempo`` (BPM, read back from the generator's draws with the index's seed and
    ``tempo_spread``)."""

    def __init__(self, track_id, data_home, dataset_name, index, metadata):
        super().__init__(track_id, data_home, dataset_name, index, metadata)
        self.audio_path = self.get_path("audio")
        self.genre, self.performer, take = track_id.split(".")
        params = index.get("params", {})
        self._seed, self._take = int(params.get("seed", 0)), int(take)
        self._spread = float(params.get("tempo_spread", TEMPO_SPREAD))

    @property
    def tempo(self) -> float:
        return clip_tempo(self.genre, int(self.performer.removeprefix("p")), self._take, self._seed,
                          self._spread)


def write_genres(folder: Path, p: dict[str, Any]) -> tuple[dict[str, Any], None]:
    """Render every ``synth_genre`` clip into ``folder``: index entries, no metadata file
    (a track's genre and performer are in its id). ``tempo_spread`` is a parameter only
    where set, so the clips and cache folder of the default are as they always were."""
    tracks = {}
    for genre in GENRES:
        (folder / genre).mkdir(parents=True, exist_ok=True)
        for take in range(p["n_per_class"]):
            performer = take % p["performers"]
            track_id = f"{genre}.p{performer}.{take:04d}"
            audio = render_track(genre, performer, take, p["duration"], p["sample_rate"], p["seed"],
                                 p.get("tempo_spread", TEMPO_SPREAD))
            tracks[track_id] = write_wav(folder, f"{genre}/{track_id}.wav", audio, p["sample_rate"])
    return tracks, None


def write_wav(folder: Path, rel: str, audio: np.ndarray, sample_rate: int) -> dict[str, list[str]]:
    """Write one clip as 16-bit WAV; its mirdata index entry (path and md5)."""
    sf.write(folder / rel, audio, sample_rate, subtype="PCM_16")
    return {"audio": [rel, hashlib.md5((folder / rel).read_bytes()).hexdigest()]}


@dataclass(frozen=True)
class Generator:
    """How one synthetic dataset is made: default parameters, a check of them, the writer
    ``write(folder, params) -> (index tracks, metadata or None)``, its version (part of
    the cache key) and the mirdata track class that reads it back."""

    defaults: dict[str, Any]
    check: Callable[[dict[str, Any]], str | None]
    write: Callable[[Path, dict[str, Any]], tuple[dict[str, Any], dict[str, Any] | None]]
    version: int
    track_class: type[core.Track]


def _check_genres(p: dict[str, Any]) -> str | None:
    if p["n_per_class"] < p["performers"] or p["duration"] <= 0:
        return "n_per_class >= performers and duration > 0"
    if not 0 <= p.get("tempo_spread", TEMPO_SPREAD) < 0.5:
        return "tempo_spread from 0 to below 0.5"
    return None


def generators() -> dict[str, Generator]:
    from musicbench.tasks import synth_tags

    return {
        "synth_genre": Generator({"n_per_class": 40, "performers": 4, "duration": 4.0, "seed": 0},
                                 _check_genres, write_genres, GENERATOR_VERSION, Track),
        "synth_tags": synth_tags.GENERATOR,
    }


class SynthDataset(core.Dataset):
    """A mirdata dataset whose files and index (and metadata, where its tracks have any
    beyond their id) are generated into the cache by the generator named ``name``."""

    def __init__(self, name: str, config: dict[str, Any], version: str, sample_rate: int,
                 data_home: str | None = None):
        found = generators()
        if name not in found:
            raise UnknownNameError("synthetic dataset", name, found)
        gen = found[name]
        versions = config.get("versions", {})
        if version not in versions:
            raise UnknownNameError(f"version of {name}", version, versions)
        params = {**gen.defaults, **{k: v for k, v in config.items() if k != "versions"},
                  **versions[version]}
        problem = gen.check(params)
        if problem:
            raise ConfigError(f"{name} {version}: {problem}")
        self.generator = gen
        self.params = {**params, "sample_rate": sample_rate, "generator": gen.version}
        key = hashlib.sha1(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:12]
        home = Path(data_home or cache_root() / "synth") / f"{name}-{version}-{key}"
        super().__init__(
            str(home), version, name=name, track_class=gen.track_class,
            indexes={"default": version, version: core.Index(filename="index.json")},
        )
        self.index_path = str(home / "index.json")
        if not home.joinpath("index.json").exists():
            self._generate(home)

    @core.cached_property
    def _metadata(self) -> dict[str, Any] | None:
        path = Path(self.data_home) / "metadata.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _generate(self, home: Path) -> None:
        tmp = home.with_name(f"{home.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        tracks, metadata = self.generator.write(tmp, self.params)
        if metadata is not None:
            (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1))
        index = {"version": self.version, "params": self.params, "tracks": tracks}
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        try:
            os.rename(tmp, home)
        except OSError:  # another process generated it first
            shutil.rmtree(tmp, ignore_errors=True)


def open_synth(task: Any, require_index: bool = True) -> SynthDataset:
    """A synthetic task's clips, generated into the cache on first use: a data home is often
    shared and read-only, so it is used only where it holds a folder made for the dataset
    (``DATA_HOME/synth_genre``)."""
    from musicbench.tasks.loader import DATA_HOME_ENV

    spec = task.spec
    root = task.data_home_root or os.environ.get(DATA_HOME_ENV)
    home = Path(root) / spec.dataset if root else None
    return SynthDataset(spec.dataset, spec.synth, task.version, spec.clip.sample_rate,
                        str(home) if home and home.is_dir() else None)


def synth_versions(spec: Any) -> list[str]:
    return list(spec.synth.get("versions", {}))
