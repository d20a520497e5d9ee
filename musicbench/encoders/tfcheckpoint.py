"""Read TensorFlow (TF1 ``Saver`` / TF2 ``tf.train.Checkpoint``) tensor bundles with numpy only.

A bundle is ``PREFIX.index`` plus ``PREFIX.data-SSSSS-of-NNNNN`` shards. The index is a
LevelDB-style sorted string table whose keys are tensor names and whose values are
``BundleEntryProto`` messages (dtype, shape, shard, offset, size, masked crc32c); the
entry under the empty key is the ``BundleHeaderProto``. Both are parsed here by hand, so
pretrained TF weights can be ported without TensorFlow or protobuf installed.

Anything this reader does not understand (compressed blocks, partitioned variables,
big-endian bundles, unknown dtypes, a block or tensor checksum mismatch) raises
``CheckpointError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicbench.errors import MusicbenchError

__all__ = ["CheckpointError", "TensorEntry", "read_checkpoint", "read_index"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes masked crc32c

# tensorflow/core/framework/types.proto -> numpy dtype (little-endian)
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_DT_STRING = 7


class CheckpointError(MusicbenchError):
    """A checkpoint bundle that is missing, corrupt or uses a feature this reader lacks."""


@dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor's bytes are and how to read them."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None


# --------------------------------------------------------------------------- varints


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint in checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint longer than 64 bits in checkpoint index")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Decode one protobuf message into (field number, wire type, value) triples."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, wire, value))
        elif wire == 1:
            out.append((field, wire, struct.unpack_from("<Q", buf, pos)[0]))
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            out.append((field, wire, bytes(buf[pos : pos + n])))
            pos += n
        elif wire == 5:
            out.append((field, wire, struct.unpack_from("<I", buf, pos)[0]))
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} in checkpoint index")
        if pos > len(buf):
            raise CheckpointError("truncated protobuf message in checkpoint index")
    return out


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# --------------------------------------------------------------------------- crc32c

_CRC_TABLE: list[int] | None = None


def _crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, extending ``crc``; ``google_crc32c``'s C code if installed."""
    try:
        import google_crc32c  # type: ignore[import-not-found]
    except ImportError:
        google_crc32c = None
    if google_crc32c is not None:
        return int(google_crc32c.extend(crc, bytes(data)))
    global _CRC_TABLE
    if _CRC_TABLE is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
        _CRC_TABLE = table
    crc ^= 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------- SSTable


def _read_block(data: bytes, offset: int, size: int, where: Path) -> bytes:
    end = offset + size
    if end + _BLOCK_TRAILER > len(data):
        raise CheckpointError(f"{where}: block at {offset} runs past the end of the file")
    if data[end] != 0:
        raise CheckpointError(
            f"{where}: block compression type {data[end]} is not supported "
            "(only uncompressed tables, which TensorFlow writes for checkpoints)"
        )
    stored = struct.unpack_from("<I", data, end + 1)[0]
    if _crc32c(data[offset : end + 1]) != _unmask(stored):
        raise CheckpointError(f"{where}: table block at {offset} fails its crc32c (corrupt index)")
    return data[offset:end]


