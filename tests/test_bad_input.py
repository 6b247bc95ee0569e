"""Bad input, through the command line a user types: each case gives a one-line error naming the file and what was
expected (exit status 2), or a counted repair reported at the end; nothing half-written is left behind.

Covers `data create` and `pretrain` (binary noise, latin-1, NUL bytes, CRLF, an empty directory, an empty file,
a very long line, a truncated shard, altered shard bytes), `tokenizer train`, a fine-tuning reader, `export hf`,
a tokenizer that does not match the data, and a data directory in an older format; and the library's notes a
command shows on stderr.
"""
from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

from litebert.cli import main, notes_on_stderr

WORDS = ("the film was good and the acting bad so we left early but the music stayed with me for days "
         "a river ran past the old house where nobody lived any more").split()


def error_line(capsys) -> str:
    """The one line a failing command wrote to stderr (progress chatter of SentencePiece aside)."""
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("litebert ")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS, rng.integers(6, 14))) + "." for _ in range(rng.integers(3, 8)))
            for _ in range(80)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    assert main(["tokenizer", "train", "--input", str(root / "corpus.txt"), "--output", str(root / "tok"),
                 "--vocab-size", "50"]) == 0
    assert main(["data", "create", "--input", str(root / "corpus.txt"), "--tokenizer", str(root / "tok"),
                 "--output", str(root / "data"), "--max-seq-length", "32", "--max-predictions-per-seq", "5",
                 "--dupe-factor", "1", "--no-progress"]) == 0
    return root


def create(corpus: Path, inputs: list[Path], out: Path) -> int:
    return main(["data", "create", "--input", *map(str, inputs), "--tokenizer", str(corpus / "tok"),
                 "--output", str(out), "--max-seq-length", "32", "--max-predictions-per-seq", "5",
                 "--dupe-factor", "1", "--no-progress"])


def test_damaged_text_is_repaired_and_counted(corpus, tmp_path, capsys):
    """Stray latin-1 bytes in text become U+FFFD, counted; NUL bytes and CRLF line ends are plain text. (A file that
    is mostly not UTF-8, such as binary noise, is refused: test_unusable_inputs_are_named_and_nothing_is_written.)"""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "latin1.txt").write_bytes("café crème brûlée was good\n".encode("latin-1") * 20)
    (inputs / "nul.txt").write_bytes(b"the film\x00was good\nthe music\x00stayed\n" * 20)
    (inputs / "crlf.txt").write_bytes(b"the film was good\r\nthe acting bad\r\n\r\nthe river ran\r\n" * 20)
    (inputs / "long.txt").write_text(" ".join(WORDS) * 20_000 + "\n", encoding="utf-8")  # one 2.7 MB line
    assert create(corpus, [inputs], tmp_path / "out") == 0
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    skipped = manifest["skipped"]
    assert skipped["undecodable_bytes"] == 80  # 4 latin-1 bytes (é è û é) x 20 lines
    assert manifest["splits"]["train"]["examples"] > 0
    assert "undecodable" in capsys.readouterr().out


UNUSABLE = {"empty file": ("empty.txt", "is empty"), "empty directory": ("nothing", "holds no files"),
            "missing path": ("nope.txt", "does not exist"),
            "archive": ("corpus.tar.gz", "is a tar archive, not text: unpack it first"),
            "zstd": ("corpus.txt.zst", "is zstd-compressed, not text: unpack it first"),
            "damaged gzip": ("corpus.txt.gz", "not readable as .gz compressed text"),
            "binary file": ("figure.png", "is not UTF-8 text: 4"),
            "UTF-16": ("notepad.txt", "is UTF-16 text (it starts with UTF-16's byte-order mark): save it as UTF-8"),
            "UTF-16 without a byte-order mark": ("utf16le.txt", "is not UTF-8 text: 50% of its first"),
            "legacy encoding": ("cp1251.txt", "bytes are not UTF-8 (a binary file, or text in another encoding: "
                                              "save text as UTF-8)"),
            "binary in gzip": ("noise.bin.gz", "is not UTF-8 text")}


