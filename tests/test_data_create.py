"""`litebert data create` end to end, with a tiny SentencePiece model trained on generated text."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from litebert.cli import main
from litebert.data import create as create_module
from litebert.data.create import CreateOptions, create_pretraining_data
from litebert.data.dataset import PretrainingDataset

SYLLABLES = ["ka", "lo", "mi", "ner", "so", "ta", "vel", "ri", "dun", "pe", "gor", "al", "ith", "ou", "ben", "cha"]


def sentence(rng: np.random.Generator) -> str:
    words = ["".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(4, 14)))]
    return " ".join(words).capitalize() + "."


def write_corpus(path: Path, documents: int, seed: int) -> Path:
    """Documents of 1..8 generated sentences, one per line, blank lines between documents."""
    rng = np.random.default_rng(seed)
    text = "\n\n".join("\n".join(sentence(rng) for _ in range(int(rng.integers(1, 9)))) for _ in range(documents))
    path.write_text(text + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def corpus_and_tokenizer(tmp_path_factory):
    """(corpus file of 400 documents, tokenizer directory with a 300-piece spiece.model)."""
    from litebert.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("data_create")
    corpus = write_corpus(root / "corpus.txt", 400, seed=0)
    train_sentencepiece([corpus], root / "tokenizer", vocab_size=300, num_threads=1)
    return corpus, root / "tokenizer"


def small_options(**overrides) -> CreateOptions:
    settings = dict(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, chunk_documents=32, shard_size=500)
    settings.update(overrides)
    return CreateOptions(**settings)


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.bin"))}


def test_cli_writes_manifest_and_shards(corpus_and_tokenizer, tmp_path, capsys):
    corpus, tokenizer = corpus_and_tokenizer
    out = tmp_path / "data"
    rc = main(["data", "create", "--input", str(corpus), "--tokenizer", str(tokenizer), "--output", str(out),
               "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "2",
               "--shard-size", "300", "--eval-fraction", "0.2", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "eval:" in printed and "skipped: 0 empty documents" in printed
    assert "text pieces" in printed and "cut to fit max_seq_length" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    train, evaluation = manifest["splits"]["train"], manifest["splits"]["eval"]
    assert train["documents"] + evaluation["documents"] == 400
    assert 0.1 < evaluation["documents"] / 400 < 0.3
    assert len(train["shards"]) == -(-train["examples"] // 300)
    assert manifest["tokenizer"]["vocab_size"] == 300 and manifest["settings"]["dupe_factor"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json"] + [s["file"] for split in manifest["splits"].values() for s in split["shards"]])


def test_the_manifest_names_the_tokenizer_from_any_working_directory(corpus_and_tokenizer, tmp_path, monkeypatch):
    """A tokenizer given as a relative path is recorded absolute: pretraining, run from elsewhere, finds it to
    put beside its final model."""
    corpus, tokenizer = corpus_and_tokenizer
    monkeypatch.chdir(tokenizer.parent)
    assert main(["data", "create", "--input", str(corpus), "--tokenizer", tokenizer.name, "--output",
                 str(tmp_path / "data"), "--max-seq-length", "64", "--no-progress"]) == 0
    recorded = Path(json.loads((tmp_path / "data/manifest.json").read_text())["tokenizer"]["directory"])
    assert recorded.is_absolute() and recorded == tokenizer.resolve()


def test_long_lines_are_split_not_lost_and_truncation_is_counted(corpus_and_tokenizer, tmp_path):
    """A document per line (20-60 sentences each): split at word starts, most of its text reaches the
    examples; with the official truncation most of it is cut. Either way every piece is accounted for.
    (What splitting still loses is the official chunking's: a chunk closes once it reaches its target, and
    the overshoot of its last segment is truncated: 17.5% here, at 64 pieces an example.)"""
    _, tokenizer = corpus_and_tokenizer
    rng = np.random.default_rng(4)
    corpus = tmp_path / "documents.txt"
    corpus.write_text("\n\n".join(" ".join(sentence(rng) for _ in range(int(rng.integers(20, 60))))
                                   for _ in range(30)) + "\n", encoding="utf-8")
    shares = {}
    for split in (True, False):
        manifest = create_pretraining_data([corpus], tokenizer, tmp_path / f"data-{split}",
                                           small_options(dupe_factor=1, split_long_lines=split), progress=False)
        train, skipped, text = manifest["splits"]["train"], manifest["skipped"], manifest["input"]["text_pieces"]
        # [CLS] A [SEP] B [SEP]: 3 specials an example; a one-piece chunk makes none
        assert train["tokens"] - 3 * train["examples"] + skipped["truncated_pieces"] + skipped["short_chunks"] == text
        assert manifest["input"]["split_lines"] == (30 if split else 0)
        shares[split] = skipped["truncated_pieces"] / text
    assert shares[True] < 0.25 and shares[False] > 0.7, shares


def test_same_seed_same_bytes_whatever_the_workers(corpus_and_tokenizer, tmp_path):
    corpus, tokenizer = corpus_and_tokenizer
    one = create_pretraining_data([corpus], tokenizer, tmp_path / "one", small_options(workers=1), progress=False)
    again = create_pretraining_data([corpus], tokenizer, tmp_path / "again", small_options(workers=1), progress=False)
    two = create_pretraining_data([corpus], tokenizer, tmp_path / "two", small_options(workers=2), progress=False)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "again") == shard_bytes(tmp_path / "two")
    assert one["splits"] == two["splits"] == again["splits"]
    other = create_pretraining_data([corpus], tokenizer, tmp_path / "other", small_options(seed=7), progress=False)
    assert other["splits"]["train"]["shards"][0]["sha256"] != one["splits"]["train"]["shards"][0]["sha256"]


def source_runs(corpus: Path, tokenizer) -> tuple[str, list[int]]:
    """The corpus as one string of ' id id ... |' per document, and the ids of the first pieces of lines."""
    documents = corpus.read_text(encoding="utf-8").strip().split("\n\n")
    text, starts = "", []
    for document in documents:
        ids = []
        for line in document.splitlines():
            starts.append(len(ids))
            ids += tokenizer.encode_batch_ids([line])[0]
        text += " " + " ".join(map(str, ids)) + " |"
    return text, starts


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_examples_decode_to_consecutive_source_text(corpus_and_tokenizer, tmp_path, masking):
    from litebert.tokenizer import AlbertTokenizer

    corpus, tokenizer_dir = corpus_and_tokenizer
    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    create_pretraining_data([corpus], tokenizer_dir, tmp_path, small_options(masking=masking, max_seq_length=128),
                            progress=False)
    dataset = PretrainingDataset(tmp_path, tokenizer=tokenizer, shuffle=False)
    source, _ = source_runs(corpus, tokenizer)
    labels = []
    for index in range(dataset.num_examples):
        example = dataset.example(index)
        ids = example.input_ids.copy()
        ids[example.masked_lm_positions] = example.masked_lm_ids  # undo the masks
        a_length = int((example.token_type_ids == 0).sum())
        assert ids[0] == tokenizer.cls_token_id and ids[a_length - 1] == ids[-1] == tokenizer.sep_token_id
        assert set(example.token_type_ids[a_length:].tolist()) == {1}
        a, b = ids[1:a_length - 1], ids[a_length:-1]
        if example.sentence_order_label == 1:
            a, b = b, a
        labels.append(example.sentence_order_label)
        untruncated = len(ids) < 128
        if untruncated:  # A then B is one run of consecutive pieces of one document
            assert " " + " ".join(map(str, np.concatenate([a, b]))) + " " in source
        else:
            assert " " + " ".join(map(str, a)) + " " in source and " " + " ".join(map(str, b)) + " " in source
    assert abs(np.mean(labels) - 0.5) < 0.1
    decoded = tokenizer.decode(dataset.example(0).input_ids[1:4].tolist())
    assert decoded and decoded.replace(" ", "") in corpus.read_text().lower().replace(" ", "")


def test_a_held_out_split_that_came_out_empty_is_explained(corpus_and_tokenizer, tmp_path, capsys):
    """The eval split draws whole documents: files of one sentence per line without blank lines are one document
    each, so --eval-fraction can hold out nothing. data create says why, and so does pretraining (it used to
    tell the user to pass the --eval-fraction they had passed)."""
    corpus, tokenizer = corpus_and_tokenizer
    inputs = tmp_path / "in"
    inputs.mkdir()
    lines = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    for n in range(3):
        (inputs / f"{n}.txt").write_text("\n".join(lines[n::3]) + "\n", encoding="utf-8")
    args = ["data", "create", "--input", str(inputs), "--tokenizer", str(tokenizer), "--max-seq-length", "64",
            "--max-predictions-per-seq", "10", "--dupe-factor", "1", "--no-progress"]
    assert main([*args, "--output", str(tmp_path / "data"), "--eval-fraction", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "warning: --eval-fraction 0.05 held out none of the 3 documents: the split takes whole documents; a blank " \
           "line ends one" in printed
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["splits"]["eval"]["examples"] == 0 and manifest["splits"]["train"]["documents"] == 3
    assert main(["pretrain", "--preset", "albert-tiny", "--data", str(tmp_path / "data"), "--output",
                 str(tmp_path / "run"), "--max-steps", "1", "--global-batch", "2", "--batch-size", "2",
                 "--model.overrides", "num_hidden_layers=1", "--no-progress", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "evaluation is off (--eval-fraction 0.05 held out none of the 3 documents" in err
    # without --eval-fraction there is nothing to explain
    assert main([*args, "--output", str(tmp_path / "plain")]) == 0
    assert "warning" not in capsys.readouterr().out


def test_undecodable_bytes_and_empty_documents_are_counted(corpus_and_tokenizer, tmp_path):
    _, tokenizer = corpus_and_tokenizer
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_bytes(b"Kalo miner so ta.\nVel \xff\xfe ri dun.\n\n\n\nPe gor al ith.\nOu ben cha ka.\n")
    (inputs / "b.txt").write_bytes(b"\n\n")  # a file without text: an empty document
    manifest = create_pretraining_data([inputs], tokenizer, tmp_path / "out", small_options(), progress=False)
    assert manifest["skipped"]["undecodable_bytes"] == 2
    assert manifest["skipped"]["empty_documents"] == 1
    assert manifest["splits"]["train"]["documents"] == 2


def test_bad_inputs_are_named(corpus_and_tokenizer, tmp_path, capsys):
    corpus, tokenizer = corpus_and_tokenizer
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        create_pretraining_data([missing], tokenizer, tmp_path / "o", small_options(), progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        create_pretraining_data([empty], tokenizer, tmp_path / "o", small_options(), progress=False)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="emptydir holds no files"):
        create_pretraining_data([tmp_path / "emptydir"], tokenizer, tmp_path / "o", small_options(), progress=False)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    with pytest.raises(ValueError, match="no document with text"):
        create_pretraining_data([blank], tokenizer, tmp_path / "o", small_options(), progress=False)
    assert not (tmp_path / "o" / "manifest.json").exists()
    rc = main(["data", "create", "--input", str(missing), "--tokenizer", str(tokenizer), "--output", str(tmp_path / "o")])
    assert rc == 2 and "nope.txt" in capsys.readouterr().err


def test_other_tokenizer_on_existing_output_is_refused(corpus_and_tokenizer, tmp_path):
    from litebert.tokenizer import train_sentencepiece

    corpus, tokenizer = corpus_and_tokenizer
    create_pretraining_data([corpus], tokenizer, tmp_path / "out", small_options(), progress=False)
    train_sentencepiece([corpus], tmp_path / "other", vocab_size=250, num_threads=1)
    with pytest.raises(ValueError, match="another tokenizer"):
        create_pretraining_data([corpus], tmp_path / "other", tmp_path / "out", small_options(), progress=False)
    # The same tokenizer may overwrite; shards the new data does not list are removed.
    create_pretraining_data([corpus], tokenizer, tmp_path / "out", small_options(shard_size=100_000), progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "train-00000.bin"]


def test_failure_leaves_previous_output_untouched(corpus_and_tokenizer, tmp_path, monkeypatch):
    corpus, tokenizer = corpus_and_tokenizer
    out = tmp_path / "out"
    create_pretraining_data([corpus], tokenizer, out, small_options(), progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = {"n": 0}
    real = create_module.process_chunk

    def failing(chunk, ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(chunk, ctx)

    monkeypatch.setattr(create_module, "process_chunk", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        create_pretraining_data([corpus], tokenizer, out, small_options(seed=99), progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp dir, no half shard


def test_corrupt_or_missing_shard_is_named(corpus_and_tokenizer, tmp_path):
    corpus, tokenizer = corpus_and_tokenizer
    create_pretraining_data([corpus], tokenizer, tmp_path, small_options(), progress=False)
    shard = tmp_path / "train-00001.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="train-00001.bin is corrupt: its sha256"):
        PretrainingDataset(tmp_path)
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(ValueError, match="train-00001.bin is corrupt: .* bytes"):
        PretrainingDataset(tmp_path, verify=False)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="train-00001.bin"):
        PretrainingDataset(tmp_path)
    shutil.rmtree(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        PretrainingDataset(tmp_path)


@pytest.mark.parametrize("task", ["nsp", "none"])
def test_other_sentence_tasks(corpus_and_tokenizer, tmp_path, task):
    corpus, tokenizer = corpus_and_tokenizer
    create_pretraining_data([corpus], tokenizer, tmp_path, small_options(sentence_task=task), progress=False)
    dataset = PretrainingDataset(tmp_path)
    examples = [dataset.example(i) for i in range(dataset.num_examples)]
    labels = np.array([e.sentence_order_label for e in examples])
    if task == "none":
        assert set(labels.tolist()) == {-100}
        assert all(not e.token_type_ids.any() for e in examples)
        assert all(np.isin(e.input_ids, [2, 3]).sum() == 2 for e in examples)  # [CLS] ... [SEP] only
    else:
        assert abs(labels.mean() - 0.5) < 0.1
        assert all(e.token_type_ids[-1] == 1 for e in examples)


def test_whole_word_masking_in_a_script_without_spaces(tmp_path):
    """Chinese-like text (no spaces): each piece is a word, so masking takes n-grams of pieces as in English.
    With only '▁' as a word start a whole sentence was one word: 99% of examples masked one contiguous run
    (a sentence) and 6.6% had no prediction at all (measured on this corpus before the fix)."""
    from litebert.tokenizer import train_sentencepiece
    rng = np.random.default_rng(0)
    characters = [chr(c) for c in range(0x4E00, 0x4E00 + 300)]
    documents = ["\n".join("".join(rng.choice(characters, int(rng.integers(8, 30)))) + "。"
                           for _ in range(int(rng.integers(2, 8)))) for _ in range(300)]
    (tmp_path / "zh.txt").write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    train_sentencepiece([tmp_path / "zh.txt"], tmp_path / "tok", vocab_size=400, num_threads=1)
    create_pretraining_data([tmp_path / "zh.txt"], tmp_path / "tok", tmp_path / "data",
                            small_options(max_predictions_per_seq=20), progress=False)
    dataset = PretrainingDataset(tmp_path / "data", "train")
    examples = [dataset.example(i) for i in range(len(dataset))]
    predictions = np.array([len(e.masked_lm_positions) for e in examples])
    targets = np.array([round(0.15 * len(e.input_ids)) for e in examples])
    assert predictions.min() > 0 and abs(predictions.mean() / targets.mean() - 1) < 0.1
    one_run = np.mean([np.all(np.diff(e.masked_lm_positions) == 1) for e in examples])
    assert one_run < 0.2, one_run


def test_ctrl_c_ends_in_one_line_and_leaves_nothing(corpus_and_tokenizer, tmp_path, monkeypatch, capsys):
    """Ctrl-C in a command without a clean stop of its own: exit status 130 and one line, not a traceback; data
    create leaves no output directory behind."""
    corpus, tokenizer = corpus_and_tokenizer
    calls = {"n": 0}
    real = create_module.process_chunk

    def interrupted(chunk, ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(chunk, ctx)

    monkeypatch.setattr(create_module, "process_chunk", interrupted)
    out = tmp_path / "data"
    assert main(["data", "create", "--input", str(corpus), "--tokenizer", str(tokenizer), "--output", str(out),
                 "--max-seq-length", "64", "--workers", "1", "--chunk-documents", "32", "--no-progress"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["litebert data: interrupted"]
    assert calls["n"] == 3 and not out.exists()
