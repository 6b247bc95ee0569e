"""Fine-tuning must learn: for each task family a tiny ALBERT from random init, trained through the CLI on the
synthetic tasks of tests/learnable_tasks.py (official file formats, disjoint train/dev/test, text-dependent
labels), must clearly beat the majority / chance baseline on the reported split within seconds.

The end-to-end tests on the copied dev fixtures (test_finetune_e2e.py) check formats and files; these check
that the loop, heads, encoders and decoders together actually fit a task.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learnable_tasks import all_text, write_all
from litebert.cli import main
from litebert.config import AlbertConfig
from litebert.model import AlbertForPreTraining
from litebert.pipelines import pipeline
from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

# (task, data folder, reported split, metric, score to beat, what that baseline is, epochs, model, lr)
# RACE needs the option matched to the article's word (identity across segments): the 2-layer H=64 model
# stays near 0.4 on it (measured), the H=128 one reaches 0.56 in 10 epochs.
CASES = [
    ("sst-2", "glue", "dev", "accuracy", 0.80, "majority ~0.5", 8, "small", "2e-3"),
    ("rte", "glue", "dev", "accuracy", 0.70, "majority ~0.5", 8, "small", "2e-3"),
    ("sts-b", "glue", "dev", "pearson", 0.60, "chance 0", 8, "small", "2e-3"),
    ("squad1.1", "squad", "dev-v1.1", "f1", 60.0, "a random word: F1 < 10", 8, "small", "2e-3"),
    ("squad2.0", "squad", "dev-v2.0", "f1", 60.0, "always abstaining: ~40 (the unanswerable share)", 8, "small",
     "2e-3"),
    ("race-middle", "race", "test", "accuracy", 0.45, "chance 0.25 (80 questions: sd 0.05)", 10, "wide", "1e-3"),
    ("conll2003-ner", "conll", "test", "f1", 0.60, "all O: 0", 20, "small", "2e-3"),
    ("text-classification", "table", "test", "accuracy", 0.80, "majority ~0.33", 8, "small", "2e-3"),
    ("multi-label-classification", "multilabel", "test", "subset_accuracy", 0.45,
     "always no label: ~0.25 (0-3 topics of 3, 80 examples: sd 0.05; measured 0.61)", 10, "small", "2e-3"),
]
MODELS = {"small": dict(embedding_size=32, hidden_size=64, num_attention_heads=2, intermediate_size=128),
          "wide": dict(embedding_size=64, hidden_size=128, num_attention_heads=4, intermediate_size=256)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = write_all(tmp_path_factory.mktemp("learnable"))
    (root / "train_text.txt").write_text("\n".join(all_text(root)), encoding="utf-8")
    train_sentencepiece([root / "train_text.txt"], root / "tok", vocab_size=150, num_threads=2)
    vocab = AlbertTokenizer.from_pretrained(root / "tok").vocab_size
    for name, shape in MODELS.items():
        torch.manual_seed(0)
        AlbertForPreTraining(AlbertConfig(vocab_size=vocab, num_hidden_layers=2, max_position_embeddings=128,
                                          **shape)).save_pretrained(root / name)
    return root


@pytest.mark.parametrize("task,folder,split,metric,bar,baseline,epochs,model,lr", CASES, ids=[c[0] for c in CASES])
def test_a_tiny_model_learns_the_task(setup, tmp_path, capsys, task, folder, split, metric, bar, baseline, epochs,
                                      model, lr):
    out = tmp_path / "run"
    assert main(["finetune", "--task", task, "--data-dir", str(setup / folder), "--model", str(setup / model),
                 "--tokenizer", str(setup / "tok"), "--output", str(out), "--optimizer", "adamw", "--lr", lr,
                 "--batch-size", "16", "--epochs", str(epochs), "--max-seq-length", "64", "--eval-every", "30",
                 "--max-query-length", "8", "--doc-stride", "32", "--no-progress", "--no-bf16"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    score = summary["seeds"]["1"]["reported"][split][metric]
    print(f"{task}: {metric} {score:.3f} on {split} (baseline: {baseline}; bar {bar})")
    assert score >= bar, (task, metric, score)
    if task == "conll2003-ner":  # predictions come back in CoNLL layout and score the same offline
        written = out / "seed-1/predictions/test.txt"
        lines = written.read_text().splitlines()
        assert lines[0].count(" ") == 2  # word gold predicted
        capsys.readouterr()
        assert main(["evaluate", "--task", task, "--data-file", str(setup / "conll/test.txt"), "--predictions",
                     str(written)]) == 0
        assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(score)
        # the saved model tags raw text as its evaluation did: the tag pipeline on the sentences joined by spaces
        sentences = [[row.split() for row in block.splitlines()] for block in written.read_text().split("\n\n")
                     if block.strip()]
        tagger = pipeline("token-classification", out / "seed-1/model", device="cpu", bf16=False)
        found = tagger([" ".join(row[0] for row in rows) for rows in sentences], aggregation="none")
        agree = [{w["index"]: w["entity"] for w in words}.get(i, "O") == row[2]
                 for rows, words in zip(sentences, found) for i, row in enumerate(rows)]
        assert len(found) == len(sentences) and np.mean(agree) >= 0.98, np.mean(agree)
        assert main(["plot", str(out)]) == 0  # fine-tuning curves: loss, lr, grad norm, selection metrics
        assert (out / "plots/finetune.png").stat().st_size > 10_000
    if task in ("text-classification", "multi-label-classification"):  # raw text gets the training file's labels
        rows = [line.split("\t") for line in (setup / folder / "test.tsv").read_text().splitlines()[1:]]
        predicted = [line.split("\t")[1] for line in (out / "seed-1/predictions/test.tsv").read_text().splitlines()[1:]]
        found = pipeline("text-classification", out / "seed-1/model", device="cpu", bf16=False)([t for t, _ in rows])
        labels_of = (lambda r: r["label"]) if task == "text-classification" else \
            (lambda r: ",".join(sorted(x["label"] for x in r)))
        assert [labels_of(r) for r in found] == predicted
        assert np.mean([p == label for p, (_, label) in zip(predicted, rows)]) == pytest.approx(score)
        capsys.readouterr()
        assert main(["evaluate", "--model", str(out / "seed-1/model"), "--data-dir", str(setup / folder),
                     "--no-bf16"]) == 0
        assert json.loads(capsys.readouterr().out)["test"][metric] == pytest.approx(score)
        capsys.readouterr()
        assert main(["evaluate", "--task", task, "--data-file", str(setup / folder / "test.tsv"), "--predictions",
                     str(out / "seed-1/predictions/test.tsv")]) == 0
        assert json.loads(capsys.readouterr().out)[metric] == pytest.approx(score)


def test_accumulation_gives_the_global_batch_and_the_best_state_is_on_disk(setup, tmp_path):
    """2 micro-batches of 4 per step train like batches of 8 (same examples: fixed padding draws them from one
    permutation; fp32, no dropout); the best state by the selection metric is a checkpoint on disk."""
    from litebert import checkpoint as ckpt
    from litebert.finetune.train import FinetuneConfig, finetune, load_task_data

    tokenizer = AlbertTokenizer.from_pretrained(setup / "tok")
    data = load_task_data("sst-2", setup / "glue")
    data.train = data.train[:96]  # a multiple of 8: epochs end on a step boundary for both
    runs = {}
    for accumulate in (1, 2):
        config = FinetuneConfig(optimizer="adamw", learning_rate=2e-3, batch_size=8, accumulate=accumulate, bf16=False,
                                max_steps=24, warmup_steps=2, eval_every=8, padding="fixed", max_seq_length=32,
                                log_every=1, model_overrides={"hidden_dropout_prob": 0.0,
                                                              "attention_probs_dropout_prob": 0.0,
                                                              "classifier_dropout_prob": 0.0})
        log = tmp_path / f"acc{accumulate}" / "log.jsonl"
        runs[accumulate] = (finetune("sst-2", setup / "small", tokenizer, data, config, seed=3, run_dir=log.parent),
                            log)
    losses = {a: [json.loads(x)["loss"] for x in log.read_text().splitlines() if '"loss"' in x]
              for a, (_, log) in runs.items()}
    assert len(losses[1]) == len(losses[2]) == 24
    assert losses[2] == pytest.approx(losses[1], abs=2e-5)
    one, two = runs[1][0], runs[2][0]
    for name, tensor in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[name], tensor, atol=1e-4, rtol=1e-4)
    saved = ckpt.list_checkpoints(runs[2][1].parent / "checkpoints")
    assert [p.name for p in saved] == [f"step-{two.best_step:07d}"]  # only the best is kept
    best = ckpt.load_checkpoint(saved[0])
    assert best.state["selection"] == two.selection
    for name, tensor in two.model.state_dict().items():  # the reported model is the saved best state
        assert torch.equal(best.model[name], tensor), name


def test_a_broken_model_skips_non_finite_updates_then_gives_up(setup, tmp_path):
    """The shared step's guard (litebert.step): a learning rate of 1e30 poisons the weights on the first update;
    every later step is skipped and logged, and the run stops with a clear error after max_consecutive_skips."""
    from litebert.finetune.train import FinetuneConfig, finetune, load_task_data

    tokenizer = AlbertTokenizer.from_pretrained(setup / "tok")
    data = load_task_data("sst-2", setup / "glue")
    config = FinetuneConfig(optimizer="adamw", learning_rate=1e30, batch_size=8, max_steps=20,
                            warmup_steps=0, max_seq_length=32, max_consecutive_skips=3, progress=False)
    with pytest.raises(RuntimeError, match="4 steps in a row had a non-finite loss or gradient \\(at step 5\\)"):
        finetune("sst-2", setup / "small", tokenizer, data, config, seed=1, run_dir=tmp_path / "run")
    events = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "skip"] == [2, 3, 4]
