"""Statistical test of the small-budget recipe: it escapes the unigram plateau where the old settings do not.

The fixture language is a Markov chain over 40 words in which each word fixes its successor 9 times in 10, so a
masked word is predictable from its left neighbour (a model that uses context can reach ~80%), while always
guessing the most frequent word scores ~1/20. Both runs see the same `litebert data create` directory, the
same tiny model and the same number of steps; only the recipe differs.
"""
from __future__ import annotations

import numpy as np
import pytest

from litebert import pretrain as P
from litebert.report import read_metrics
from litebert.optim import OptimConfig, ScheduleConfig

WORDS = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
STEPS = 300


@pytest.fixture(scope="module")
def markov_data(tmp_path_factory):
    from litebert.data import CreateOptions, create_pretraining_data
    from litebert.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("markov")
    rng = np.random.default_rng(0)
    successor = rng.permutation(len(WORDS))
    docs = []
    for _ in range(400):
        lines = []
        for _ in range(4):
            w, words = int(rng.integers(len(WORDS))), []
            for _ in range(int(rng.integers(6, 12))):
                words.append(WORDS[w])
                w = int(successor[w]) if rng.random() < 0.9 else int(rng.integers(len(WORDS)))
            lines.append(" ".join(words))
        docs.append("\n".join(lines))
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    train_sentencepiece([root / "corpus.txt"], root / "tok", vocab_size=80)
    create_pretraining_data([root / "corpus.txt"], root / "tok", root / "data",
                            CreateOptions(max_seq_length=32, max_predictions_per_seq=5, ngram=1, masking="dynamic",
                                          eval_fraction=0.2, seed=1), progress=False)
    return root


def run(root, out, optimizer: str, lr: float, mlm_bias_init: str) -> dict:
    """STEPS steps of a tiny post-LN ALBERT (the architecture of both runs); the last eval record."""
    config = P.PretrainConfig(
        output=str(out),
        model=P.ModelConfig("albert-tiny", dict(vocab_size=80, embedding_size=32, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=2, intermediate_size=64,
                                                max_position_embeddings=32), mlm_bias_init=mlm_bias_init),
        data=P.DataConfig(path=str(root / "data")),
        batch=P.BatchConfig(micro_batch=32, global_batch=32),
        optim=OptimConfig(name=optimizer, lr=lr),
        schedule=ScheduleConfig(warmup_steps=15, total_steps=STEPS),
        train=P.TrainConfig(max_steps=STEPS, bf16=False, device="cpu", log_every=50, eval_every=STEPS,
                            eval_batches=50, progress=False, seed=3),
        checkpoint=P.CheckpointConfig(save_every=10_000, keep_last=1))
    P.run(config)
    return [r for r in read_metrics(out / "metrics.jsonl") if r.get("split") == "eval"][-1]


def test_recipe_escapes_the_unigram_plateau_and_the_old_settings_do_not(markov_data, tmp_path):
    recipe = run(markov_data, tmp_path / "recipe", "adamw", 1e-3, "unigram")
    old = run(markov_data, tmp_path / "old", "lamb", 1e-3, "zero")  # the demo's settings before the sweep
    unigram = recipe["unigram_mlm_acc"]
    assert unigram == old["unigram_mlm_acc"] and unigram < 0.1  # same held-out predictions, a low baseline
    # ~400 held-out predictions: the binomial standard error is <= 2 points. Measured (torch 2.13, EPYC): recipe
    # 14.7%, old 2.0%, unigram 2.2%; the thresholds leave ~3 standard errors either side.
    assert recipe["mlm_acc"] > unigram + 0.08, recipe
    assert old["mlm_acc"] < unigram + 0.04, old
