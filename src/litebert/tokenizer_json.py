"""Tokenizer files rebuilt from a Hugging Face `tokenizer.json`, for directories that hold nothing else.

transformers 5 saves ALBERT's and BERT's tokenizers as `tokenizer.json` + `tokenizer_config.json` only (4.x did so
with `legacy_format=False`): no `spiece.model`, no `vocab.txt`. The file holds what litebert's tokenizers need:

* ALBERT (a "Unigram" model): every piece with its score, the unknown piece's id, the added tokens (control
  symbols are "special", user-defined symbols are not), the normaliser's precompiled character map and the
  Metaspace pre-tokenizer (SentencePiece's dummy prefix). From them `spiece_from_tokenizer_json` writes the
  `ModelProto` bytes SentencePiece loads, so litebert encodes with the official algorithm (its own
  normalisation, then SentencePiece), not with the `tokenizers` re-implementation. transformers 4's converter
  lowered the score of every piece that ends in a digit and a comma by 100 (a stand-in for ALBERT's digit-comma
  re-split, which litebert does itself); those 100 are given back. The protobuf is written by hand (a dozen
  fields), so loading needs no protobuf package.
* BERT (a "WordPiece" model): the vocabulary in id order (`vocab.txt`'s lines) and the BertNormalizer's flags.
"""
from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

# SentencePiece.Type in sentencepiece_model.proto
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
DIGIT_COMMA_PENALTY = 100.0  # transformers 4's AlbertConverter: score - 100 for pieces like "1,"


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 fields are written as 10-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | float | bytes | str) -> bytes:
    """One protobuf field: varint for int/bool, fixed32 for float, length-delimited for bytes/str/messages."""
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return _varint(number << 3) + _varint(int(value))
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def model_proto(pieces: list[tuple[str, float, int]], unk_id: int, charsmap: bytes, add_dummy_prefix: bool) -> bytes:
    """ModelProto bytes: pieces (piece, score, type), a unigram TrainerSpec, a NormalizerSpec with `charsmap`."""
    out = bytearray()
    for piece, score, kind in pieces:
        out += _field(1, _field(1, piece) + _field(2, float(score)) + _field(3, kind))
    ids = {p: i for i, (p, _, _) in enumerate(pieces)}
    # unigram, the vocabulary size, and the ids of <unk> and <pad>; ALBERT has no <s> / </s>
    trainer = (_field(3, 1) + _field(4, len(pieces)) + _field(40, unk_id) + _field(41, -1) + _field(42, -1)
               + _field(43, ids.get("<pad>", -1)))
    out += _field(2, trainer)
    normalizer = (_field(1, "nmt_nfkc" if charsmap else "identity") + (_field(2, charsmap) if charsmap else b"")
                  + _field(3, add_dummy_prefix) + _field(4, True) + _field(5, True))
    out += _field(3, normalizer)
    return bytes(out)


def _steps(spec: dict | None, key: str) -> list[dict]:
    """The steps of a normaliser / pre-tokenizer: a "Sequence" lists them under `key`; anything else is one."""
    if not spec:
        return []
    return spec.get(key, []) if spec.get("type") == "Sequence" else [spec]


def _digit_comma(piece: str) -> bool:
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


def read(path: str | Path) -> dict:
    """The parsed tokenizer.json; ValueError naming the file when it is not one, or its model is neither an
    ALBERT ("Unigram") nor a BERT ("WordPiece") tokenizer's."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable tokenizer.json ({err})") from None
    kind = (spec.get("model") or {}).get("type") if isinstance(spec, dict) else None
    if kind not in ("Unigram", "WordPiece"):
        raise ValueError(f"{path}: model.type is {kind!r}; litebert reads a 'Unigram' (ALBERT's SentencePiece) "
                         f"or a 'WordPiece' (BERT's) tokenizer.json")
    return spec


def spiece_from_tokenizer_json(spec: dict, path: Path) -> tuple[bytes, dict[str, bool]]:
    """(ModelProto bytes, flags inferred from the normaliser: do_lower_case, keep_accents) of a unigram
    tokenizer.json (`read`); `path` names it in errors."""
    model = spec["model"]
    if not isinstance(model.get("vocab"), list):
        raise ValueError(f"{path}: model.vocab is not a list of [piece, score]")
    unk_id = model.get("unk_id")
    if not isinstance(unk_id, int):
        raise ValueError(f"{path}: model.unk_id is {unk_id!r}, expected the unknown piece's id")
    if not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], (int, float))
               for e in model["vocab"]):
        raise ValueError(f"{path}: model.vocab must list [piece, score] pairs")
    added = {t["id"]: bool(t.get("special")) for t in spec.get("added_tokens", [])}
    pieces = []
    for i, (piece, score) in enumerate(model["vocab"]):
        kind = UNKNOWN if i == unk_id else CONTROL if added.get(i) else USER_DEFINED if i in added else NORMAL
        if _digit_comma(piece) and score <= -DIGIT_COMMA_PENALTY:  # real log-probabilities never reach -100
            score += DIGIT_COMMA_PENALTY
        pieces.append((piece, score, kind))
    steps = _steps(spec.get("normalizer"), "normalizers")
    charsmaps = [s["precompiled_charsmap"] for s in steps if s.get("type") == "Precompiled" and
                 s.get("precompiled_charsmap")]
    charsmap = base64.b64decode(charsmaps[0]) if charsmaps else b""
    # SentencePiece's dummy prefix is the Metaspace's prepended "▁" (older files: add_prefix_space)
    metaspace = [p for p in _steps(spec.get("pre_tokenizer"), "pretokenizers") if p.get("type") == "Metaspace"]
    meta = metaspace[0] if metaspace else {}
    prefix = meta.get("prepend_scheme", "always") != "never" and meta.get("add_prefix_space", True)
    kinds = {s.get("type") for s in steps}
    flags = {"do_lower_case": "Lowercase" in kinds, "keep_accents": "StripAccents" not in kinds}
    return model_proto(pieces, unk_id, charsmap, prefix), flags


def vocab_from_tokenizer_json(spec: dict, path: Path) -> tuple[list[str], dict[str, object]]:
    """(tokens in id order, the BertNormalizer's flags as WordPieceTokenizer takes them) of a WordPiece
    tokenizer.json (`read`); `path` names it in errors."""
    vocab = spec["model"].get("vocab")
    ids = sorted(vocab.values()) if isinstance(vocab, dict) else None
    if not ids or not all(isinstance(i, int) and i >= 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"{path}: model.vocab must map each token to its own non-negative id")
    # A vocab.txt that listed a token twice leaves the first line's id unused (the later line wins): keep the
    # ids where the model's embeddings expect them, with a line no text can produce.
    tokens = [f"[unused-id-{i}]" for i in range(ids[-1] + 1)]
    for token, i in vocab.items():
        tokens[i] = token
    bert = [s for s in _steps(spec.get("normalizer"), "normalizers") if s.get("type") == "BertNormalizer"]
    flags = ({"do_lower_case": bert[0].get("lowercase", True), "strip_accents": bert[0].get("strip_accents"),
              "tokenize_chinese_chars": bert[0].get("handle_chinese_chars", True)} if bert else {})
    return tokens, flags
