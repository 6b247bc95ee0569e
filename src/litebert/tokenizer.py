"""ALBERT's tokenizer: SentencePiece training with ALBERT's settings, and encoding that matches the official code.

Two tokenizers share one encoding interface (pairs, token types, truncation, padding, decoding):

- `AlbertTokenizer`: ALBERT's text normalisation + a SentencePiece unigram model + the official digit-comma
  re-split (google-research/albert `tokenization.encode_pieces`, HF's slow `AlbertTokenizer._tokenize`).
- `WordPieceTokenizer`: BERT's basic tokenisation + greedy longest-match-first WordPiece, for BERT vocabularies
  (`vocab.txt`), with ids identical to `transformers.BertTokenizer`.

`train_sentencepiece` trains a model with the settings of ALBERT's `30k-clean` model (README of
google-research/albert): unigram, `<pad>`=0, `<unk>`=1, control symbols `[CLS]`, `[SEP]`, `[MASK]` = 2, 3, 4, no
BOS/EOS, user-defined symbols `( ) " - . – £ €`, character coverage 0.99995, shuffled sampling of 10M sentences.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import sys
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import sentencepiece as spm
import torch

from litebert import pairs
from litebert.config import fields
from litebert.config.tokenizer import TokenizerTrainConfig
from litebert.files import corpus_lines, decode_utf8, find_text_files, write_atomic

SPIECE_UNDERLINE = "▁"
ALBERT_SPECIAL_TOKENS = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
# The user-defined symbols of ALBERT's 30k-clean model: always their own piece, never merged into words.
ALBERT_USER_SYMBOLS = ("(", ")", '"', "-", ".", "–", "£", "€")
ACCENT_NOTE_SHARE = 0.005  # `tokenizer train` suggests --keep-accents when it strips more accents than this share
SPM_MAX_SENTENCE_BYTES = 4192  # SentencePiece's default max_sentence_length; longer lines are dropped by it.
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
# Pieces the official whole-word masking treats as word starts (albert create_pretraining_data._is_start_piece).
# The official set holds no apostrophe (its string has \" twice); we keep it exactly.
_OFFICIAL_START_PUNCTUATION = frozenset('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')
# Scripts written without spaces between words (code-point ranges): Thai, Lao, Tibetan, Myanmar, Khmer, CJK
# punctuation, Hiragana, Katakana, the CJK ideographs BERT's tokenizer splits per character, and fullwidth
# forms. SentencePiece marks word starts only at spaces, so in these scripts a whole sentence would be one word.
_UNSPACED_SCRIPTS = ((0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3000, 0x30FF), (0x31F0, 0x31FF),
                     (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x20000, 0x3134F))
# Combining diacritical marks (U+0300-U+036F): the accents ALBERT's normalisation strips after NFKD.
_COMBINING_MARK = re.compile("[\u0300-\u036f]")
_SPECIAL_RE = re.compile("(" + "|".join(map(re.escape, ALBERT_SPECIAL_TOKENS)) + ")")
_BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BERT_SPECIAL_RE = re.compile("(" + "|".join(map(re.escape, _BERT_SPECIAL_TOKENS)) + ")")


# ---------------------------------------------------------------------------------------------------------------
# Normalisation shared by training and encoding
# ---------------------------------------------------------------------------------------------------------------


def albert_normalize(
    text: str, do_lower_case: bool = True, keep_accents: bool = False, remove_space: bool = True
) -> str:
    """ALBERT's `preprocess_text`: collapse whitespace, `` and '' to ", strip accents (NFKD), lower-case."""
    if remove_space:
        text = " ".join(text.strip().split())
    text = text.replace("``", '"').replace("''", '"')
    if not keep_accents:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    if do_lower_case:
        text = text.lower()
    return text


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def split_long_line(line: str, max_bytes: int) -> list[str]:
    """Split `line` into chunks of at most `max_bytes` UTF-8 bytes, at whitespace where possible.

    SentencePiece silently drops sentences longer than its max_sentence_length; splitting keeps their text.
    A single word longer than the budget is cut between characters.
    """
    if len(line.encode("utf-8")) <= max_bytes:
        return [line]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for word in line.split():
        for part in _split_word(word, max_bytes):
            n = len(part.encode("utf-8"))
            if current and size + 1 + n > max_bytes:
                chunks.append(" ".join(current))
                current, size = [], 0
            size += n + (1 if current else 0)
            current.append(part)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _split_word(word: str, max_bytes: int) -> Iterator[str]:
    """Cut one whitespace-free word into pieces of at most `max_bytes` bytes, between characters."""
    start, size = 0, 0
    for i, ch in enumerate(word):
        n = len(ch.encode("utf-8"))
        if size + n > max_bytes and i > start:
            yield word[start:i]
            start, size = i, 0
        size += n
    yield word[start:]


