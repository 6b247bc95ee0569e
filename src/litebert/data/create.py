"""`litebert data create`: raw text -> sharded, masked pretraining examples (ALBERT's create_pretraining_data).

The pipeline, streamed so memory stays flat as the corpus grows:

    files --read_documents--> documents --chunk_documents--> DocumentChunk (fixed by the stream alone)
          --worker: tokenize, split train/eval, dupe_factor x (instances, masks)--> PackedExamples
          --ShardWriter (in chunk order)--> train-00000.bin ... eval-00000.bin + manifest.json

Every random choice about document d comes from generators seeded with (seed, purpose, d[, dupe]), never
from a generator shared along the stream, so the bytes written do not depend on the number of workers;
chunks are processed by a `multiprocessing` pool and their results written in order, with a bounded number
in flight. Everything is written into a temporary directory first and moved into place at the end: an
error leaves the output directory as it was.

`--dupe-factor` defaults to 10 with static masking (each document is cut and masked 10 times, so the model
sees 10 maskings over training; BERT's script defaults to 10, ALBERT's copy to 40) and to 1 with dynamic
masking, where masks are drawn anew each epoch anyway.
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from litebert.config import fields
from litebert.config.data import MASKING_MODES, SENTENCE_TASKS, CreateOptions, ExampleOptions, MaskingOptions
from litebert.data.documents import DocumentChunk, ReadStats, chunk_documents, read_documents
from litebert.data.examples import Instance, SpecialIds, create_instances, split_long_segments
from litebert.data.masking import MaskingVocab, mask_ngrams
from litebert.data.shards import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PackedExamples,
    ShardWriter,
    read_manifest,
)
from litebert.files import find_text_files, write_json_atomic

SPLITS = ("train", "eval")
# Purposes of the per-document random streams: changing one never shifts another.
SPLIT_STREAM, INSTANCE_STREAM = 0, 1

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ChunkResult:
    """A worker's output for one DocumentChunk: examples per split and what it skipped."""

    examples: dict[str, PackedExamples]
    documents: dict[str, int]
    documents_without_pieces: int = 0
    short_chunks: int = 0
    split_lines: int = 0
    """Lines longer than an example, cut into lines that fit (`split_long_lines`)."""
    text_pieces: int = 0
    """Pieces of text the examples were made from, over all dupe rounds."""
    truncated_pieces: int = 0
    """Of those, the ones truncation removed."""


@dataclass
class WorkerContext:
    """What a worker needs to process chunks; built once per process from the tokenizer directory."""

    options: CreateOptions
    word_start: np.ndarray
    vocab: MaskingVocab
    special: SpecialIds
    encode: Callable[[list[str]], list[list[int]]] = field(repr=False)
    examples: ExampleOptions = field(init=False)
    masking: MaskingOptions = field(init=False)

    def __post_init__(self) -> None:
        self.examples = self.options.example_options()
        self.masking = self.options.masking_options()


def _build_context(tokenizer_dir: Path, options: CreateOptions) -> WorkerContext:
    from litebert.tokenizer import AlbertTokenizer

    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    return context_for(tokenizer, options)


def context_for(tokenizer, options: CreateOptions) -> WorkerContext:
    """A worker context around a tokenizer object (anything with the AlbertTokenizer interface)."""
    special_ids = [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id,
                   tokenizer.sep_token_id, tokenizer.mask_token_id]
    return WorkerContext(
        options=options,
        word_start=np.asarray(tokenizer.word_start_flags(), dtype=bool),
        vocab=MaskingVocab.build(tokenizer.vocab_size, tokenizer.mask_token_id, special_ids),
        special=SpecialIds(tokenizer.cls_token_id, tokenizer.sep_token_id),
        encode=tokenizer.encode_batch_ids,
    )


def document_rng(seed: int, stream: int, document_index: int, dupe: int = 0) -> np.random.Generator:
    """The generator for one purpose, document and duplicate: a pure function of its arguments."""
    return np.random.default_rng([seed, stream, document_index, dupe])


