"""bench_train's analytic FLOP counts, the numerators of every MFU the benchmarks report, against torch's own count
of the matmuls litebert's forward runs (torch.utils.flop_counter). The count credits useful work only; the one
thing litebert computes beyond it is its last layer's fused QKV projection, whose queries it makes at every
position although the heads read only `rows` of them (pretraining: the masked positions and [CLS];
classification: [CLS])."""
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_train  # noqa: E402

from litebert import calibrate  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402

B, T = 2, 64


@pytest.mark.parametrize("head, predictions, rows", [
    ("pretraining", bench_train.PREDICTIONS, bench_train.PREDICTIONS + 1),
    ("pretraining", bench_train.predictions_for("demo"), bench_train.predictions_for("demo") + 1),
    ("classification", 0, 1)])
@pytest.mark.parametrize("embedding_size", [128, 312])  # E != H: the embedding projection counts; E == H: none
def test_a_steps_analytic_flops_are_the_matmuls_litebert_runs(head, predictions, rows, embedding_size):
    config = AlbertConfig.preset("albert-tiny", embedding_size=embedding_size)
    spec = bench_train.HEADS[head]
    torch.manual_seed(0)
    model = spec.ours(config).train()
    batch = bench_train.make_batch(config, B, T, predictions=predictions or bench_train.PREDICTIONS)
    # bf16 attention that will be differentiated runs as batched matmuls on this path (SDPA's CPU kernel is
    # not counted by the flop counter), so every matmul of the forward is counted.
    with calibrate.fast_paths(attention_backward="kept"), torch.autocast("cpu", dtype=torch.bfloat16), \
            FlopCounterMode(display=False) as counter:
        spec.ours_step(model, batch)
    H = config.hidden_size
    unread_queries = 2 * B * (T - rows) * H * H
    expected = spec.flops(config, B, T, predictions) / 3 + unread_queries
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-3)
