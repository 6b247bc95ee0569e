"""Raw text -> documents, streamed.

Input format (BERT's and ALBERT's `create_pretraining_data.py`): plain UTF-8 text, one sentence or
segment per line, documents separated by blank lines; a file is also a document boundary, so a corpus of
one document per file needs no blank lines. Segment boundaries matter: sentence-order prediction swaps
whole segments, and it would be too easy if a segment ended mid-sentence.

Documents are yielded one at a time and grouped into fixed-size `DocumentChunk`s (by document count and
text bytes, both read from the stream alone), so memory stays flat as the corpus grows and the chunking is
the same whatever the number of worker processes. Undecodable bytes become U+FFFD and are counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from litebert.files import corpus_lines, decode_utf8



@dataclass
class ReadStats:
    """What reading skipped or repaired; the counts go into the manifest.

    files: input files read.
    documents: non-blank documents yielded.
    empty_documents: files without any text line (blank runs between documents are separators, not documents).
    undecodable_bytes: invalid UTF-8 sequences replaced by U+FFFD.
    lines: non-blank lines read.
    """

    files: int = 0
    documents: int = 0
    empty_documents: int = 0
    undecodable_bytes: int = 0
    lines: int = 0


@dataclass
class DocumentChunk:
    """A run of consecutive documents processed together (by one worker).

    first_index: corpus-wide index of the first document; document i of the chunk has index first_index + i,
        and its random generator is seeded from that index, so results do not depend on chunking by workers.
    documents: each a list of stripped, non-blank lines.
    """

    first_index: int
    documents: list[list[str]] = field(default_factory=list)


def decode_line(raw: bytes, stats: ReadStats) -> str:
    """UTF-8 decode one line, replacing invalid bytes with U+FFFD and counting them."""
    text, replaced = decode_utf8(raw)
    stats.undecodable_bytes += replaced
    return text


def read_documents(files: Iterable[Path], stats: ReadStats) -> Iterator[list[str]]:
    """Yield documents (lists of stripped non-blank lines) from `files`, in order.

    A blank line or the end of a file ends a document; runs of blank lines are one separator.
    """
    for path in files:
        stats.files += 1
        documents_before = stats.documents
        document: list[str] = []
        for raw in corpus_lines(path):
            line = decode_line(raw, stats).strip()
            if line:
                document.append(line)
                stats.lines += 1
            elif document:
                stats.documents += 1
                yield document
                document = []
        if document:
            stats.documents += 1
            yield document
        if stats.documents == documents_before:
            stats.empty_documents += 1


def chunk_documents(
    documents: Iterable[list[str]], max_documents: int = 256, max_bytes: int = 1 << 20
) -> Iterator[DocumentChunk]:
    """Group consecutive documents into chunks of at most `max_documents` documents and about `max_bytes`.

    A chunk closes after the document that reaches `max_bytes`, so one huge document is a chunk of its own:
    a document is the unit of randomness and is never split.
    """
    chunk = DocumentChunk(first_index=0)
    size = 0
    index = 0
    for document in documents:
        chunk.documents.append(document)
        size += sum(len(line) for line in document)
        index += 1
        if len(chunk.documents) >= max_documents or size >= max_bytes:
            yield chunk
            chunk = DocumentChunk(first_index=index)
            size = 0
    if chunk.documents:
        yield chunk