def training_sentences(
    files: Iterable[Path],
    do_lower_case: bool = True,
    keep_accents: bool = False,
    max_sentence_bytes: int = SPM_MAX_SENTENCE_BYTES,
    stats: dict[str, int] | None = None,
) -> Iterator[str]:
    """Stream normalised, non-empty lines of `files`, long lines split to fit SentencePiece's byte limit.

    Blank lines (document separators) carry no text for a unigram model and are skipped. Invalid UTF-8 becomes
    U+FFFD, counted in stats["undecodable_bytes"]; stats["sentences"] counts what was yielded, and without
    `keep_accents` stats["accents_stripped"] the accents removed, of stats["characters"].
    """
    stats = stats if stats is not None else {}
    for key in ("sentences", "undecodable_bytes", "accents_stripped", "characters"):
        stats.setdefault(key, 0)
    for path in files:
        for raw in corpus_lines(path):
            line, replaced = decode_utf8(raw)
            stats["undecodable_bytes"] += replaced
            stats["characters"] += len(line)
            if not keep_accents:
                stats["accents_stripped"] += len(_COMBINING_MARK.findall(unicodedata.normalize("NFKD", line)))
            text = albert_normalize(line, do_lower_case, keep_accents, remove_space=True)
            for sentence in split_long_line(text, max_sentence_bytes) if text else ():
                stats["sentences"] += 1
                yield sentence


def train_sentencepiece(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    vocab_size: int = TokenizerTrainConfig.vocab_size,
    *,
    do_lower_case: bool = TokenizerTrainConfig.do_lower_case,
    keep_accents: bool = TokenizerTrainConfig.keep_accents,
    character_coverage: float = TokenizerTrainConfig.character_coverage,
    input_sentence_size: int = TokenizerTrainConfig.input_sentence_size,
    shuffle_input_sentence: bool = TokenizerTrainConfig.shuffle_input_sentence,
    max_sentence_bytes: int = SPM_MAX_SENTENCE_BYTES,
    num_threads: int | None = TokenizerTrainConfig.num_threads,
    seed: int = TokenizerTrainConfig.seed,
    overwrite: bool = False,
    verbose: bool = False,
    stats: dict[str, int] | None = None,
) -> Path:
    """Train an ALBERT SentencePiece unigram model on raw text; return the path of `output_dir/spiece.model`.

    Text is normalised as at encoding time and streamed through a Python iterator, so memory is bounded by
    SentencePiece's sample of `input_sentence_size` sentences (shuffled when `shuffle_input_sentence`), not by
    the corpus. Writes `spiece.model`, `spiece.vocab` and a Hugging Face `tokenizer_config.json`, only once
    training succeeded (a failure leaves no output directory behind). `stats`, when given, receives the counts
    of sentences read and of undecodable bytes replaced.
    """
    files = find_text_files(inputs)
    output_dir = Path(output_dir)
    model_path = output_dir / "spiece.model"
    if model_path.exists() and not overwrite:
        raise FileExistsError(f"{model_path} exists; pass overwrite=True (--overwrite) to replace it")
    counter = stats if stats is not None else {}
    read_errors: list[Exception] = []

    def sentences() -> Iterator[str]:
        # SentencePiece turns an error raised by its iterator into a RuntimeError of C++ traces: keep ours to raise
        try:
            yield from training_sentences(files, do_lower_case, keep_accents, max_sentence_bytes, counter)
        except Exception as err:
            read_errors.append(err)
            raise

    spm.set_random_generator_seed(seed)
    # A model_writer rather than model_prefix keeps the output path out of the model's trainer_spec, so the
    # same corpus and settings give the same bytes (and fingerprint) wherever the model is written.
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            control_symbols=list(ALBERT_SPECIAL_TOKENS[2:]),
            user_defined_symbols=list(ALBERT_USER_SYMBOLS),
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=shuffle_input_sentence,
            max_sentence_length=max_sentence_bytes,
            num_threads=num_threads or os.cpu_count() or 1,
            minloglevel=0 if verbose else 2,
        )
    except RuntimeError as err:
        if read_errors:
            raise read_errors[0] from None
        if counter["sentences"] == 0:
            raise ValueError(f"no text to train on: every line of {', '.join(map(str, files))} is blank") from None
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "no reason given"
        raise ValueError(f"SentencePiece training failed on {counter['sentences']} sentences from {len(files)} "
                         f"file(s) (vocab_size={vocab_size}): {reason}") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(model_path, lambda p: p.write_bytes(model.getvalue()))
    AlbertTokenizer(model_path, do_lower_case, keep_accents).save_pretrained(output_dir)
    return model_path


