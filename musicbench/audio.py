"""Reading a track's audio under a task's clip policy, with errors that name the track."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import soundfile as sf

from musicbench.errors import AudioError, ConfigError
from musicbench.runtime import cache_root

SILENCE_PEAK = 1e-5  # below this peak amplitude a clip carries no usable signal
CHECKS_DIR = "track-checks"  # under the cache root: one empty file per usable (file, state)


@dataclass(frozen=True)
class ClipPolicy:
    """How every clip of a task is read: rate, channels and length.

    ``max_duration`` crops (from the start, or around the centre) so long tracks cost
    bounded memory; ``min_duration`` zero-pads short ones so chunked models get a full
    chunk. ``source_sample_rate`` / ``source_channels``, when set, are what the files
    must be: a file that differs is an error rather than silently resampled.
    """

    sample_rate: int = 22050
    mono: bool = True
    max_duration: float | None = None
    min_duration: float = 0.0
    crop: str = "start"
    source_sample_rate: int | None = None
    source_channels: int | None = None
    allow_silent: bool = False

    def __post_init__(self):
        if not 1000 <= self.sample_rate <= 192000:
            raise ConfigError(f"clip.sample_rate={self.sample_rate}: must be 1000..192000 Hz")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ConfigError(f"clip.max_duration={self.max_duration}: must be > 0 seconds")
        if self.min_duration < 0:
            raise ConfigError(f"clip.min_duration={self.min_duration}: must be >= 0 seconds")
        if self.crop not in ("start", "center"):
            raise ConfigError(f"clip.crop={self.crop!r}: must be 'start' or 'center'")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown clip option(s) {sorted(unknown)}; valid: {sorted(known)}"
            )
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_audio(path: str, track_id: str, policy: ClipPolicy) -> np.ndarray:
    """Decode ``path`` into a float32 mono (or [channels, n]) array at the policy's rate."""
    refetch = "Re-download it (musicbench data fetch) or remove the track from the index."
    if not os.path.isfile(path):
        raise AudioError(track_id, path, "file is missing", refetch)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(track_id, path, f"cannot be decoded ({exc})", refetch) from None
    if info.frames == 0:
        raise AudioError(track_id, path, "file holds no audio frames (empty)", refetch)
    if policy.source_sample_rate and info.samplerate != policy.source_sample_rate:
        raise AudioError(
            track_id, path,
            f"sample rate is {info.samplerate} Hz, the task expects {policy.source_sample_rate}",
            "Convert the file, or unset clip.source_sample_rate in the task spec to resample.",
        )
    if policy.source_channels and info.channels != policy.source_channels:
        raise AudioError(
            track_id, path,
            f"has {info.channels} channel(s), the task expects {policy.source_channels}",
            "Convert the file, or unset clip.source_channels in the task spec to downmix.",
        )
    start, stop = 0, info.frames
    if policy.max_duration is not None:
        want = int(round(policy.max_duration * info.samplerate))
        if want < info.frames:
            start = (info.frames - want) // 2 if policy.crop == "center" else 0
            stop = start + want
    try:
        data, sr = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(track_id, path, f"cannot be decoded ({exc})", refetch) from None
    if data.shape[0] == 0:
        raise AudioError(track_id, path, "decoded to zero samples (truncated?)", refetch)
    if not np.all(np.isfinite(data)):
        raise AudioError(track_id, path, "holds NaN or infinite samples (corrupt)", refetch)
    audio = data.T  # [channels, n]
    if policy.mono:
        audio = audio.mean(axis=0)
    if sr != policy.sample_rate:
        import librosa

        audio = librosa.resample(audio, orig_sr=sr, target_sr=policy.sample_rate, axis=-1)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK and not policy.allow_silent:
        raise AudioError(
            track_id, path, f"is silent (peak amplitude {peak:.1e})",
            "Check the file; set clip.allow_silent = true in the task spec to keep silent clips.",
        )
    min_len = int(round(policy.min_duration * policy.sample_rate))
    if audio.shape[-1] < min_len:
        pad = [(0, 0)] * (audio.ndim - 1) + [(0, min_len - audio.shape[-1])]
        audio = np.pad(audio, pad)
    return audio


def _wav_declared_frames(path: str) -> int | None:
    """The frame count a WAV header declares (its ``data`` chunk size over the block
    size), read without decoding; None for other formats. libsndfile clamps a truncated
    file's frame count to what is there, so only the header tells that data is missing."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        block = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size)
                block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                f.seek(size % 2, 1)
            elif cid == b"data":
                if not block or size == 0xFFFFFFFF:  # RF64 keeps the size elsewhere
                    return None
                return size // block
            else:
                f.seek(size + size % 2, 1)


def probe_audio(path: str, policy: ClipPolicy, md5: str | None = None) -> str | None:
    """What makes a track's file unusable, or None: missing, undecodable, empty, shorter
    than its header says (truncated), silent, or (given ``md5``) not matching its checksum.
    Reads the samples once at the file's own rate, without resampling."""
    if not os.path.isfile(path):
        return "file is missing"
    if md5 is not None:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "md5").hexdigest()
        if digest != md5:
            return f"checksum {digest} differs from the index's {md5}"
    try:
        info = sf.info(path)
        declared = _wav_declared_frames(path)
        if info.frames == 0:
            return "file holds no audio frames (empty)"
        if declared is not None and declared > info.frames:
            return f"truncated: the header declares {declared} frames, the file holds {info.frames}"
        peak = 0.0
        for block in sf.blocks(path, blocksize=1 << 16, dtype="float32", always_2d=True):
            if not np.all(np.isfinite(block)):
                return "holds NaN or infinite samples (corrupt)"
            peak = max(peak, float(np.max(np.abs(block))) if block.size else 0.0)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return f"cannot be decoded ({exc})"
    if peak < SILENCE_PEAK and not policy.allow_silent:
        return f"is silent (peak amplitude {peak:.1e})"
    return None


def check_audio(path: str, policy: ClipPolicy, md5: str | None = None) -> str | None:
    """``probe_audio``, remembered: a file found usable is not read again while its path,
    size and modification time (ns) stay the same, so a rerun does not decode every track
    again. A changed file, an unusable one and an md5 check (``md5``) are always probed."""
    if md5 is not None:
        return probe_audio(path, policy, md5)
    try:
        st = os.stat(path)
    except OSError:
        return probe_audio(path, policy)
    state = [os.path.abspath(path), st.st_size, st.st_mtime_ns, policy.allow_silent, SILENCE_PEAK]
    key = hashlib.sha1(json.dumps(state).encode()).hexdigest()
    mark = cache_root() / CHECKS_DIR / key[:2] / key
    if mark.exists():
        return None
    why = probe_audio(path, policy)
    if why is None:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
    return why