@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_inputs_are_named_and_nothing_is_written(corpus, tmp_path, capsys, case):
    name, message = UNUSABLE[case]
    target = tmp_path / name
    if case == "empty file":
        target.write_text("")
    elif case == "empty directory":
        target.mkdir()
    elif case in ("archive", "zstd"):
        target.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(64))
    elif case == "damaged gzip":  # the first half of a real one: the stream ends early
        whole = gzip.compress((corpus / "corpus.txt").read_bytes())
        target.write_bytes(whole[:len(whole) // 2])
    elif case in ("binary file", "binary in gzip"):
        noise = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
        target.write_bytes(gzip.compress(noise) if case == "binary in gzip" else noise)
    elif case.startswith("UTF-16"):
        text = (corpus / "corpus.txt").read_text(encoding="utf-8")
        target.write_bytes(text.encode("utf-16" if case == "UTF-16" else "utf-16-le"))
    elif case == "legacy encoding":
        target.write_bytes("Привет, это текст на русском языке.\n".encode("cp1251") * 50)
    for command in (["data", "create", "--tokenizer", str(corpus / "tok"), "--output", str(tmp_path / "o")],
                    ["tokenizer", "train", "--output", str(tmp_path / "t"), "--vocab-size", "40"]):
        assert main([*command, "--input", str(target)]) == 2
        line = error_line(capsys)
        assert str(target) in line and message in line, line
    assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()


def test_compressed_corpora_are_read_as_their_text(corpus, tmp_path):
    """CC-100 ships .xz, OSCAR and Wikipedia extracts .gz or .bz2: the same tokenizer and the same shards as from
    the text itself."""
    text = (corpus / "corpus.txt").read_bytes()
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)):
        (tmp_path / suffix[1:]).mkdir()
        (tmp_path / suffix[1:] / f"corpus.txt{suffix}").write_bytes(compress(text))
    (tmp_path / "gz/wiki_00").write_bytes(text)  # WikiExtractor's names: no suffix, plain text
    assert create(corpus, [tmp_path / "gz", tmp_path / "bz2", tmp_path / "xz"], tmp_path / "packed") == 0
    assert create(corpus, [corpus / "corpus.txt"] * 4, tmp_path / "plain") == 0
    packed, plain = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("packed", "plain"))
    assert packed["splits"] == plain["splits"] and packed["splits"]["train"]["documents"] == 4 * 80
    assert (tmp_path / "packed/train-00000.bin").read_bytes() == (tmp_path / "plain/train-00000.bin").read_bytes()
    for source, out in ((tmp_path / "xz", "tok-xz"), (corpus / "corpus.txt", "tok-plain")):
        assert main(["tokenizer", "train", "--input", str(source), "--output", str(tmp_path / out),
                     "--vocab-size", "50"]) == 0
    assert (tmp_path / "tok-xz/spiece.model").read_bytes() == (tmp_path / "tok-plain/spiece.model").read_bytes()


