"""TensorFlow checkpoints read without TensorFlow: the tensor-bundle format of V2 checkpoints and TF-Hub modules.

A checkpoint PREFIX (`model.ckpt-best`, a TF-Hub module's `variables/variables`) is two kinds of file:

- `PREFIX.index`: an SSTable, LevelDB's table format. Data blocks hold sorted key/value entries with
  prefix-compressed keys and restart points; an index block points at the data blocks; a 48-byte footer at the
  end points at the index block and ends with the table magic number. Every block is followed by a 5-byte
  trailer: its compression type and the masked crc32c of block + type.
- Values are protobuf records: the empty key holds a `BundleHeaderProto` (number of shards, endianness), every
  other key is a tensor's name with its `BundleEntryProto` (dtype, shape, shard, offset, size, crc32c).
- `PREFIX.data-0000K-of-0000N`: the shards, each tensor's raw little-endian bytes at its offset.

The protobuf records are decoded by hand (a handful of varint fields), and every block read and every tensor
read is checked against its crc32c. Errors are ValueErrors naming the file and what was expected.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from math import isqrt
from pathlib import Path

import numpy as np
import torch

TABLE_MAGIC = 0xDB4775248B80FB57
"""The last 8 bytes of every LevelDB / TensorFlow table file (little-endian)."""
FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic number
BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# TensorFlow's DataType enum (types.proto) → the torch dtype of the same bytes. Strings, resources and
# variants are not tensors of numbers; they are refused if a caller asks to read one.
DTYPES: dict[int, tuple[str, torch.dtype]] = {
    1: ("DT_FLOAT", torch.float32), 2: ("DT_DOUBLE", torch.float64), 3: ("DT_INT32", torch.int32),
    4: ("DT_UINT8", torch.uint8), 5: ("DT_INT16", torch.int16), 6: ("DT_INT8", torch.int8),
    9: ("DT_INT64", torch.int64), 10: ("DT_BOOL", torch.bool), 14: ("DT_BFLOAT16", torch.bfloat16),
    17: ("DT_UINT16", torch.uint16), 19: ("DT_HALF", torch.float16), 22: ("DT_UINT32", torch.uint32),
    23: ("DT_UINT64", torch.uint64),
}
_DTYPE_NAMES = {7: "DT_STRING", 8: "DT_COMPLEX64", 18: "DT_COMPLEX128", 20: "DT_RESOURCE", 21: "DT_VARIANT"}


# ---------------------------------------------------------------------------------------------- crc32c
_POLY = 0x82F63B78  # CRC-32C (Castagnoli), bit-reflected


def _byte_table() -> np.ndarray:
    """(256,) uint32: the register change for each byte value (the classic one-byte-at-a-time table)."""
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ _POLY, t >> 1).astype(np.uint32)
    return t


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()


def _apply(columns: list[int], v: int) -> int:
    """A 32x32 matrix over GF(2), given by the images of the 32 unit vectors, applied to v."""
    out, i = 0, 0
    while v:
        if v & 1:
            out ^= columns[i]
        v >>= 1
        i += 1
    return out


@lru_cache(maxsize=64)
def _zeros_operator(n: int) -> tuple[tuple[int, ...], ...]:
    """Four 256-entry tables giving what feeding n zero bytes does to a CRC register (a linear map).

    Built by squaring the one-zero-byte map; applied to a register c as t0[c & 255] ^ t1[c >> 8 & 255] ^ ...
    """
    one = [_TABLE_LIST[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(32)]
    result, base = [1 << i for i in range(32)], one
    while n:
        if n & 1:
            result = [_apply(base, c) for c in result]
        base = [_apply(base, c) for c in base]
        n >>= 1
    return tuple(tuple(_apply(result, b << (8 * j)) for b in range(256)) for j in range(4))


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of `data`, vectorised so that a 50 MB tensor takes well under a second in numpy.

    The bytes are cut into R rows of L (front-padded with zeros, which leave a zero register unchanged); the
    R row CRCs advance together, one column per numpy step, and are then chained: crc(A ‖ B) = shift_L(crc(A))
    ^ crc(B) for register-only CRCs. The usual initial register of all ones is the same as complementing the
    first four bytes and starting from zero, so no separate term is needed.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    n = buf.size
    if n < 256:  # short input (index blocks' trailers, tiny tensors): the plain byte loop
        c = 0xFFFFFFFF
        for b in buf.tolist():
            c = _TABLE_LIST[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF
    rows = 1 << max(0, (isqrt(n) - 1).bit_length())  # R ≈ sqrt(n), a power of two
    L = -(-n // rows)
    padded = np.zeros(rows * L, dtype=np.uint8)
    padded[rows * L - n:] = buf
    padded[rows * L - n: rows * L - n + 4] ^= 0xFF
    columns = np.ascontiguousarray(padded.reshape(rows, L).T)  # (L, R): column j holds byte j of every row
    c = np.zeros(rows, dtype=np.uint32)
    for col in columns:
        c = _TABLE[(c ^ col) & 0xFF] ^ (c >> 8)
    t0, t1, t2, t3 = _zeros_operator(L)
    total = 0
    for r in c.tolist():
        total = t0[total & 0xFF] ^ t1[(total >> 8) & 0xFF] ^ t2[(total >> 16) & 0xFF] ^ t3[total >> 24] ^ r
    return total ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The crc32c as LevelDB and TensorFlow store it: rotated and offset, so that a CRC of bytes that embed
    CRCs stays informative."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------- protobuf
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at `pos`."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise IndexError("varint runs past the end")
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a protobuf message: ints for varint/fixed fields, bytes for
    length-delimited ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
            if pos > len(buf):
                raise IndexError("field runs past the end")
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


@dataclass(frozen=True)
class BundleEntry:
    """One tensor of a bundle: where its bytes are and what they hold (BundleEntryProto)."""

    name: str
    dtype: int  # TensorFlow's DataType enum
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # masked
    sliced: bool  # a partitioned variable (its slices are separate entries)

    @property
    def dtype_name(self) -> str:
        return DTYPES[self.dtype][0] if self.dtype in DTYPES else _DTYPE_NAMES.get(self.dtype, f"dtype {self.dtype}")


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1)."""
    dims = []
    for field, value in _proto_fields(buf):
        if field == 2:
            size = dict(_proto_fields(value)).get(1, 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)
    return tuple(dims)


