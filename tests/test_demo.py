"""The whole demo pipeline on a tiny local corpus, no network: every stage's output, numbers from the run."""
import json
import random
import re
from pathlib import Path

import pytest

from litebert.demo import DemoConfig, run_demo
from litebert.report import read_metrics

_SYLLABLES = "ka lo mi ne ru sa ti vo be da fe gu hi jo ly pe qu wa xe zo".split()
WORDS = sorted({a + b + c for a in _SYLLABLES[:9] for b in _SYLLABLES[5:14] for c in ("", "n", "s", "th")})
GOOD = "wonderful brilliant moving delightful superb charming".split()
BAD = "dull tedious awful clumsy boring lifeless".split()


def _corpus(path: Path, docs: int, rng: random.Random) -> Path:
    lines = []
    for _ in range(docs):
        for _ in range(rng.randint(4, 9)):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + ".")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _reviews(path: Path, n: int, rng: random.Random) -> Path:
    rows = []
    for i in range(1, n + 1):
        positive = rng.random() < 0.5
        rating = rng.uniform(1, 3.5) if positive else rng.uniform(-3.5, -1)
        if i % 25 == 0:
            rating = 0.2  # neutral: dropped and counted
        cue = rng.choice(GOOD if positive else BAD)
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        words.insert(rng.randrange(len(words)), cue)
        rows.append(f"{i}\t{rating:.3f}\tThe {' '.join(words)}.")
    path.write_text("\r\n".join(rows) + "\r\n")
    return path


def _plant(corpus: Path, reviews: Path, every: int) -> list[str]:
    """Copy every `every`-th labelled sentence (of any split) into the unlabelled corpus, as a source that
    happens to quote the task's text would; returns the planted sentences."""
    planted = [line.split("\t")[2] for line in reviews.read_text().splitlines()[::every]]
    corpus.write_text(corpus.read_text() + "\n\n" + "\n".join(planted) + "\n")
    return planted


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    rng = random.Random(0)
    corpus, reviews = _corpus(root / "corpus.txt", 120, rng), _reviews(root / "reviews.txt", 400, rng)
    _plant(corpus, reviews, every=7)
    with open(corpus, "ab") as f:  # one line in Latin-1: replaced, counted and reported, as `data create` does
        f.write("\n\nThe caf\u00e9 by the river.\n".encode("latin-1"))
    cfg = DemoConfig(output=root / "run", cache=root / "cache", corpus=corpus,
                     labelled=reviews, budget_s=None, total_budget_s=0, min_budget_s=10, vocab_size=120,
                     seq_length=64, dupe_factor=2, micro_batch=16, finetune_epochs=2, finetune_lrs=(3e-4,),
                     finetune_batch=16, finetune_max_length=24, seeds=(1, 2), minilm=False, workers=1,
                     preset="albert-tiny", model_overrides={"num_hidden_layers": 2}, device="cpu",
                     progress=False)
    messages = []
    result = run_demo(cfg, log=messages.append)
    # A total of 0 leaves nothing after the other stages: the minimum pretraining runs, and the log says why.
    assert any("pretraining 10 s anyway, so the run will be over that total" in m for m in messages)
    return cfg, result


def test_every_stage_leaves_its_output(demo_run):
    cfg, _ = demo_run
    stages = {p.name.rsplit("-", 1)[0]: p for p in (cfg.output / "stages").iterdir()}
    assert set(stages) == {"tokenizer", "data", "baselines", "pretrain", "finetune"}
    assert (stages["tokenizer"] / "spiece.model").exists()
    assert (stages["data"] / "examples" / "manifest.json").exists()
    final = stages["pretrain"] / "run" / "final"
    assert {"config.json", "model.safetensors", "spiece.model"} <= {p.name for p in final.iterdir()}
    for name in ("report.md", "report.json", "pretraining.png", "accuracy.png"):
        assert (cfg.output / name).stat().st_size > 0, name