def test_json_lines_corpora_are_read_as_their_records_text(corpus, tmp_path, capsys):
    """C4 (.json.gz), OSCAR (.jsonl, "content") and datasets' to_json (.jsonl): each record's text is a document,
    giving the same tokenizer and shards as the plain text; the JSON syntax never reaches them. A bad record is
    named by line before anything is written."""
    documents = (corpus / "corpus.txt").read_text(encoding="utf-8").strip().split("\n\n")
    records = [json.dumps({"text": d, "url": f"https://example.org/{i}"}) for i, d in enumerate(documents)]
    (tmp_path / "c4").mkdir()
    (tmp_path / "c4/c4-train.00000-of-00002.json.gz").write_bytes(gzip.compress("\n".join(records[:40]).encode()))
    (tmp_path / "c4/part-2.jsonl").write_text("\n".join(json.dumps({"content": d}) for d in documents[40:]) + "\n\n")
    assert create(corpus, [tmp_path / "c4"], tmp_path / "from-json") == 0
    assert create(corpus, [corpus / "corpus.txt"], tmp_path / "plain") == 0
    got, want = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("from-json", "plain"))
    assert got["splits"] == want["splits"] and got["splits"]["train"]["documents"] == 80
    assert (tmp_path / "from-json/train-00000.bin").read_bytes() == (tmp_path / "plain/train-00000.bin").read_bytes()
    for source, out in ((tmp_path / "c4", "tok-json"), (corpus / "corpus.txt", "tok-plain")):
        assert main(["tokenizer", "train", "--input", str(source), "--output", str(tmp_path / out),
                     "--vocab-size", "50"]) == 0
    assert (tmp_path / "tok-json/spiece.model").read_bytes() == (tmp_path / "tok-plain/spiece.model").read_bytes()
    capsys.readouterr()
    for bad, message in (('{"title": "no text"}', "expected a JSON object with a string field text or content, "
                                                  "found fields ['title']"),
                         ("plain words", "not a JSON object (Expecting value)")):
        (tmp_path / "bad.jsonl").write_text(records[0] + "\n" + bad + "\n", encoding="utf-8")
        for command in (["data", "create", "--tokenizer", str(corpus / "tok"), "--output", str(tmp_path / "o")],
                        ["tokenizer", "train", "--output", str(tmp_path / "t"), "--vocab-size", "40"]):
            assert main([*command, "--input", str(tmp_path / "bad.jsonl")]) == 2
            line = error_line(capsys)
            assert f"{tmp_path / 'bad.jsonl'}:2: {message}" in line, line
        assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()


def test_tokenizer_train_failure_leaves_no_directory(corpus, tmp_path, capsys):
    (tmp_path / "blank.txt").write_text("\n\n\n")
    assert main(["tokenizer", "train", "--input", str(tmp_path / "blank.txt"), "--output", str(tmp_path / "t"),
                 "--vocab-size", "40"]) == 2
    assert "no text to train on: every line of" in error_line(capsys)
    assert main(["tokenizer", "train", "--input", str(corpus / "corpus.txt"), "--output", str(tmp_path / "t"),
                 "--vocab-size", "5000"]) == 2  # more pieces than this text has
    assert "SentencePiece training failed" in error_line(capsys)
    assert not (tmp_path / "t").exists()


