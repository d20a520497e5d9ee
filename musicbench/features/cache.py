"""Content-addressed cache of frame features, shared by systems, folds, trials and runs.

An entry's key hashes the audio file's bytes, the task's clip policy, the front end's
config and ``EXTRACTOR_VERSION``. Each entry also remembers what it cost to compute
(``Cost``: decode and extraction seconds, the clip's audio seconds, the device and the
worker processes), so a record can state the end-to-end cost of a clip whose features
were cached long before. Each file ends with a digest of its payload, so a truncated or
corrupted entry is detected, deleted and rebuilt rather than used. Writes go to a
temporary file renamed into place, so concurrent writers never expose a partial entry
(the last complete one wins; both are identical).

Layout: one file per (clip, extractor) in ``<root>/<key[:2]>/<key>.npy``: 256 shard
folders, so 100,000 clips of one front end make about 390 files a folder, and a lookup
is one ``open`` of a known path (nothing is ever listed). A file is a plain ``.npy``
array (128-byte header plus the data; ``np.load`` and memory-mapping read it as is,
ignoring what follows), then the ~100-byte cost as JSON, its length, a tag and a 16-byte
digest. Entries written before costs were recorded read as absent and are rebuilt once.
``open`` hands out an entry without reading it into memory (``CachedArray``): what trains
on a task larger than memory reads each clip's rows as it needs them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.runtime import cache_root

EXTRACTOR_VERSION = 1
_DIGEST = 16
_TAG = b"MBCOST01"  # ends the cost trailer; entries written before costs have none
_TRAILER = 4 + len(_TAG)  # the cost's length, then the tag
_audio_digests: dict[tuple[str, int, int], str] = {}
_verified: set[tuple[str, int, int]] = set()  # entries whose digest was checked in this process


@dataclass(frozen=True)
class Cost:
    """What one entry cost to compute: ``decode`` seconds (reading and resampling the
    clip, shared by every extractor computed with it), ``compute`` seconds of the
    extractor alone (a batch's time divided by its clips), the clip's ``audio`` seconds,
    the ``device`` and how many worker processes shared the machine (``workers``)."""

    decode: float
    compute: float
    audio: float
    device: str = "cpu"
    workers: int = 1

    @property
    def per_audio_second(self) -> float:
        return (self.decode + self.compute) / self.audio if self.audio > 0 else float("nan")


def audio_digest(path: str) -> str:
    """sha1 of the file's bytes, memoised per (path, size, mtime) within a process."""
    st = os.stat(path)
    memo = (path, st.st_size, st.st_mtime_ns)
    if memo not in _audio_digests:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _audio_digests[memo] = h.hexdigest()
    return _audio_digests[memo]


def entry_key(audio_sha: str, clip_policy: dict[str, Any], frontend: dict[str, Any]) -> str:
    payload = json.dumps([audio_sha, clip_policy, frontend, EXTRACTOR_VERSION], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def _cost_of(meta: bytes) -> Cost | None:
    try:
        return Cost(**json.loads(meta))
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class CachedArray:
    """A cached array left on disk: indexing reads only the rows asked for (through a
    memory map that ends with the read, so nothing stays mapped or resident)."""

    path: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        if 0 in self.shape:
            return np.empty(self.shape, self.dtype)[index]
        view = np.memmap(self.path, self.dtype, "r", self.offset, self.shape,
                         "F" if self.fortran_order else "C")
        return np.array(view[index])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def _digest_ok(path: Path) -> bool:
    """Whether the file's trailing digest matches its payload, read in blocks."""
    size = path.stat().st_size
    if size <= _DIGEST:
        return False
    h = hashlib.blake2b(digest_size=_DIGEST)
    with open(path, "rb") as f:
        left = size - _DIGEST
        while left:
            block = f.read(min(left, 1 << 20))
            h.update(block)
            left -= len(block)
        return h.digest() == f.read()


class FeatureCache:
    """``get``/``put`` of arrays (and their ``Cost``) by key under ``root`` (default:
    ``<cache>/features``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_root() / "features"
        self.rebuilt = 0  # corrupt entries found and dropped in this process

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        payload, digest = blob[:-_DIGEST], blob[-_DIGEST:]
        if len(blob) > _DIGEST and hashlib.blake2b(payload, digest_size=_DIGEST).digest() == digest:
            if not payload.endswith(_TAG):
                return None  # written before costs were recorded: rebuilt (and overwritten) once
            (n,) = struct.unpack("<I", payload[-_TRAILER:-len(_TAG)])
            try:
                return np.load(io.BytesIO(payload[:-_TRAILER - n]), allow_pickle=False)
            except ValueError:
                pass
        path.unlink(missing_ok=True)  # corrupt or truncated: rebuild
        self.rebuilt += 1
        return None

    def cost(self, key: str) -> Cost | None:
        """The entry's cost, from its trailer alone (the array is not read); None for a
        missing entry or one written before costs were recorded."""
        try:
            with open(self._path(key), "rb") as f:
                f.seek(-(_DIGEST + _TRAILER), os.SEEK_END)
                tail = f.read(_TRAILER)
                if not tail.endswith(_TAG):
                    return None
                (n,) = struct.unpack("<I", tail[:4])
                f.seek(-(_DIGEST + _TRAILER + n), os.SEEK_END)
                return _cost_of(f.read(n))
        except OSError:  # missing, or shorter than a trailer
            return None

    def has(self, key: str) -> bool:
        """Whether a current entry exists (its cost is read, not its array or digest)."""
        return self.cost(key) is not None

    def put(self, key: str, array: np.ndarray, cost: Cost) -> None:
        meta = json.dumps(asdict(cost), separators=(",", ":")).encode()
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        payload = buf.getvalue() + meta + struct.pack("<I", len(meta)) + _TAG
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(payload + hashlib.blake2b(payload, digest_size=_DIGEST).digest())
        os.replace(tmp, path)

    def open(self, key: str) -> CachedArray | None:
        """The entry as a ``CachedArray`` (None when absent, or corrupt: then deleted, to be
        rebuilt). Its digest is checked in blocks once per process and file version."""
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        memo = (str(path), st.st_size, st.st_mtime_ns)
        try:
            if memo not in _verified:
                if not _digest_ok(path):
                    raise ValueError("digest mismatch")
                _verified.add(memo)
            if self.cost(key) is None:
                return None  # written before costs were recorded: rebuilt (and overwritten) once
            with open(path, "rb") as f:
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(f)]
                shape, fortran, dtype = read_header(f)
                offset = f.tell()
        except (ValueError, OSError, KeyError):
            path.unlink(missing_ok=True)
            self.rebuilt += 1
            return None
        return CachedArray(str(path), offset, shape, dtype, fortran)