def _entry(name: str, buf: bytes) -> BundleEntry:
    """BundleEntryProto: dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5, crc32c = 6 (fixed32),
    slices = 7. Fields at their default (0) are absent from the bytes."""
    fields: dict[int, int | bytes] = {}
    sliced = False
    for field, value in _proto_fields(buf):
        sliced |= field == 7
        fields[field] = value
    return BundleEntry(name, int(fields.get(1, 0)), _shape(fields.get(2, b"")), int(fields.get(3, 0)),
                       int(fields.get(4, 0)), int(fields.get(5, 0)), int(fields.get(6, 0)), sliced)


# ---------------------------------------------------------------------------------------------- table
def _block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    """The contents of the block at (offset, size), its trailer's crc32c checked."""
    end = offset + size + BLOCK_TRAILER_BYTES
    if end > len(data):
        raise ValueError(f"{path}: truncated index (a block ends at byte {end}, the file has {len(data)})")
    contents, kind = data[offset:offset + size], data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if masked_crc32c(data[offset:offset + size + 1]) != stored:
        raise ValueError(f"{path}: crc32c mismatch in the index block at byte {offset} (the file is corrupt)")
    if kind != 0:
        raise ValueError(f"{path}: index block at byte {offset} is compressed (type {kind}); TensorFlow writes "
                         f"bundle indexes uncompressed")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of every entry of a block. Each entry stores how many bytes of the previous key it shares,
    then the rest; the uint32 restart offsets at the end (where keys are stored whole) only speed up seeks."""
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 * (num_restarts + 1)
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _table_items(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable file, in key order."""
    data = path.read_bytes()
    if len(data) < FOOTER_BYTES or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise ValueError(f"{path}: not a TensorFlow checkpoint index (no table magic number at the end)")
    footer = data[len(data) - FOOTER_BYTES:]
    _, pos = _varint(footer, 0)  # metaindex handle: offset, size (TF writes no filters; unused)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    for _, handle in _block_entries(_block(data, index_offset, index_size, path)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        yield from _block_entries(_block(data, offset, size, path))


