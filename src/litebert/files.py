"""Files, written, read and found one way everywhere: atomic writes, sha256 of a file, users' UTF-8 text files
opened for reading, and text-file discovery.

Every file another process may read while it is written (manifests, checkpoints' markers, configs, summaries,
model weights) goes through `write_atomic`: a temporary file in the same directory, then a rename, so a reader
sees the old file or the new one, never half of one, and a crash leaves no partial output behind.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`; on error no file is left behind."""
    path = Path(path)
    tmp = _new_temporary_file(path)
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask
    try:
        write(tmp)
        # safetensors >= 0.8 replaces the file with its own temporary, always 0o600 (safetensors issue 782)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary_file(path: Path) -> Path:
    """A new empty file beside `path`, created with the permissions `open` gives (0o666 less the umask), not
    mkstemp's 0o600: a model or data directory others on a cluster may read stays readable to them."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # another writer drew the same name: draw again
            continue


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      default: Callable[[Any], Any] | None = None) -> None:
    """`data` as JSON (newline-terminated), atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=default,
                                       ensure_ascii=False) + "\n")


def fsync(path: str | Path) -> None:
    """Flush a file's bytes to the disk (before a rename makes them the real file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def open_text(path: str | Path, newline: str | None = None) -> Iterator:
    """Open a user's UTF-8 text file (a table, a JSON file, texts to label, a --config) for reading.

    A leading byte-order mark is dropped: Windows editors and Excel's "CSV UTF-8" write one, and kept it would make
    a header read "\\ufefftext" and JSON refuse the file. Bytes that are not UTF-8 raise a ValueError naming the
    file, line and byte, instead of a UnicodeDecodeError that names neither. (Pretraining corpora are read in
    binary instead, their undecodable bytes replaced and counted: `decode_utf8`.)
    """
    with open(path, encoding="utf-8-sig", newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{_first_undecodable(path)} is not UTF-8: save the file as UTF-8") from None


def _first_undecodable(path: str | Path) -> str:
    """'LINE: byte 0xNN at column C' of a file's first byte that is not UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return f"{number}: byte 0x{raw[err.start]:02x} at column {err.start + 1}"
    return " a byte"  # only a file changed since the decoding failed gets here


def decode_utf8(raw: bytes) -> tuple[str, int]:
    """(text, invalid bytes replaced by U+FFFD): UTF-8 decoding that never fails and counts what it repaired.
    Replacement characters already in the source are valid text, not counted."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text, text.count("\ufffd") - raw.count("\ufffd".encode("utf-8"))


# Corpora are often shipped compressed (CC-100 as .xz, OSCAR and Wikipedia extracts as .gz or .bz2): those are
# read as they are; archives, and compressors the standard library lacks, are refused before any work starts.
DECOMPRESSORS: dict[str, Callable[..., BinaryIO]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open,
                                                        ".lzma": lzma.open}
UNREADABLE = {".zip": "a zip archive", ".7z": "a 7-Zip archive", ".tar": "a tar archive", ".tgz": "a tar archive",
              ".zst": "zstd-compressed", ".lz4": "lz4-compressed", ".rar": "a RAR archive"}


JSON_TEXT_FIELDS = ("text", "content")
"""The field of a JSON-lines corpus record that holds its text: C4's, Hugging Face datasets' and OSCAR's names."""


def corpus_lines(path: Path) -> Iterator[bytes]:
    """A corpus file's lines as bytes, decompressed when its name ends in .gz, .bz2, .xz or .lzma; a damaged
    compressed file raises a ValueError naming it.

    A JSON-lines file (.jsonl or .json, compressed or not, as C4, OSCAR and `datasets.Dataset.to_json` write
    corpora) gives each record's text (JSON_TEXT_FIELDS) as one document: its non-blank lines, then a blank line.
    """
    lines = _file_lines(path)
    yield from _json_record_lines(lines, path) if _content_suffix(path) in (".jsonl", ".json") else lines