def process_chunk(chunk: DocumentChunk, ctx: WorkerContext) -> ChunkResult:
    """Tokenize a chunk's documents, assign each to train/eval, and build `dupe_factor` rounds of examples."""
    options = ctx.options
    # One tokenizer call for the whole chunk: SentencePiece encodes a batch natively.
    lines = [line for document in chunk.documents for line in document]
    ids = iter(ctx.encode(lines))
    pools: dict[str, list[list[np.ndarray]]] = {split: [] for split in SPLITS}
    indexes: dict[str, list[int]] = {split: [] for split in SPLITS}
    without_pieces = split_lines = 0
    limit = ctx.examples.max_num_tokens
    for offset, document in enumerate(chunk.documents):
        segments = [np.asarray(piece_ids, dtype=np.int32) for piece_ids in (next(ids) for _ in document)]
        segments = [s for s in segments if len(s)]
        if not segments:
            without_pieces += 1
            continue
        if options.split_long_lines:
            split_lines += sum(len(s) > limit for s in segments)
            segments = split_long_segments(segments, limit, ctx.word_start)
        index = chunk.first_index + offset
        split = "eval" if document_rng(options.seed, SPLIT_STREAM, index).random() < options.eval_fraction else "train"
        pools[split].append(segments)
        indexes[split].append(index)
    result = ChunkResult({}, {split: len(pools[split]) for split in SPLITS}, documents_without_pieces=without_pieces,
                         split_lines=split_lines)
    for split in SPLITS:
        builder = _ExampleBuilder(options.masking == "static")
        result.text_pieces += options.dupes * sum(len(s) for document in pools[split] for s in document)
        # All documents once per dupe round, as the official loop: round r of document d is seeded (d, r).
        for dupe in range(options.dupes):
            for position, index in enumerate(indexes[split]):
                rng = document_rng(options.seed, INSTANCE_STREAM, index, dupe)
                made = create_instances(pools[split], position, ctx.examples, ctx.special, ctx.word_start, rng)
                result.short_chunks += made.short_chunks
                result.truncated_pieces += made.truncated_pieces
                for instance in made.instances:
                    builder.add(instance, ctx, rng)
        result.examples[split] = builder.pack(ctx.word_start)
    return result


class _ExampleBuilder:
    """Collects instances (and their static masks) of one split into PackedExamples."""

    def __init__(self, static_masks: bool):
        self.static_masks = static_masks
        self.ids: list[np.ndarray] = []
        self.a_lengths: list[int] = []
        self.labels: list[int] = []
        self.positions: list[np.ndarray] = []
        self.masked_inputs: list[np.ndarray] = []

    def add(self, instance: Instance, ctx: WorkerContext, rng: np.random.Generator) -> None:
        self.ids.append(instance.input_ids)
        self.a_lengths.append(instance.a_length)
        self.labels.append(instance.label)
        if self.static_masks:
            spans = mask_ngrams(instance.input_ids, ctx.word_start[instance.input_ids], ctx.masking, ctx.vocab, rng)
            self.positions.append(spans.positions)
            self.masked_inputs.append(spans.replacement_ids)

    def pack(self, word_start: np.ndarray) -> PackedExamples:
        empty = np.zeros(0, dtype=np.int64)
        input_ids = np.concatenate(self.ids) if self.ids else empty
        return PackedExamples(
            input_ids=input_ids,
            word_start=word_start[input_ids].astype(np.uint8),
            lengths=np.array([len(x) for x in self.ids], dtype=np.int64),
            a_lengths=np.array(self.a_lengths, dtype=np.int64),
            labels=np.array(self.labels, dtype=np.int64),
            mask_counts=np.array([len(p) for p in self.positions] if self.static_masks else [0] * len(self.ids),
                                 dtype=np.int64),
            masked_positions=np.concatenate(self.positions) if self.positions else empty,
            masked_inputs=np.concatenate(self.masked_inputs) if self.masked_inputs else empty,
        )


# Worker processes build their context once (the tokenizer is not cheap to send with every task).
_WORKER_CONTEXT: WorkerContext | None = None


def _init_worker(tokenizer_dir: Path, options: CreateOptions) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = _build_context(tokenizer_dir, options)


def _process_in_worker(chunk: DocumentChunk) -> ChunkResult:
    assert _WORKER_CONTEXT is not None
    return process_chunk(chunk, _WORKER_CONTEXT)


