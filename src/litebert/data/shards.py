"""Binary shards of pretraining examples and their JSON manifest.

A shard is one file of raw little-endian numpy arrays laid end to end (each at a 64-byte aligned offset);
the manifest records each array's offset, dtype and length, and the file's size and sha256, so a reader
memory-maps the arrays without parsing anything and detects a truncated or altered shard. Per shard, with
N examples, L pieces in all and M stored predictions:

    offsets          int64 (N+1,)  example i is pieces offsets[i]:offsets[i+1]
    input_ids        uint16 if the vocabulary fits, else int32 (L,)  unmasked `[CLS] A [SEP] B [SEP]`
    word_start       uint8 (L,)    1 where a piece begins a word (for dynamic whole-word masking)
    a_lengths        int32 (N,)    pieces of `[CLS] A [SEP]`
    labels           int8 (N,)     sentence label (SOP: 1 = swapped, NSP: 1 = random; -100 = none)
  static masking only:
    mask_offsets     int64 (N+1,)  predictions of example i are mask_offsets[i]:mask_offsets[i+1]
    masked_positions int32 (M,)    positions to predict, ascending
    masked_inputs    like input_ids (M,)  what the input shows there ([MASK], a random piece, or the original)

Writing streams each array to its own temporary file and concatenates them when the shard closes, so
memory does not grow with the shard size; all files go to a temporary directory that the caller renames
into place only when everything succeeded.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from litebert.files import file_sha256

ALIGN = 64
MANIFEST = "manifest.json"
FORMAT = "litebert-pretraining-data"
FORMAT_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest dtype holding every piece id: uint16 below 65536 pieces, int32 above."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<i4")


def array_dtypes(vocab_size: int, static_masks: bool) -> dict[str, np.dtype]:
    """Name -> dtype of the arrays of a shard, in file order."""
    tokens = token_dtype(vocab_size)
    dtypes = {
        "offsets": np.dtype("<i8"),
        "input_ids": tokens,
        "word_start": np.dtype("u1"),
        "a_lengths": np.dtype("<i4"),
        "labels": np.dtype("i1"),
    }
    if static_masks:
        dtypes.update(mask_offsets=np.dtype("<i8"), masked_positions=np.dtype("<i4"), masked_inputs=tokens)
    return dtypes


@dataclass
class PackedExamples:
    """Examples packed into flat arrays, as a worker returns them (offsets relative to these arrays).

    input_ids, word_start: (L,); lengths, a_lengths, labels: (N,); mask_counts: (N,);
    masked_positions, masked_inputs: (M,). Mask arrays are empty with dynamic masking.
    """

    input_ids: np.ndarray
    word_start: np.ndarray
    lengths: np.ndarray
    a_lengths: np.ndarray
    labels: np.ndarray
    mask_counts: np.ndarray
    masked_positions: np.ndarray
    masked_inputs: np.ndarray

    @property
    def num_examples(self) -> int:
        return len(self.lengths)

    def slice(self, start: int, stop: int) -> "PackedExamples":
        """Examples start:stop."""
        ends = np.concatenate(([0], np.cumsum(self.lengths)))
        mask_ends = np.concatenate(([0], np.cumsum(self.mask_counts)))
        t0, t1, m0, m1 = ends[start], ends[stop], mask_ends[start], mask_ends[stop]
        return PackedExamples(
            self.input_ids[t0:t1], self.word_start[t0:t1], self.lengths[start:stop], self.a_lengths[start:stop],
            self.labels[start:stop], self.mask_counts[start:stop], self.masked_positions[m0:m1],
            self.masked_inputs[m0:m1],
        )


@dataclass
class ShardInfo:
    """A written shard as the manifest lists it."""

    file: str
    bytes: int
    sha256: str
    examples: int
    tokens: int
    arrays: dict[str, dict] = field(default_factory=dict)


class ShardWriter:
    """Streams examples of one split into shards of at most `shard_size` examples under `directory`."""

    def __init__(self, directory: Path, prefix: str, vocab_size: int, static_masks: bool, shard_size: int):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.dtypes = array_dtypes(vocab_size, static_masks)
        self.static_masks = static_masks
        self.shard_size = shard_size
        self.shards: list[ShardInfo] = []
        self._parts: dict[str, BinaryIO] = {}
        self._examples = 0
        self._tokens = 0
        self._predictions = 0

    def add(self, packed: PackedExamples) -> None:
        """Append examples, closing a shard whenever it reaches `shard_size` examples."""
        start = 0
        while start < packed.num_examples:
            stop = min(packed.num_examples, start + self.shard_size - self._examples)
            self._append(packed.slice(start, stop) if (start, stop) != (0, packed.num_examples) else packed)
            start = stop
            if self._examples == self.shard_size:
                self._close_shard()

    def close(self) -> list[ShardInfo]:
        """Write the last, partial shard; return every shard written."""
        if self._examples:
            self._close_shard()
        return self.shards

    def _part(self, name: str) -> BinaryIO:
        if name not in self._parts:
            self._parts[name] = open(self.directory / f".{self.prefix}.{name}.part", "w+b")
        return self._parts[name]

    def _write(self, name: str, values: np.ndarray) -> None:
        self._part(name).write(np.ascontiguousarray(values, dtype=self.dtypes[name]).tobytes())

    def _append(self, packed: PackedExamples) -> None:
        if self._examples == 0:
            self._write("offsets", np.zeros(1))
            if self.static_masks:
                self._write("mask_offsets", np.zeros(1))
        self._write("offsets", self._tokens + np.cumsum(packed.lengths))
        self._write("input_ids", packed.input_ids)
        self._write("word_start", packed.word_start)
        self._write("a_lengths", packed.a_lengths)
        self._write("labels", packed.labels)
        if self.static_masks:
            self._write("mask_offsets", self._predictions + np.cumsum(packed.mask_counts))
            self._write("masked_positions", packed.masked_positions)
            self._write("masked_inputs", packed.masked_inputs)
        self._examples += packed.num_examples
        self._tokens += int(packed.lengths.sum())
        self._predictions += int(packed.mask_counts.sum())

    def _close_shard(self) -> None:
        name = f"{self.prefix}-{len(self.shards):05d}.bin"
        digest = hashlib.sha256()
        arrays: dict[str, dict] = {}
        position = 0
        with open(self.directory / name, "wb") as out:
            for array_name, dtype in self.dtypes.items():
                pad = -position % ALIGN
                out.write(b"\0" * pad)
                digest.update(b"\0" * pad)
                position += pad
                part = self._part(array_name)
                size = part.tell()
                part.seek(0)
                while block := part.read(1 << 22):
                    out.write(block)
                    digest.update(block)
                part.close()
                os.remove(part.name)
                arrays[array_name] = {"offset": position, "dtype": dtype.str, "length": size // dtype.itemsize}
                position += size
        self.shards.append(ShardInfo(name, position, digest.hexdigest(), self._examples, self._tokens, arrays))
        self._parts = {}
        self._examples = self._tokens = self._predictions = 0

    def abort(self) -> None:
        """Close and delete the temporary parts (the caller removes the temporary directory)."""
        for part in self._parts.values():
            part.close()
        self._parts = {}


@dataclass
class Shard:
    """A shard opened for reading: its arrays memory-mapped (nothing is read until indexed)."""

    path: Path
    info: ShardInfo
    arrays: dict[str, np.ndarray]

    @property
    def num_examples(self) -> int:
        return self.info.examples


def open_shard(directory: Path, info: ShardInfo, verify: bool = True) -> Shard:
    """Memory-map a shard after checking its size (and, if `verify`, its sha256) against the manifest.

    Raises ValueError naming the shard when it is missing, truncated or altered.
    """
    path = Path(directory) / info.file
    if not path.is_file():
        raise FileNotFoundError(f"shard {path} listed in the manifest is missing")
    size = path.stat().st_size
    if size != info.bytes:
        raise ValueError(f"shard {path} is corrupt: {size} bytes, the manifest says {info.bytes}")
    if verify and file_sha256(path) != info.sha256:
        raise ValueError(f"shard {path} is corrupt: its sha256 differs from the manifest's")
    arrays = {}
    for name, spec in info.arrays.items():
        dtype = np.dtype(spec["dtype"])
        if spec["length"] == 0:
            arrays[name] = np.zeros(0, dtype=dtype)
        else:
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=spec["offset"], shape=(spec["length"],))
            # A plain-ndarray view of the map (which it keeps open): slicing a np.memmap costs a subclass
            # round trip per slice, several per example read.
            arrays[name] = mapped.view(np.ndarray)
    return Shard(path, info, arrays)


def read_manifest(directory: Path) -> dict:
    """Load and check `directory/manifest.json`; raise FileNotFoundError/ValueError naming the path."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {directory} is not a pretraining data directory "
                                f"(make one with `litebert data create`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} is format version {manifest.get('version')}, this litebert reads version "
                         f"{FORMAT_VERSION}: re-create the data with `litebert data create`")
    return manifest


def shard_infos(manifest: dict, split: str) -> list[ShardInfo]:
    """The shards of `split` ("train" or "eval") listed in a manifest."""
    splits = manifest["splits"]
    if split not in splits:
        raise ValueError(f"no split {split!r} in this data (splits: {sorted(splits)})")
    return [ShardInfo(**s) for s in splits[split]["shards"]]