# ---------------------------------------------------------------------------------------------------------------
# Shared encoding interface
# ---------------------------------------------------------------------------------------------------------------


class _PairEncoder:
    """Pair layout, truncation, padding and batching for a tokenizer with `[CLS]`/`[SEP]`/pad ids.

    Subclasses set the special token ids and provide `encode_batch_ids` and `_decode_ids`.
    """

    pad_token_id: int
    unk_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int

    def encode_batch_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, without special tokens."""
        raise NotImplementedError

    def _decode_ids(self, ids: list[int]) -> str:
        raise NotImplementedError

    @property
    def all_special_ids(self) -> frozenset[int]:
        return frozenset(
            (self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id)
        )

    def build_inputs(self, ids_a: list[int], ids_b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`; token types 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`."""
        input_ids, token_type_ids = pairs.pack(ids_a, ids_b, self.cls_token_id, self.sep_token_id)
        return input_ids.tolist(), token_type_ids.tolist()

    def encode(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool | str = True,
    ) -> list[int]:
        """Ids of `text` (and `pair`), with `[CLS]`/`[SEP]` when `add_special_tokens`, cut to `max_length`.

        truncation: True ('longest_first'), 'only_first', 'only_second', False ('do_not_truncate');
        nothing is cut when `max_length` is None.
        """
        encoded = self.encode_batch_ids([text] if pair is None else [text, pair])
        ids_a, ids_b = encoded[0], (encoded[1] if pair is not None else None)
        n_special = (3 if pair is not None else 2) if add_special_tokens else 0
        ids_a, ids_b = truncate_by_strategy(ids_a, ids_b, max_length, truncation, n_special)
        if add_special_tokens:
            return self.build_inputs(ids_a, ids_b)[0]
        return ids_a + (ids_b or [])

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        max_length: int | None = None,
        padding: bool | str = True,
        truncation: bool | str = True,
        return_tensors: str | None = "pt",
    ) -> dict:
        """Encode one text or a batch (with optional pairs) into `input_ids`, `attention_mask`, `token_type_ids`.

        padding: True pads to the longest sequence, 'max_length' to `max_length`, False not at all.
        return_tensors='pt' gives LongTensors of shape (B, T) (B=1 for a single text); None gives lists
        (flat lists for a single text, as in Hugging Face).
        """
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = None if text_pair is None else ([text_pair] if isinstance(text_pair, str) else list(text_pair))
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        ids = self.encode_batch_ids(texts + (pairs or []))
        rows = []
        for i in range(len(texts)):
            ids_b = ids[len(texts) + i] if pairs is not None else None
            a, b = truncate_by_strategy(ids[i], ids_b, max_length, truncation, 3 if pairs is not None else 2)
            rows.append(self.build_inputs(a, b))
        batch = self._pad(rows, max_length, padding)
        if return_tensors == "pt":
            lengths = {len(r) for r in batch["input_ids"]}
            if len(lengths) > 1:
                raise ValueError("sequences differ in length; use padding=True to return tensors")
            return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        return {k: v[0] for k, v in batch.items()} if single else batch

    def _pad(self, rows: list[tuple[list[int], list[int]]], max_length: int | None, padding: bool | str) -> dict:
        """Right-pad rows of (input_ids, token_type_ids); attention_mask is 1 on real tokens. A row longer than
        max_length (truncation off) sets the length of all."""
        if padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length")
            target = max_length
        elif padding is True or padding == "longest":
            target = max(len(ids) for ids, _ in rows)
        elif padding is False or padding == "do_not_pad":
            target = 0
        else:
            raise ValueError(f"padding must be True, False or 'max_length', got {padding!r}")
        if target == 0:  # no padding: rows keep their own lengths
            return {"input_ids": [ids for ids, _ in rows], "attention_mask": [[1] * len(ids) for ids, _ in rows],
                    "token_type_ids": [types for _, types in rows]}
        padded = pairs.pad(rows, max(target, *(len(ids) for ids, _ in rows)), self.pad_token_id)
        return {k: v.tolist() for k, v in padded.items()}

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text of `ids`; special tokens (pad, unk, cls, sep, mask) are dropped when `skip_special_tokens`."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids]
        return self._decode_ids(list(ids))

    def batch_decode(
        self, batch: Sequence[Sequence[int]] | torch.Tensor, skip_special_tokens: bool = True
    ) -> list[str]:
        """`decode` for each row of a (B, T) batch."""
        if isinstance(batch, torch.Tensor):
            batch = batch.tolist()
        return [self.decode(ids, skip_special_tokens) for ids in batch]


