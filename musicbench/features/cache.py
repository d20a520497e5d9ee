"""Content-addressed cache of frame features, shared by systems, folds, trials and runs.

An entry's key hashes the audio file's bytes, the task's clip policy, the front end's
config and ``EXTRACTOR_VERSION``. Each file ends with a digest of its payload, so a
truncated or corrupted entry is detected, deleted and rebuilt rather than used. Writes
go to a temporary file renamed into place, so concurrent writers never expose a partial
entry (the last complete one wins; both are identical). ``open`` hands out an entry
without reading it into memory (``CachedArray``): what trains on a task larger than
memory reads each clip's rows as it needs them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicbench.runtime import cache_root

EXTRACTOR_VERSION = 1
_DIGEST = 16
_audio_digests: dict[tuple[str, int, int], str] = {}
_verified: set[tuple[str, int, int]] = set()  # entries whose digest was checked in this process


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
    """``get``/``put`` of arrays by key under ``root`` (default: ``<cache>/features``)."""

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
            try:
                return np.load(io.BytesIO(payload), allow_pickle=False)
            except ValueError:
                pass
        path.unlink(missing_ok=True)  # corrupt or truncated: rebuild
        self.rebuilt += 1
        return None

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

    def has(self, key: str) -> bool:
        """Whether an entry exists (without reading or checking it)."""
        return self._path(key).exists()

    def put(self, key: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        payload = buf.getvalue()
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(payload + hashlib.blake2b(payload, digest_size=_DIGEST).digest())
        os.replace(tmp, path)