def ordered_map(submit: Callable[[T], "multiprocessing.pool.AsyncResult"], items: Iterable[T], in_flight: int) -> Iterator[R]:
    """Results of `submit(item)` in input order, with at most `in_flight` items submitted and not yet yielded.

    `Pool.imap` would read the whole input ahead of the workers (memory grows with the corpus); this reads
    the next chunk only when a result has been taken.
    """
    pending: deque = deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) >= in_flight:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def create_pretraining_data(
    inputs: list[str | Path],
    tokenizer_dir: str | Path,
    output_dir: str | Path,
    options: CreateOptions,
    progress: bool = True,
) -> dict:
    """Build the pretraining data of `inputs` into `output_dir`; return the manifest written.

    Raises FileNotFoundError/ValueError (naming the path) for a missing or empty input, a tokenizer
    different from the one an existing output was made with, or a corpus without any document.
    """
    from litebert.tokenizer import AlbertTokenizer

    files = find_text_files(inputs)
    tokenizer_dir, output_dir = Path(tokenizer_dir), Path(output_dir)
    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    fingerprint = tokenizer.fingerprint()
    _check_existing(output_dir, fingerprint)
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".create-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = _create(files, tokenizer, tokenizer_dir, tmp, options, progress)
        # absolute: pretraining copies the tokenizer beside its final model from whatever directory it runs in
        manifest["tokenizer"] = {"fingerprint": fingerprint, "vocab_size": tokenizer.vocab_size,
                                 "directory": str(tokenizer_dir.resolve())}
        _move_into_place(tmp, output_dir, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:  # a failed run leaves no empty --output behind (a damaged input is found only while reading)
            with contextlib.suppress(OSError):
                output_dir.rmdir()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _check_existing(output_dir: Path, fingerprint: str) -> None:
    if not (output_dir / MANIFEST).is_file():
        return
    existing = read_manifest(output_dir)["tokenizer"]["fingerprint"]
    if existing != fingerprint:
        raise ValueError(
            f"{output_dir} holds data made with another tokenizer (fingerprint {existing[:12]}, this one is "
            f"{fingerprint[:12]}); write to a new --output directory or delete the old one"
        )


def _create(files: list[Path], tokenizer, tokenizer_dir: Path, tmp: Path, options: CreateOptions, progress: bool) -> dict:
    """Run the pipeline into `tmp`; return the manifest (without the tokenizer entry)."""
    from litebert.runlog import counter

    static = options.masking == "static"
    writers = {split: ShardWriter(tmp, split, tokenizer.vocab_size, static, options.shard_size) for split in SPLITS}
    read_stats = ReadStats()
    chunks = chunk_documents(read_documents(files, read_stats), options.chunk_documents)
    totals = {"documents": {s: 0 for s in SPLITS}, "documents_without_pieces": 0, "short_chunks": 0,
              "split_lines": 0, "text_pieces": 0, "truncated_pieces": 0}
    try:
        with _chunk_results(chunks, tokenizer, tokenizer_dir, options) as results, \
                counter(None, "doc", "data create", disable=not progress) as bar:
            for result in results:
                for split in SPLITS:
                    writers[split].add(result.examples[split])
                    totals["documents"][split] += result.documents[split]
                for key in ("documents_without_pieces", "short_chunks", "split_lines", "text_pieces",
                            "truncated_pieces"):
                    totals[key] += getattr(result, key)
                bar.update(sum(result.documents.values()) + result.documents_without_pieces)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    if not sum(totals["documents"].values()):
        raise ValueError(f"no document with text in {', '.join(map(str, files))}")
    splits = {}
    for split in SPLITS:
        shards = writers[split].close()
        splits[split] = {
            "examples": sum(s.examples for s in shards),
            "tokens": sum(s.tokens for s in shards),
            "documents": totals["documents"][split],
            "shards": [asdict(s) for s in shards],
        }
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "settings": options.manifest_settings(),
        "special_ids": {"pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id, "cls": tokenizer.cls_token_id,
                        "sep": tokenizer.sep_token_id, "mask": tokenizer.mask_token_id},
        "skipped": {
            "empty_documents": read_stats.empty_documents + totals["documents_without_pieces"],
            "undecodable_bytes": read_stats.undecodable_bytes,
            "short_chunks": totals["short_chunks"],
            "truncated_pieces": totals["truncated_pieces"],
        },
        "input": {"files": read_stats.files, "documents": read_stats.documents, "lines": read_stats.lines,
                  "split_lines": totals["split_lines"], "text_pieces": totals["text_pieces"]},
        "splits": splits,
    }


@contextmanager
def _chunk_results(
    chunks: Iterable[DocumentChunk], tokenizer, tokenizer_dir: Path, options: CreateOptions
) -> Iterator[Iterator[ChunkResult]]:
    """ChunkResults in chunk order: from a pool of `options.workers` processes, or in this one for 1."""
    if options.workers == 1:
        ctx = context_for(tokenizer, options)
        yield (process_chunk(chunk, ctx) for chunk in chunks)
        return
    # spawn, not fork: the parent has torch (and its threads) loaded.
    pool = multiprocessing.get_context("spawn").Pool(options.workers, _init_worker, (tokenizer_dir, options))
    try:
        yield ordered_map(lambda chunk: pool.apply_async(_process_in_worker, (chunk,)), chunks, 2 * options.workers)
    finally:
        pool.terminate()
        pool.join()


def _move_into_place(tmp: Path, output_dir: Path, manifest: dict) -> None:
    """Replace the output's data by the new shards; the manifest goes last, so a crash in between leaves
    no manifest rather than one that lists the wrong shards."""
    old = output_dir / MANIFEST
    old_shards = []
    if old.is_file():
        old_shards = [s["file"] for split in read_manifest(output_dir)["splits"].values() for s in split["shards"]]
        old.unlink()
    new_shards = [s["file"] for split in manifest["splits"].values() for s in split["shards"]]
    for name in new_shards:
        os.replace(tmp / name, output_dir / name)
    for name in set(old_shards) - set(new_shards):
        (output_dir / name).unlink(missing_ok=True)
    write_json_atomic(output_dir / MANIFEST, manifest)