def _rebuilt_from_tokenizer_json(path: Path) -> tuple[Path, dict[str, object]]:
    """The spiece.model or vocab.txt that a Hugging Face tokenizer.json holds (`tokenizer_json`), written once
    into $LITEBERT_TOKENIZER_DIR (default ~/.cache/litebert/tokenizers) under a digest of the file (it appears
    whole or not at all), and the flags its normaliser implies."""
    from litebert import tokenizer_json
    from litebert.fetch import DEFAULT_CACHE

    spec = tokenizer_json.read(path)
    if spec["model"]["type"] == "Unigram":
        data, flags = tokenizer_json.spiece_from_tokenizer_json(spec, path)
        name = "spiece.model"
    else:
        tokens, flags = tokenizer_json.vocab_from_tokenizer_json(spec, path)
        data, name = "".join(f"{t}\n" for t in tokens).encode("utf-8"), "vocab.txt"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    target = Path(os.environ.get("LITEBERT_TOKENIZER_DIR") or DEFAULT_CACHE / "tokenizers") / digest / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda p: p.write_bytes(data))
    return target, flags


def truncate_by_strategy(
    ids_a: list[int],
    ids_b: list[int] | None,
    max_length: int | None,
    truncation: bool | str,
    n_special: int,
) -> tuple[list[int], list[int] | None]:
    """Cut ids so that len(a) + len(b) + n_special <= max_length, following Hugging Face's strategies.

    longest_first removes one token at a time from the longer sequence (from `b` on ties), as BERT's
    `_truncate_seq_pair`; only_first / only_second cut one side and fail unless a token of it remains.
    """
    strategy = {True: "longest_first", False: "do_not_truncate"}.get(truncation, truncation)
    if strategy not in TRUNCATION_STRATEGIES:
        raise ValueError(f"truncation must be a bool or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
    if max_length is None or strategy == "do_not_truncate":
        return ids_a, ids_b
    len_b = len(ids_b) if ids_b is not None else 0
    excess = len(ids_a) + len_b + n_special - max_length
    if excess <= 0:
        return ids_a, ids_b
    if strategy == "longest_first":
        if max_length < n_special:
            raise ValueError(f"max_length={max_length} leaves no room for the {n_special} special tokens")
        return pairs.truncate_pair(ids_a, ids_b, max_length - n_special)
    if strategy == "only_second" and ids_b is None:
        raise ValueError("truncation='only_second' needs a text pair")
    side = ids_a if strategy == "only_first" else ids_b
    if excess >= len(side):
        # Hugging Face refuses to empty the truncated sequence too ("Sequence to truncate too short").
        raise ValueError(
            f"cannot fit max_length={max_length} with truncation={strategy!r}: it would remove all "
            f"{len(side)} tokens of the truncated sequence and still need {excess - len(side)} more"
        )
    cut = side[: len(side) - excess]
    return (cut, ids_b) if strategy == "only_first" else (ids_a, cut)


TOKENIZER_MODELS = ("spiece.model", "vocab.txt", "tokenizer.json")
"""Any one of these makes a directory a tokenizer's (`AlbertTokenizer.from_pretrained` tries them in this order)."""
TOKENIZER_FILES = (*TOKENIZER_MODELS, "spiece.vocab", "tokenizer_config.json")
"""What travels with a model (`copy_tokenizer_files`)."""


def has_tokenizer(directory: str | Path) -> bool:
    """Whether `directory` holds a tokenizer `AlbertTokenizer.from_pretrained` can load."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_MODELS)


def copy_tokenizer_files(source: str | Path, target: str | Path) -> bool:
    """Copy the tokenizer files of `source` into `target` (beside a model); whether there were any."""
    found = [Path(source) / name for name in TOKENIZER_FILES if (Path(source) / name).is_file()]
    for path in found:
        shutil.copy2(path, Path(target) / path.name)
    return bool(found)


def _read_config(directory: Path) -> dict:
    path = directory / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _fingerprint(model_bytes: bytes, flags: dict) -> str:
    digest = hashlib.sha256(model_bytes)
    digest.update(json.dumps(flags, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# ALBERT (SentencePiece)
# ---------------------------------------------------------------------------------------------------------------


class AlbertTokenizer(_PairEncoder):
    """ALBERT's tokenizer: normalisation, SentencePiece unigram pieces, digit-comma re-split.

    Matches the official google-research/albert `FullTokenizer` and Hugging Face's slow `AlbertTokenizer`.
    """

    def __init__(
        self,
        vocab_file: str | Path,
        do_lower_case: bool = True,
        keep_accents: bool = False,
        remove_space: bool = True,
    ):
        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise FileNotFoundError(f"SentencePiece model {self.vocab_file} not found")
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self.remove_space = remove_space
        self.sp_model = spm.SentencePieceProcessor(model_file=str(self.vocab_file))
        self._pieces = [self.sp_model.id_to_piece(i) for i in range(self.sp_model.get_piece_size())]
        self._piece_to_id = {p: i for i, p in enumerate(self._pieces)}
        missing = [t for t in ALBERT_SPECIAL_TOKENS if t not in self._piece_to_id]
        if missing:
            raise ValueError(
                f"{self.vocab_file} lacks ALBERT's special pieces {missing}; train it with train_sentencepiece"
            )
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self._piece_to_id[t] for t in ALBERT_SPECIAL_TOKENS
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "AlbertTokenizer | WordPieceTokenizer":
        """Load `spiece.model` (+ `tokenizer_config.json` flags) from `directory`, or a BERT `vocab.txt`, or a
        Hugging Face `tokenizer.json` alone, as transformers 5 saves both (`_rebuilt_from_tokenizer_json`)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"tokenizer directory {directory} does not exist")
        config = _read_config(directory)
        model, flags = directory / "spiece.model", {}
        if not model.is_file() and (directory / "vocab.txt").is_file():
            return WordPieceTokenizer.from_pretrained(directory)
        if not model.is_file() and (directory / "tokenizer.json").is_file():
            model, flags = _rebuilt_from_tokenizer_json(directory / "tokenizer.json")
            if model.name == "vocab.txt":
                return WordPieceTokenizer.from_vocab(model, {**flags, **config})
        if not model.is_file():
            raise FileNotFoundError(f"{directory} holds no SentencePiece model (spiece.model), WordPiece vocab "
                                    f"(vocab.txt) or Hugging Face tokenizer.json")
        return cls(
            model,
            do_lower_case=config.get("do_lower_case", flags.get("do_lower_case", True)),
            keep_accents=config.get("keep_accents", flags.get("keep_accents", False)),
            remove_space=config.get("remove_space", True),
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `spiece.model`, `spiece.vocab` and `tokenizer_config.json` (loadable by Hugging Face)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "spiece.model"
        if target.resolve() != self.vocab_file.resolve():
            shutil.copyfile(self.vocab_file, target)
        vocab = "".join(f"{p}\t{self.sp_model.get_score(i):g}\n" for i, p in enumerate(self._pieces))
        (directory / "spiece.vocab").write_text(vocab, encoding="utf-8")
        config = {
            "tokenizer_class": "AlbertTokenizer",
            "do_lower_case": self.do_lower_case,
            "keep_accents": self.keep_accents,
            "remove_space": self.remove_space,
            "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>", "sep_token": "[SEP]",
            "pad_token": "<pad>", "cls_token": "[CLS]", "mask_token": "[MASK]",
            "model_max_length": 512,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def normalize(self, text: str) -> str:
        """ALBERT's text normalisation with this tokenizer's flags."""
        return albert_normalize(text, self.do_lower_case, self.keep_accents, self.remove_space)

    def tokenize(self, text: str) -> list[str]:
        """SentencePiece pieces of the normalised `text`; special tokens written in it (`[MASK]`) are kept."""
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """`tokenize` for many texts; SentencePiece encodes all their segments in one native call."""
        # Split at special tokens written in the text (as Hugging Face does, so "the [MASK] of" works);
        # odd positions of each split are the special tokens themselves.
        splits = [_SPECIAL_RE.split(t) if ("[" in t or "<" in t) else [t] for t in texts]
        plain = [self.normalize(seg) for parts in splits for seg in parts[0::2]]
        encoded = iter(self.sp_model.encode(plain, out_type=str))
        batch = []
        for parts in splits:
            pieces: list[str] = []
            for j, seg in enumerate(parts):
                pieces.extend([seg] if j % 2 else self._split_digit_commas(next(encoded)))
            batch.append(pieces)
        return batch

    def _split_digit_commas(self, pieces: list[str]) -> list[str]:
        """The official re-split: `9,9` -> ['▁9', ',', '9'], not ['▁9,', '9'].

        A piece ending in a comma after a digit is encoded again without the comma (and without '▁'), and
        the comma becomes its own piece; a '▁' the re-encoding adds is dropped if the piece had none.
        """
        out: list[str] = []
        for piece in pieces:
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                cur = self.sp_model.encode(piece[:-1].replace(SPIECE_UNDERLINE, ""), out_type=str)
                if piece[0] != SPIECE_UNDERLINE and cur[0][0] == SPIECE_UNDERLINE:
                    cur = cur[1:] if len(cur[0]) == 1 else [cur[0][1:], *cur[1:]]
                out.extend(cur)
                out.append(piece[-1])
            else:
                out.append(piece)
        return out

    def encode_batch_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.convert_tokens_to_ids(pieces) for pieces in self.tokenize_batch(texts)]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Piece -> id; pieces outside the vocabulary (unknown characters) map to `<unk>`."""
        unk = self.unk_token_id
        return [self._piece_to_id.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._pieces[i] for i in ids]

    def _decode_ids(self, ids: list[int]) -> str:
        # SentencePiece decodes control symbols to "" and <unk> to " ⁇ ", so special tokens kept in `ids` are
        # written out here, as their pieces (as Hugging Face's decode writes them). A lone "▁" piece decodes to a
        # space: the text is stripped at both ends, as Hugging Face's is.
        special = self.all_special_ids
        parts, run = [], []
        for i in ids:
            if i in special:
                parts += [self.sp_model.decode(run), self._pieces[i]]
                run = []
            else:
                run.append(i)
        parts.append(self.sp_model.decode(run))
        return " ".join(p.strip() for p in parts if p.strip())

    def word_start_flags(self) -> np.ndarray:
        """(vocab_size,) bool: True where a piece begins a word, for whole-word masking.

        As the official `_is_start_piece`: pieces starting with '▁', '<' or '[' (so special tokens) and
        single punctuation characters start words; control and unknown pieces do too. Unlike it, so does a
        piece that begins in a script written without spaces (Chinese, Japanese, Thai, ...: `_UNSPACED_SCRIPTS`),
        where SentencePiece's '▁' marks only sentence starts: whole-word masking would otherwise mask whole
        sentences (as BERT's tokenizer makes each CJK character a word, each such piece is one here).
        """
        flags = np.zeros(self.vocab_size, dtype=bool)
        for i, piece in enumerate(self._pieces):
            flags[i] = (
                piece.startswith((SPIECE_UNDERLINE, "<", "["))
                or piece in _OFFICIAL_START_PUNCTUATION
                or (piece != "" and _is_unspaced_script(piece[0]))
                or self.sp_model.is_control(i)
                or self.sp_model.is_unknown(i)
            )
        return flags

    def fingerprint(self) -> str:
        """sha256 of the model bytes and the normalisation flags: equal fingerprints encode identically."""
        flags = {"do_lower_case": self.do_lower_case, "keep_accents": self.keep_accents,
                 "remove_space": self.remove_space}
        return _fingerprint(self.vocab_file.read_bytes(), flags)


def _is_unspaced_script(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces between words (`_UNSPACED_SCRIPTS`)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _UNSPACED_SCRIPTS)


# ---------------------------------------------------------------------------------------------------------------
# BERT (WordPiece)
# ---------------------------------------------------------------------------------------------------------------


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    # \t \n \r count as whitespace, not control, as in BERT.
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    # BERT treats all non-alphanumeric ASCII (e.g. "^", "$", "`") as punctuation, beyond Unicode's P* classes.
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    """CJK Unified Ideographs blocks, as BERT defines them (Hangul and kana are not included)."""
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def bert_basic_tokenize(
    text: str, do_lower_case: bool = True, strip_accents: bool | None = None, tokenize_chinese_chars: bool = True
) -> list[str]:
    """BERT's BasicTokenizer: clean, split CJK characters, lower-case, strip accents, split punctuation."""
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if tokenize_chinese_chars and _is_cjk(cp):
            cleaned.append(f" {ch} ")
        else:
            cleaned.append(" " if _is_whitespace(ch) else ch)
    strip = do_lower_case if strip_accents is None else strip_accents
    words: list[str] = []
    for word in "".join(cleaned).split():
        if do_lower_case:
            word = word.lower()
        if strip:
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        words.extend(_split_punctuation(word))
    return words


def _split_punctuation(word: str) -> list[str]:
    out: list[str] = []
    start_new = True
    for ch in word:
        if _is_punctuation(ch):
            out.append(ch)
            start_new = True
        else:
            if start_new:
                out.append("")
            start_new = False
            out[-1] += ch
    return out


class WordPieceTokenizer(_PairEncoder):
    """BERT's tokenizer over a `vocab.txt`: basic tokenisation then greedy longest-match-first WordPiece."""

    def __init__(
        self,
        vocab_file: str | Path,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        max_input_chars_per_word: int = 100,
    ):
        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise FileNotFoundError(f"WordPiece vocab {self.vocab_file} not found")
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        with open(self.vocab_file, encoding="utf-8") as f:
            self._tokens = [line.rstrip("\n") for line in f]
        self._token_to_id = {}
        for i, t in enumerate(self._tokens):
            self._token_to_id.setdefault(t, i)
        missing = [t for t in _BERT_SPECIAL_TOKENS if t not in self._token_to_id]
        if missing:
            raise ValueError(f"{self.vocab_file} lacks BERT's special tokens {missing}")
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self._token_to_id[t] for t in _BERT_SPECIAL_TOKENS
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "WordPieceTokenizer":
        """Load `vocab.txt` and the flags of `tokenizer_config.json` (when present) from `directory`."""
        directory = Path(directory)
        if not (directory / "vocab.txt").is_file():
            raise FileNotFoundError(f"{directory} holds no WordPiece vocab (vocab.txt)")
        return cls.from_vocab(directory / "vocab.txt", _read_config(directory))

    @classmethod
    def from_vocab(cls, vocab_file: Path, config: dict) -> "WordPieceTokenizer":
        """`vocab_file` with the flags of a `tokenizer_config.json`-like dict (defaults where absent)."""
        return cls(
            vocab_file,
            do_lower_case=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `vocab.txt` and a Hugging Face `tokenizer_config.json` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / "vocab.txt").resolve() != self.vocab_file.resolve():
            shutil.copyfile(self.vocab_file, directory / "vocab.txt")
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]", "model_max_length": 512,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def normalize(self, text: str) -> str:
        """The basic tokenisation's words joined by spaces (cleaned, lower-cased, accents and punctuation split)."""
        return " ".join(self._basic(text))

    def _basic(self, text: str) -> list[str]:
        return bert_basic_tokenize(text, self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of `text`; continuation pieces start with '##'; written `[MASK]` etc. are kept."""
        parts = _BERT_SPECIAL_RE.split(text) if "[" in text else [text]
        tokens: list[str] = []
        for j, seg in enumerate(parts):
            if j % 2:
                tokens.append(seg)
            else:
                tokens.extend(piece for word in self._basic(seg) for piece in self._wordpiece(word))
        return tokens

    def _wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first split of one word; `[UNK]` if any part is unmatched or it is too long."""
        if len(word) > self.max_input_chars_per_word:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self._token_to_id:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(sub)
            start = end
        return pieces

    def encode_batch_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.convert_tokens_to_ids(self.tokenize(t)) for t in texts]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        unk = self.unk_token_id
        return [self._token_to_id.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._tokens[i] for i in ids]

    def _decode_ids(self, ids: list[int]) -> str:
        return " ".join(self.convert_ids_to_tokens(ids)).replace(" ##", "").strip()

    def word_start_flags(self) -> np.ndarray:
        """(vocab_size,) bool: True where a token begins a word (does not start with '##')."""
        return np.array([not t.startswith("##") for t in self._tokens], dtype=bool)

    def fingerprint(self) -> str:
        """sha256 of the vocab bytes and the normalisation flags."""
        flags = {"do_lower_case": self.do_lower_case, "strip_accents": self.strip_accents,
                 "tokenize_chinese_chars": self.tokenize_chinese_chars}
        return _fingerprint(self.vocab_file.read_bytes(), flags)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `litebert tokenizer train`."""
    group = subparsers.add_parser("tokenizer", help="train a SentencePiece model with ALBERT's settings")
    sub = group.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    train = sub.add_parser(
        "train",
        help="train spiece.model on raw text",
        description="Train an ALBERT SentencePiece unigram model. Input is raw text: one document per file or "
        "documents separated by blank lines.",
    )
    S = argparse.SUPPRESS  # flags not given leave TokenizerTrainConfig's value (or --config FILE's)
    train.add_argument("--input", nargs="+", required=True, type=Path,
                       help="text files (UTF-8; .gz, .bz2 and .xz read as they are) or directories")
    train.add_argument("--output", required=True, type=Path, help="directory for spiece.model and configs")
    train.add_argument("--vocab-size", dest="vocab_size", type=int, default=S, help="default 30000")
    train.add_argument("--character-coverage", dest="character_coverage", type=float, default=S)
    train.add_argument("--input-sentence-size", dest="input_sentence_size", type=int, default=S,
                       help="sentences SentencePiece samples from the corpus")
    train.add_argument("--no-shuffle", dest="shuffle_input_sentence", action="store_false", default=S,
                       help="take the first sentences instead of a sample")
    train.add_argument("--cased", dest="do_lower_case", action="store_false", default=S,
                       help="do not lower-case (do_lower_case=False)")
    train.add_argument("--keep-accents", dest="keep_accents", action="store_true", default=S)
    train.add_argument("--threads", dest="num_threads", type=int, default=S, help="default: all cores")
    train.add_argument("--seed", dest="seed", type=int, default=S)
    train.add_argument("--overwrite", action="store_true")
    fields.add_config_arguments(train, TokenizerTrainConfig)
    train.set_defaults(func=_cmd_train)

    def show_help(args: argparse.Namespace) -> int:
        group.print_help()
        return 2

    group.set_defaults(func=show_help)


def _cmd_train(args: argparse.Namespace) -> int:
    settings = dataclasses.asdict(fields.config_from_args(TokenizerTrainConfig, args))
    path = train_sentencepiece(args.input, args.output, **settings, overwrite=args.overwrite, verbose=True,
                               stats=(stats := {}))
    tok = AlbertTokenizer.from_pretrained(path.parent)
    print(f"wrote {path} ({tok.vocab_size} pieces), fingerprint {tok.fingerprint()[:16]}; read "
          f"{stats['sentences']:,} sentences, replaced {stats['undecodable_bytes']:,} undecodable bytes with U+FFFD")
    share = stats["accents_stripped"] / max(1, stats["characters"])
    if share >= ACCENT_NOTE_SHARE:
        print(f"note: {stats['accents_stripped']:,} accents ({share:.1%} of the characters) were stripped, as "
              f"ALBERT's English models do; for a language whose words need them, train with --keep-accents",
              file=sys.stderr)
    return 0