def pretrain(data: Path, out: Path, *extra: str) -> int:
    return main(["pretrain", "--preset", "albert-tiny", "--data", str(data), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "4", "--global-batch", "4", "--eval-every", "0",
                 "--no-progress", *extra])


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_damaged_shards_are_refused(corpus, tmp_path, capsys, damage):
    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    shard = sorted(data.glob("train-*.bin"))[0]
    raw = bytearray(shard.read_bytes())
    if damage == "truncated":
        shard.write_bytes(bytes(raw[:-64]))
    else:
        raw[len(raw) // 2] ^= 0xFF
        shard.write_bytes(bytes(raw))
    assert pretrain(data, tmp_path / "run") == 2
    line = error_line(capsys)
    assert shard.name in line and ("bytes, the manifest says" in line if damage == "truncated" else "sha256" in line)
    assert not (tmp_path / "run/checkpoints").exists()


def test_a_tokenizer_that_does_not_match_the_data(corpus, tmp_path, capsys):
    (tmp_path / "other.txt").write_text("completely different words here\n" * 50 + "zebra yak quokka\n" * 50)
    assert main(["tokenizer", "train", "--input", str(tmp_path / "other.txt"), "--output", str(tmp_path / "tok2"),
                 "--vocab-size", "38"]) == 0
    capsys.readouterr()
    assert pretrain(corpus / "data", tmp_path / "run", "--tokenizer", str(tmp_path / "tok2")) == 2
    line = error_line(capsys)
    assert "tok2" in line and "tokenizer" in line
    assert main(["data", "create", "--input", str(corpus / "corpus.txt"), "--tokenizer", str(tmp_path / "tok2"),
                 "--output", str(corpus / "data"), "--no-progress"]) == 2  # onto data made with another one
    assert "tokenizer" in error_line(capsys)


def test_a_data_directory_in_an_older_format(corpus, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(corpus / "data", data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["version"] = manifest["version"] - 1
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert pretrain(data, tmp_path / "run") == 2
    line = error_line(capsys)
    assert "manifest.json is format version" in line and "re-create the data with `litebert data create`" in line


def test_a_malformed_fine_tuning_file_names_its_line(corpus, tmp_path, capsys):
    glue = tmp_path / "glue/SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\t0\textra\n")
    (glue / "dev.tsv").write_text("sentence\tlabel\nok\t1\n")
    assert main(["finetune", "--task", "sst-2", "--data-dir", str(tmp_path / "glue"), "--model", "albert-tiny",
                 "--tokenizer", str(corpus / "tok"), "--output", str(tmp_path / "ft"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert f"{glue / 'train.tsv'}:3: expected 2 tab-separated fields" in line
    (glue / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\tmaybe\n")
    assert main(["finetune", "--task", "sst-2", "--data-dir", str(tmp_path / "glue"), "--model", "albert-tiny",
                 "--tokenizer", str(corpus / "tok"), "--output", str(tmp_path / "ft"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert "train.tsv:3" in line and "'maybe'" in line
    assert not (tmp_path / "ft/metrics.json").exists()


def test_export_refuses_what_is_not_a_model(corpus, tmp_path, capsys):
    assert main(["export", "hf", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "nope" in error_line(capsys)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "albert", "vocab_size": 60}))
    (model / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["export", "hf", str(model), str(tmp_path / "out")]) == 2
    assert "model.safetensors" in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_run_directory_given_for_a_model_says_where_its_model_is(corpus, tmp_path, capsys):
    """`run/` for `run/final`, `clf/` for `clf/seed-1/model`, a resumable checkpoint for a model: every command
    that takes a model names the right directory."""
    assert pretrain(corpus / "data", tmp_path / "run", "--save-every", "1") == 0
    fine_tuning = tmp_path / "clf/seed-1/model"
    shutil.copytree(tmp_path / "run/final", fine_tuning)
    step = tmp_path / "run/checkpoints/step-0000001"
    cases = {tmp_path / "run": f"it is a pretraining run, whose model is {tmp_path / 'run/final'}",
             tmp_path / "clf": f"it is a fine-tuning run, whose models are {fine_tuning}",
             step: "it is a resumable training checkpoint, not a model directory"}
    for given, hint in cases.items():
        for command in (["fill-mask", str(given), "the [MASK] ran"], ["export", "hf", str(given), str(tmp_path / "x")],
                        ["finetune", "--task", "sst-2", "--data-dir", str(tmp_path), "--model", str(given),
                         "--output", str(tmp_path / "ft")]):
            assert main(command) == 2
            assert hint in error_line(capsys), (given, command)
    assert main(["fill-mask", str(tmp_path / "run/final"), "the [MASK] ran"]) == 0


def test_a_classifier_fine_tuned_for_another_task_is_named(corpus, tmp_path, capsys):
    from litebert import AlbertConfig, AlbertForSequenceClassification

    model = tmp_path / "three-labels"
    AlbertForSequenceClassification(AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=64, num_labels=3)
                                    ).save_pretrained(model)
    glue = tmp_path / "glue/SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\t0\nok\t1\nbad\t0\n")
    (glue / "dev.tsv").write_text("sentence\tlabel\nok\t1\n")
    (glue / "test.tsv").write_text("index\tsentence\n0\tok\n")
    assert main(["finetune", "--task", "sst-2", "--data-dir", str(tmp_path / "glue"), "--model", str(model),
                 "--tokenizer", str(corpus / "tok"), "--output", str(tmp_path / "ft"), "--no-progress"]) == 2
    assert "its classifier has 3 labels, sst-2 needs 2" in error_line(capsys)


def test_a_tokenizer_other_than_the_models_is_warned_or_refused(corpus, tmp_path, capsys):
    """A smaller foreign tokenizer would train without complaint on ids the model never learned: warned; a
    larger one cannot index the embeddings: refused."""
    from litebert import AlbertConfig, AlbertForPreTraining
    from litebert.tokenizer import train_sentencepiece

    model = tmp_path / "pretrained"
    AlbertForPreTraining(AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64)).save_pretrained(model)
    shutil.copytree(corpus / "tok", model, dirs_exist_ok=True)
    rng = np.random.default_rng(1)
    (tmp_path / "other.txt").write_text("\n".join(" ".join("".join(rng.choice(list("zqxvwkjy"), 4)) for _ in range(5))
                                                 for _ in range(300)) + "\n")
    train_sentencepiece([tmp_path / "other.txt"], tmp_path / "other", vocab_size=40, num_threads=1)
    glue = tmp_path / "glue/SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\t0\nok\t1\nbad\t0\n")
    (glue / "dev.tsv").write_text("sentence\tlabel\nok\t1\n")
    (glue / "test.tsv").write_text("index\tsentence\n0\tok\n")

    def finetune(tokenizer: Path, out: str) -> int:
        return main(["finetune", "--task", "sst-2", "--data-dir", str(tmp_path / "glue"), "--model", str(model),
                     "--tokenizer", str(tokenizer), "--output", str(tmp_path / out), "--max-steps", "1",
                     "--no-progress", "--no-bf16"])
    assert finetune(model, "same") == 0 and "warning" not in capsys.readouterr().err
    assert finetune(tmp_path / "other", "other") == 0
    assert "--tokenizer differs from the tokenizer saved with" in capsys.readouterr().err
    train_sentencepiece([tmp_path / "other.txt"], tmp_path / "larger", vocab_size=80, num_threads=1)
    assert finetune(tmp_path / "larger", "larger") == 2
    assert "the tokenizer has 80 tokens but the model's vocabulary only 50" in error_line(capsys)


def test_a_command_says_on_stderr_before_it_calibrates(corpus, tmp_path, monkeypatch, capsys):
    """Every command shows the library's notes (logger "litebert") on stderr: pretrain says it is about to measure
    this CPU's fast paths, which takes up to a minute on a slow CPU, before the wait; a cached choice says nothing."""
    monkeypatch.setenv("LITEBERT_CALIBRATION_DIR", str(tmp_path / "calibration"))
    for run, measured in (("run", True), ("again", False)):
        assert pretrain(corpus / "data", tmp_path / run) == 0
        err = capsys.readouterr().err.splitlines()
        notes = [i for i, ln in enumerate(err) if ln.startswith("litebert: measuring this CPU's fast paths for train")]
        precision = next(i for i, ln in enumerate(err) if ln.startswith("precision: "))
        assert len(notes) == int(measured) and all(i < precision for i in notes), err
    assert logging.getLogger("litebert").handlers == []  # nothing left behind once the command returns


def test_only_rank_0_of_a_distributed_command_gives_its_notes(monkeypatch, capsys):
    log = logging.getLogger("litebert")
    for rank, shown in (("0", ["litebert: a note", "litebert: a warning"]), ("1", ["litebert: a warning"])):
        monkeypatch.setenv("RANK", rank)
        with notes_on_stderr():
            log.info("a note")
            log.warning("a warning")
        log.warning("after the command")  # to the caller's logging, not to this handler
        assert [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("litebert: ")] == shown
    assert log.level == logging.NOTSET