def _block_entries(block: bytes, where: Path) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointError(f"{where}: table block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise CheckpointError(f"{where}: corrupt table block (restart array)")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise CheckpointError(f"{where}: corrupt table block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _table_items(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(f"{path}: too short to be a checkpoint index")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (bad table magic)")
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    items: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_read_block(data, index_off, index_size, path), path):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        items.extend(_block_entries(_read_block(data, off, size, path), path))
    return items


# --------------------------------------------------------------------------- bundle


def _prefix(path: str | Path) -> str:
    """Accept the prefix itself, the ``.index`` file, or a directory holding one bundle.

    Returned as a string because TF1 ``Saver`` folders may use an empty prefix (the files
    are then literally ``.index`` and ``.data-00000-of-00001``, as in musicnn's wheel).
    """
    p = Path(path)
    if p.is_dir():
        indexes = sorted(p.glob("*.index")) or ([p / ".index"] if (p / ".index").is_file() else [])
        if len(indexes) != 1:
            raise CheckpointError(
                f"{p}: expected exactly one *.index checkpoint in the folder, found {len(indexes)}"
            )
        p = indexes[0]
    s = str(p)
    return s[: -len(".index")] if s.endswith(".index") else s


def _parse_entry(name: str, value: bytes) -> TensorEntry:
    dtype = shard = offset = size = 0
    crc: int | None = None
    shape: list[int] = []
    for field, _, v in _fields(value):
        if field == 1:
            dtype = int(v)  # type: ignore[arg-type]
        elif field == 2:
            for f2, _, dim in _fields(v):  # type: ignore[arg-type]
                if f2 == 2:
                    size_ = next((int(x) for f3, _, x in _fields(dim) if f3 == 1), 0)  # type: ignore[arg-type]
                    shape.append(_signed64(size_))
                elif f2 == 3 and dim:
                    raise CheckpointError(f"tensor {name!r} has an unknown rank")
        elif field == 3:
            shard = int(v)  # type: ignore[arg-type]
        elif field == 4:
            offset = int(v)  # type: ignore[arg-type]
        elif field == 5:
            size = int(v)  # type: ignore[arg-type]
        elif field == 6:
            crc = int(v)  # type: ignore[arg-type]
        elif field == 7:
            raise CheckpointError(f"tensor {name!r} is a partitioned variable (slices); not supported")
    return TensorEntry(name, dtype, tuple(shape), shard, offset, size, crc)


def read_index(path: str | Path) -> tuple[int, list[TensorEntry]]:
    """Parse a bundle's ``.index``: (number of data shards, entries sorted by name)."""
    prefix = _prefix(path)
    index = Path(prefix + ".index")
    if not index.is_file():
        raise CheckpointError(f"checkpoint index not found: {index}")
    num_shards = 1
    entries: list[TensorEntry] = []
    for key, value in _table_items(index):
        if key == b"":
            for field, _, v in _fields(value):
                if field == 1:
                    num_shards = int(v)  # type: ignore[arg-type]
                elif field == 2 and v != 0:
                    raise CheckpointError(f"{index}: big-endian bundles are not supported")
            continue
        entries.append(_parse_entry(key.decode("utf-8"), value))
    return num_shards, entries


def _decode_strings(raw: bytes, count: int, name: str) -> tuple[np.ndarray, int]:
    """Strings are stored as: varint lengths, masked crc32c of the lengths, then the bytes.

    Returns the strings and the crc32c TensorFlow computes for the entry: over each length
    as a little-endian uint32 (uint64 if larger), the stored length checksum, then the bytes.
    """
    lengths = []
    pos = 0
    for _ in range(count):
        n, pos = _varint(raw, pos)
        lengths.append(n)
    crc = 0
    for n in lengths:
        crc = _crc32c(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n), crc)
    crc = _crc32c(raw[pos : pos + 4], crc)
    pos += 4
    out = np.empty(count, dtype=object)
    for i, n in enumerate(lengths):
        out[i] = raw[pos : pos + n]
        crc = _crc32c(out[i], crc)
        pos += n
    if pos != len(raw):
        raise CheckpointError(f"tensor {name!r}: string payload size mismatch")
    return out, crc


def read_checkpoint(path: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint bundle as a numpy array, keyed by variable name.

    ``path`` is the bundle prefix (``model.ckpt``), its ``.index`` file, or a folder that
    holds exactly one bundle (TF1 ``Saver`` directories often use an empty prefix, as
    musicnn's ``.index`` does). ``verify`` checks each tensor's crc32c. String tensors
    (e.g. TF2's object graph) come back as object arrays of ``bytes``.
    """
    prefix = _prefix(path)
    num_shards, entries = read_index(prefix)
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for e in entries:
        if e.shard_id not in shards:
            shard = Path(f"{prefix}.data-{e.shard_id:05d}-of-{num_shards:05d}")
            if not shard.is_file():
                raise CheckpointError(f"checkpoint data shard not found: {shard}")
            shards[e.shard_id] = shard.read_bytes()
        blob = shards[e.shard_id]
        if e.offset + e.size > len(blob):
            raise CheckpointError(f"tensor {e.name!r} runs past the end of its data shard")
        raw = blob[e.offset : e.offset + e.size]
        count = int(np.prod(e.shape, dtype=np.int64))
        if e.dtype == _DT_STRING:
            strings, crc = _decode_strings(raw, count, e.name)
            value = strings.reshape(e.shape)
        else:
            crc = _crc32c(raw) if verify else 0
            value = _numeric(e, raw, count)
        if verify and e.crc32c is not None and crc != _unmask(e.crc32c):
            raise CheckpointError(f"tensor {e.name!r}: crc32c mismatch (corrupt checkpoint)")
        out[e.name] = value
    return out


def _numeric(e: TensorEntry, raw: bytes, count: int) -> np.ndarray:
    if e.dtype not in _DTYPES:
        raise CheckpointError(f"tensor {e.name!r}: unsupported dtype enum {e.dtype}")
    dt = _DTYPES[e.dtype]
    if count * dt.itemsize != e.size:
        raise CheckpointError(f"tensor {e.name!r}: {e.size} bytes do not hold shape {e.shape} of {dt}")
    return np.frombuffer(raw, dtype=dt).reshape(e.shape).astype(dt.newbyteorder("="))