def test_report_numbers_come_from_the_run_files(demo_run):
    cfg, result = demo_run
    stored = [arm for stage in ("finetune", "baselines")
              for arm in json.loads(next((cfg.output / "stages").glob(f"{stage}-*/result.json")).read_text())["arms"]]
    report = (cfg.output / "report.md").read_text()
    assert [a["arm"] for a in stored] == [a["arm"] for a in result["arms"]] == ["pretrained", "random-init",
                                                                                 "tfidf-logreg"]
    for arm, summary in zip(stored, result["arms"]):
        tests = [100 * r["test"]["accuracy"] for r in arm["runs"]]
        assert sorted(summary["test"]) == sorted(tests)
        assert f"{summary['median']:.1f}" in report
    pre_dir = next((cfg.output / "stages").glob("pretrain-*"))
    last_eval = [r for r in read_metrics(pre_dir / "run" / "metrics.jsonl") if r.get("split") == "eval"][-1]
    assert f"MLM accuracy {100 * last_eval['mlm_acc']:.1f}%" in report
    assert re.search(r"fixed hash split [\d,]+ / [\d,]+ / [\d,]+", report)
    corpus = result["facts"]["corpus"]
    assert corpus["undecodable_bytes"] == 1
    assert (f"{corpus['dropped_held_out']} line(s) equal to a dev/test sentence dropped; 1 byte sequence(s) that are "
            f"not UTF-8 replaced)") in report
    assert re.search(r"sequences of \d+ \(\d+% of the text's pieces cut to fit\)", report)
    assert "Pretraining budget: 0.2 min, what the run's 0-minute total left" in report
    assert "that was under the minimum, so the minimum ran" in report
    assert "Both ALBERT arms fine-tune with one protocol: lr 0.0003, 2 epochs, batch" in report  # no search here
    # The tiny task is learnable: fine-tuning beats the majority class (the pipeline really trains).
    assert max(a["median"] for a in result["arms"]) > 100 * result["majority"] + 10


def test_rerun_reuses_finished_stages(demo_run):
    cfg, first = demo_run
    messages = []
    second = run_demo(cfg, log=messages.append)
    assert [m for m in messages if "reusing" in m] and not [m for m in messages if "running" in m]
    assert [a["test"] for a in second["arms"]] == [a["test"] for a in first["arms"]]


def test_dev_and_test_text_never_reaches_the_tokenizer_or_the_shards(demo_run):
    from litebert.data.dataset import PretrainingDataset
    from litebert.demo import review_data, text_key
    from litebert.tokenizer import AlbertTokenizer

    cfg, result = demo_run
    data = review_data(cfg.labelled, cfg.output)
    held_out = [x.text_a for x in data.selection + data.reported["test"]]
    planted = {text_key(line.split("\t")[2]) for line in cfg.labelled.read_text().splitlines()[::7]}
    planted_held_out = [s for s in held_out if text_key(s) in planted]
    assert planted_held_out  # the fixture really quotes dev/test sentences in the unlabelled corpus
    assert result["facts"]["corpus"]["dropped_held_out"] == len(planted_held_out)
    # The tokenizer and `data create` read exactly the corpus directory: no held-out line is in it ...
    text_dir = cfg.output / "corpus" / "text"
    lines = {text_key(line) for f in text_dir.glob("*.txt") for line in f.read_text().splitlines()}
    assert not lines & {text_key(s) for s in held_out}
    # ... and no held-out sentence's pieces occur in the shards (train or eval), in order.
    data_dir = next((cfg.output / "stages").glob("data-*")) / "examples"
    tokenizer = AlbertTokenizer.from_pretrained(next((cfg.output / "stages").glob("tokenizer-*")))
    stream = " ".join(" ".join(map(str, shard.arrays["input_ids"]))
                      for split in ("train", "eval") for shard in PretrainingDataset(data_dir, split).shards)
    for sentence in held_out:
        ids = tokenizer.encode(sentence, add_special_tokens=False)
        assert f" {' '.join(map(str, ids))} " not in f" {stream} ", sentence
    # Train sentences are allowed (task-adaptive pretraining), and the same search finds them: the check works.
    found = [x.text_a for x in data.train
             if f" {' '.join(map(str, tokenizer.encode(x.text_a, add_special_tokens=False)))} " in f" {stream} "]
    assert len(found) > len(data.train) / 2