def _content_suffix(path: Path) -> str:
    """The suffix of what a file holds, under any compression: ".jsonl" for a.jsonl.gz, ".tar" for a.tar.xz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in DECOMPRESSORS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _open_corpus(path: Path) -> BinaryIO:
    """A corpus file opened for its bytes, decompressed by its suffix (DECOMPRESSORS)."""
    return DECOMPRESSORS.get(path.suffix.lower(), open)(path, "rb")


def _json_record_lines(lines: Iterator[bytes], path: Path) -> Iterator[bytes]:
    """The text of each JSON-lines record as document lines (see `corpus_lines`); a bad record names its line."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{number}: not UTF-8 (JSON text is UTF-8)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON object ({err.msg}): a .jsonl / .json corpus holds one "
                             f"object per line with its text in {' or '.join(JSON_TEXT_FIELDS)}") from None
        field = next((f for f in JSON_TEXT_FIELDS if isinstance(record, dict) and f in record), None)
        if field is None or not isinstance(record[field], str):
            found = f"fields {sorted(record)}" if isinstance(record, dict) else f"a {type(record).__name__}"
            raise ValueError(f"{path}:{number}: expected a JSON object with a string field "
                             f"{' or '.join(JSON_TEXT_FIELDS)}, found {found}")
        for line in record[field].splitlines():
            if line.strip():
                yield line.encode("utf-8") + b"\n"
        yield b"\n"


def _file_lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a file, decompressed by its suffix (see `corpus_lines`)."""
    try:
        with _open_corpus(path) as f:
            yield from f
    except (OSError, EOFError, lzma.LZMAError) as err:
        if path.suffix.lower() not in DECOMPRESSORS:
            raise
        raise ValueError(f"{path}: not readable as {path.suffix} compressed text ({err})") from None


SNIFF_BYTES = 8192
"""How much of each corpus file (decompressed) is looked at before any work starts."""


def _check_readable(path: Path) -> None:
    """Refuse, before any work, an archive and a file whose first SNIFF_BYTES are not UTF-8 text: a binary file
    (an image, a PDF) or text in another encoding (UTF-16, or a legacy 8-bit one) would be read as U+FFFD noise
    into the tokenizer and the data. Stray bad bytes in text stay `corpus_lines`' to repair and count."""
    outer = path.suffix.lower()
    kind = "a tar archive" if outer in DECOMPRESSORS and _content_suffix(path) == ".tar" else UNREADABLE.get(outer)
    if kind:
        raise ValueError(f"input file {path} is {kind}, not text: unpack it first (text files, or text compressed "
                         f"as {', '.join(DECOMPRESSORS)}, are read as they are)")
    try:
        with _open_corpus(path) as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError, lzma.LZMAError):
        return  # a damaged compressed file is named when it is read
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"input file {path} is UTF-16 text (it starts with UTF-16's byte-order mark): save it as "
                         f"UTF-8")
    nul = head.count(b"\x00") / max(len(head), 1)
    bad = decode_utf8(head)[1] / max(len(head), 1)
    if nul > 0.1 or bad > 0.3:
        raise ValueError(f"input file {path} is not UTF-8 text: {max(nul, bad):.0%} of its first "
                         f"{len(head):,} bytes are {'NUL' if nul > 0.1 else 'not UTF-8'} (a binary file, or text in "
                         f"another encoding: save text as UTF-8)")


def find_text_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files and directories (recursively, sorted, hidden files skipped) into a list of text files.

    Raises FileNotFoundError naming a missing path, ValueError naming an empty input file, a directory without
    files or an archive (what `tokenizer train` and `data create` take as --input). Read them with
    `corpus_lines`."""
    if not inputs:
        raise ValueError("no input given: pass --input FILE|DIR")
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_file():
            if item.stat().st_size == 0:
                raise ValueError(f"input file {item} is empty")
            files.append(item)
        elif item.is_dir():
            found = sorted(
                p for p in item.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
            if not found:
                raise ValueError(f"input directory {item} holds no files")
            files.extend(found)
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    for path in files:
        _check_readable(path)
    return files