# ---------------------------------------------------------------------------------------------- bundle
@dataclass
class TFBundle:
    """The tensors of one checkpoint prefix; `read(name)` returns one, its crc32c checked."""

    prefix: Path
    entries: dict[str, BundleEntry]
    num_shards: int

    def shard_path(self, shard: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")

    def read(self, name: str) -> torch.Tensor:
        """The tensor `name` with its shape and dtype as TensorFlow stored it (CPU, owning its memory)."""
        entry = self.entries[name]
        if entry.dtype not in DTYPES:
            raise ValueError(f"{self.prefix}.index: variable {name} has {entry.dtype_name}, expected a numeric "
                             f"dtype ({', '.join(n for n, _ in DTYPES.values())})")
        if entry.sliced:
            raise ValueError(f"{self.prefix}.index: variable {name} is partitioned into slices, which litebert "
                             f"does not read")
        path = self.shard_path(entry.shard)
        with open(path, "rb") as f:
            f.seek(entry.offset)
            raw = bytearray(f.read(entry.size))
        if len(raw) != entry.size:
            raise ValueError(f"{path}: truncated data shard ({name} needs bytes up to {entry.offset + entry.size}, "
                             f"the file has {entry.offset + len(raw)})")
        if masked_crc32c(raw) != entry.crc32c:
            raise ValueError(f"{path}: crc32c mismatch for {name} (the file is corrupt)")
        dtype = DTYPES[entry.dtype][1]
        expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if entry.size != expected:
            raise ValueError(f"{self.prefix}.index: {name} holds {entry.size} bytes, its shape {list(entry.shape)} "
                             f"of {entry.dtype_name} needs {expected}")
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return flat.reshape(entry.shape)


def open_bundle(prefix: str | Path) -> TFBundle:
    """Read the index of checkpoint `prefix` (header, entries) and check its shards exist and are long enough."""
    prefix = Path(prefix)
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no such checkpoint index")
    header, entries = None, {}
    try:
        for key, value in _table_items(index):
            if key == b"":
                header = dict(_proto_fields(value))
            else:
                name = key.decode("utf-8")
                entries[name] = _entry(name, value)
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"{index}: malformed checkpoint index ({err})") from None
    if header is None:
        raise ValueError(f"{index}: no bundle header (the empty key); not a TensorFlow V2 checkpoint")
    if header.get(2, 0) != 0:
        raise ValueError(f"{index}: big-endian bundle; litebert reads little-endian checkpoints only")
    bundle = TFBundle(prefix, entries, int(header.get(1, 1)))
    _check_shards(bundle)
    return bundle


def _check_shards(bundle: TFBundle) -> None:
    """Every shard the entries point at exists and reaches the end of each of its tensors."""
    ends: dict[int, tuple[int, str]] = {}
    for e in bundle.entries.values():
        if e.shard >= bundle.num_shards:
            raise ValueError(f"{bundle.prefix}.index: {e.name} is in shard {e.shard} of {bundle.num_shards}")
        if e.offset + e.size > ends.get(e.shard, (-1, ""))[0]:
            ends[e.shard] = (e.offset + e.size, e.name)
    for shard, (end, name) in sorted(ends.items()):
        path = bundle.shard_path(shard)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: data shard missing (the index lists {bundle.num_shards})")
        if path.stat().st_size < end:
            raise ValueError(f"{path}: truncated data shard ({name} needs bytes up to {end}, the file has "
                             f"{path.stat().st_size})")


# ---------------------------------------------------------------------------------------------- locating
def find_prefix(path: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint prefix, TF-Hub module root or None) for what a user may point at: a prefix
    (`model.ckpt-best`), its `.index` file, a directory with a `checkpoint` state file or with one `.index`,
    or a TF-Hub module directory (`variables/variables.index`)."""
    path = Path(path)
    if path.suffix == ".index" and path.is_file():
        return path.with_suffix(""), None
    if Path(f"{path}.index").is_file():
        return path, None
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no checkpoint (expected a prefix with PREFIX.index, an .index file or "
                                f"a directory)")
    if (path / "variables" / "variables.index").is_file():
        return path / "variables" / "variables", path
    if (path / "checkpoint").is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', (path / "checkpoint").read_text(), re.MULTILINE)
        if not match:
            raise ValueError(f"{path / 'checkpoint'}: no model_checkpoint_path line")
        prefix = Path(match[1]) if Path(match[1]).is_absolute() else path / match[1]
        return prefix, None
    indexes = sorted(path.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix(""), None
    if not indexes:
        raise FileNotFoundError(f"{path}: no TensorFlow checkpoint (no *.index, checkpoint file or "
                                f"variables/variables.index)")
    raise ValueError(f"{path}: several checkpoints ({', '.join(p.name for p in indexes)}); pass one prefix")