def test_a_corpus_without_blank_lines_is_cut_so_that_documents_can_be_held_out(tmp_path):
    """A --corpus of one sentence per line and no blank line is one document: the 2% held-out split, which draws
    whole documents, held out nothing and the report read "MLM accuracy nan%". Long documents are now cut into
    20-line ones (every line kept, in order); short ones and the fetched sources are left alone."""
    from litebert.demo import write_pretraining_text
    from litebert.report import _held_out_sentence

    lines = [f"Sentence number {i} of the long file." for i in range(450)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (corpus / "short.txt").write_text("One short document.\nOf two lines.\n", encoding="utf-8")
    text_dir, stats = write_pretraining_text({"corpus": corpus}, ["a train sentence"], [], tmp_path / "out")
    assert stats["long_documents_cut"] == 1
    documents = [d.splitlines() for d in (text_dir / "corpus.txt").read_text(encoding="utf-8").strip().split("\n\n")]
    assert [len(d) for d in documents] == [20] * 22 + [10, 2]
    assert [line for d in documents[:23] for line in d] == lines
    assert _held_out_sentence({}, None) == "No held-out evaluation ran: the data held out no document."
    assert _held_out_sentence({"mlm_acc": 0.171, "sop_acc": 0.784, "loss": 6.4421}, 0.054) == (
        "Last held-out evaluation: MLM accuracy 17.1% (always guessing the most frequent piece: 5.4%), SOP accuracy "
        "78.4%, loss 6.442.")


def test_pretraining_budget_is_what_the_total_leaves():
    from litebert.demo import pretraining_budget

    messages = []
    cfg = DemoConfig(total_budget_s=1140, min_budget_s=120)
    # 19 min - 6 min of stages already run - the pretrained arm's 4 min (timed as the random-init arm's) = 9 min
    assert pretraining_budget(cfg, spent_s=360, arm_s=240, log=messages.append) == 540
    assert not messages
    assert pretraining_budget(DemoConfig(budget_s=300), 360, 240, messages.append) == 300  # given: kept
    assert pretraining_budget(cfg, 900, 200, messages.append) == 120  # 40 s left: the minimum, said
    assert messages == ["[pretrain] this machine leaves 40 s of the 19-minute total after fine-tuning (900 s so "
                        "far, about 200 s to come); pretraining 120 s anyway, so the run will be over that total"]


def test_learning_rate_search_runs_the_other_seeds_only_at_the_chosen_rate(monkeypatch, tmp_path):
    """Every rate runs the search seeds; the best median dev rate alone runs the rest; test plays no part."""
    from types import SimpleNamespace

    import litebert.finetune.train as train
    from litebert.demo import finetune_arm

    dev = {1e-3: 0.70, 3e-4: 0.80}  # dev prefers 3e-4 ...
    test = {1e-3: 0.95, 3e-4: 0.60}  # ... test would prefer 1e-3: it must not be looked at
    calls = []

    def fake_finetune(task, source, tokenizer, data, config, seed, run_dir=None):
        lr = config.learning_rate
        calls.append((lr, seed))
        return SimpleNamespace(selection={"accuracy": dev[lr] + seed / 1000}, reported={"test": {"accuracy": test[lr]}},
                               best_step=1, steps=1, train_seconds=0.0, train_examples_per_s=0.0)

    monkeypatch.setattr(train, "finetune", fake_finetune)
    cfg = DemoConfig(seeds=(1, 2, 3), finetune_search_seeds=1, progress=False, device="cpu")
    arm = finetune_arm(cfg, "random-init", None, None, None, False, tmp_path, (1e-3, 3e-4), 1.0)
    assert calls == [(1e-3, 1), (3e-4, 1), (3e-4, 2), (3e-4, 3)]
    assert arm["lr"] == 3e-4 and [r["seed"] for r in arm["runs"]] == [1, 2, 3] and arm["search_seeds"] == [1]
    calls.clear()
    arm = finetune_arm(DemoConfig(seeds=(1, 2), finetune_search_seeds=2), "x", None, None, None, False, tmp_path,
                       (1e-3, 3e-4), 1.0)
    assert calls == [(1e-3, 1), (1e-3, 2), (3e-4, 1), (3e-4, 2)] and arm["lr"] == 3e-4


@pytest.mark.parametrize("field,value,message", [
    ("budget_s", 0.0, "budget_s must be positive"),
    ("min_budget_s", 0.0, "min_budget_s must be positive"),
    ("total_budget_s", -1.0, "total_budget_s not negative"),
    ("finetune_search_seeds", 0, "finetune_search_seeds must be at least 1"),
])
def test_budget_and_search_settings_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        DemoConfig(**{field: value})
