"""benchmarks/bench_int8_accuracy.py on a tiny random classifier and a few movie-review-format lines: the
accuracies it reports are the ones its predictions give, onnxruntime fp32 predicts what PyTorch predicts,
and the agreement figures count the labels that really differ."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch's dynamo exporter needs it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_int8_accuracy as bench  # noqa: E402

from litebert import AlbertConfig, AlbertForSequenceClassification  # noqa: E402
from litebert.finetune.train import load_task_data  # noqa: E402
from litebert.tokenizer import AlbertTokenizer  # noqa: E402

WORDS = ["a", "the", "film", "movie", "plot", "cast", "is", "was", "great", "dull", "funny", "boring", "moving",
         "awful", "fine", "not", "very", "##ly", "##s", ".", ","]
REVIEWS_FILE = "movieReviewSnippets_GroundTruth.txt"


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """(model, tokenizer, {"dev": [...], "test": [...]}) from a WordPiece vocabulary and 120 rated snippets."""
    root = tmp_path_factory.mktemp("reviews")
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = AlbertTokenizer.from_pretrained(root)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(120):  # id, mean rating in [-4, 4] (|r| <= 0.5 is dropped as neutral), sentence
        words = rng.choice(WORDS[:-4], size=rng.integers(3, 14))
        lines.append(f"{i}_1\t{rng.uniform(-4, 4):.3f}\t{' '.join(words)} .")
    (root / REVIEWS_FILE).write_text("\n".join(lines) + "\n")
    data = load_task_data("movie-reviews", root)
    torch.manual_seed(0)
    model = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=tokenizer.vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64, num_labels=2)).eval()
    splits = {"dev": data.selection, "test": data.reported["test"]}
    with torch.no_grad():
        for p in model.parameters():  # no zero biases or unit LayerNorms: a test of what is really stored
            p.add_(0.3 * torch.randn_like(p))
        # Centre the margins on these sentences, so that the random model predicts both labels (on the mean,
        # not the median: no sentence sits on a tie that a rounding difference could flip).
        ids = [tokenizer.encode(e.text_a) for e in splits["dev"] + splits["test"]]
        logits = torch.cat([model(torch.tensor([i])).logits for i in ids])  # (N, 2)
        model.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).mean()
    return model, tokenizer, splits


@pytest.fixture(scope="module")
def results(tiny_setup, tmp_path_factory):
    model, tokenizer, splits = tiny_setup
    return bench.compare_runtimes(model, tokenizer, splits, max_seq_length=32, workdir=tmp_path_factory.mktemp("onnx"),
                                  batch_size=4, threads=1, repeats=1)


def test_reported_metrics_are_those_of_the_predictions(tiny_setup, results):
    _, _, splits = tiny_setup
    assert set(results) == {"torch fp32", "ort fp32", "ort int8", "torch int8"}
    for r in results.values():
        for split, examples in splits.items():
            scored = r.scored[split]
            labels = np.array([int(e.label == "positive") for e in examples])
            predicted = np.array([scored.predictions[e.guid] for e in examples])
            assert np.array_equal(predicted, r.logits[split].argmax(-1))
            assert scored.metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
        assert r.examples_per_s > 0


def test_ort_fp32_predicts_what_pytorch_predicts(tiny_setup, results):
    _, _, splits = tiny_setup
    torch_fp32, ort_fp32 = results["torch fp32"], results["ort fp32"]
    for split in splits:
        assert ort_fp32.scored[split].predictions == torch_fp32.scored[split].predictions
        assert np.abs(ort_fp32.logits[split] - torch_fp32.logits[split]).max() <= 1e-4
    both = np.concatenate([torch_fp32.logits[s].argmax(-1) for s in splits])
    assert 0 < both.mean() < 1, "the check above is empty when every prediction is the same label"


def test_agreement_counts_the_labels_that_differ(tiny_setup, results):
    _, _, splits = tiny_setup
    rows = {row["runtime"]: row for row in bench.summary_rows(results)}
    torch_fp32, int8 = results["torch fp32"], results["ort int8"]
    for split, examples in splits.items():
        same = [int8.scored[split].predictions[e.guid] == torch_fp32.scored[split].predictions[e.guid]
                for e in examples]
        assert rows["ort int8"]["vs_torch_fp32"][split]["agreement"] == pytest.approx(np.mean(same))
        assert rows["torch fp32"]["vs_torch_fp32"][split] == {"agreement": 1.0, "max_abs_logit_diff": 0.0}
        diff = rows["ort int8"]["vs_torch_fp32"][split]["max_abs_logit_diff"]
        assert 0 < diff == pytest.approx(np.abs(int8.logits[split] - torch_fp32.logits[split]).max())
    assert rows["ort int8"]["file_bytes"] < rows["ort fp32"]["file_bytes"]
    assert rows["ort int8"]["fp32_matrices"] == 0 < rows["ort fp32"]["fp32_matrices"]