def summary(manifest: dict) -> str:
    """The lines printed at the end of `data create`."""
    skipped = manifest["skipped"]
    lines = [
        f"{split}: {s['examples']:,} examples, {s['tokens']:,} tokens, {s['documents']:,} documents, "
        f"{len(s['shards'])} shards" for split, s in manifest["splits"].items()
    ]
    lines.append(f"skipped: {skipped['empty_documents']:,} empty documents, "
                 f"{skipped['short_chunks']:,} one-piece chunks; replaced {skipped['undecodable_bytes']:,} "
                 f"undecodable byte sequences")
    text = manifest["input"]
    share = skipped["truncated_pieces"] / max(1, text["text_pieces"])
    lines.append(f"truncated: {skipped['truncated_pieces']:,} of {text['text_pieces']:,} text pieces ({share:.1%}) "
                 f"cut to fit max_seq_length; {text['split_lines']:,} lines longer than an example split")
    if reason := empty_eval_reason(manifest):
        lines.append(f"warning: {reason}; pretraining will run without held-out evaluation")
    return "\n".join(lines)


def empty_eval_reason(manifest: dict) -> str | None:
    """Why a held-out split that was asked for came out empty, or None. The split draws whole documents, so a
    corpus without blank lines (one document per file) has too few to hold any out."""
    fraction = manifest["settings"]["eval_fraction"]
    documents = sum(split["documents"] for split in manifest["splits"].values())
    if not fraction or manifest["splits"]["eval"]["examples"]:
        return None
    return (f"--eval-fraction {fraction:g} held out none of the {documents:,} documents: the split takes whole "
            f"documents; a blank line ends one, and a file without blank lines is one document")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `litebert data create`."""
    data = subparsers.add_parser("data", help="pretraining data")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("create", help="raw text -> sharded masked-LM + SOP examples (create_pretraining_data)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    S = argparse.SUPPRESS  # flags not given leave CreateOptions' value (or --config FILE's)
    p.add_argument("--input", nargs="+", required=True, metavar="FILE|DIR",
                   help="text files (UTF-8; .gz, .bz2 and .xz read as they are) or directories: one segment (a "
                        "sentence, or longer) per line, blank line between documents")
    p.add_argument("--tokenizer", required=True, metavar="DIR",
                   help="directory with spiece.model (or vocab.txt, or a Hugging Face tokenizer.json)")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the shards and manifest.json")
    p.add_argument("--max-seq-length", dest="max_seq_length", type=int, default=S)
    p.add_argument("--masked-lm-prob", dest="masked_lm_prob", type=float, default=S)
    p.add_argument("--max-predictions-per-seq", dest="max_predictions_per_seq", type=int, default=S,
                   help="cap on masked pieces per example (ALBERT: 20 at length 512)")
    p.add_argument("--ngram", dest="ngram", type=int, default=S, help="longest masked span in words, p(n) ∝ 1/n")
    p.add_argument("--whole-word", dest="whole_word", action=argparse.BooleanOptionalAction, default=S,
                   help="mask whole words (ALBERT, default); --no-whole-word masks single pieces")
    p.add_argument("--dupe-factor", dest="dupe_factor", type=int, default=S,
                   help="times each document is cut and masked (default 10 static, 1 dynamic)")
    p.add_argument("--short-seq-prob", dest="short_seq_prob", type=float, default=S)
    p.add_argument("--split-long-lines", dest="split_long_lines", action=argparse.BooleanOptionalAction, default=S,
                   help="cut lines longer than an example at word starts (default); --no-split-long-lines: the "
                        "official truncation, which drops all but one example's worth of such a line")
    p.add_argument("--seed", dest="seed", type=int, default=S)
    p.add_argument("--workers", dest="workers", type=int, default=S,
                   help="processes (the output does not depend on it)")
    p.add_argument("--sentence-task", dest="sentence_task", choices=SENTENCE_TASKS, default=S,
                   help="sop (ALBERT), nsp (BERT) or none (single segment, for corpora without document order)")
    p.add_argument("--masking", dest="masking", choices=MASKING_MODES, default=S,
                   help="static: masks stored (the paper); dynamic: drawn per epoch by the dataset")
    p.add_argument("--shard-size", dest="shard_size", type=int, default=S, help="examples per shard")
    p.add_argument("--eval-fraction", dest="eval_fraction", type=float, default=S,
                   help="share of documents held out as the eval split")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    fields.add_config_arguments(p, CreateOptions)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = fields.config_from_args(CreateOptions, args)
    manifest = create_pretraining_data(args.input, args.tokenizer, args.output, options, progress=not args.no_progress)
    print(summary(manifest))
    print(f"wrote {Path(args.output) / MANIFEST}")
    return 0
