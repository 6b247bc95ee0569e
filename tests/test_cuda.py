"""The CUDA path: the model, pretraining, torchrun, fine-tuning and the pipelines on a GPU.

Skipped where no GPU is present, as in CI; `benchmarks/gpu_check.sh` runs it on a lent GPU machine.
`LITEBERT_TEST_DEVICE=cpu` runs the same checks on the CPU, to rehearse this file without a GPU (the
GPU-only assertions, which kernel SDPA takes, are skipped there).

Run as a script (`torchrun ... tests/test_cuda.py MODE OUTPUT`), this file is the torchrun worker.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_finetune_learns import setup as learnable  # noqa: E402,F401  (the fixture: tasks, tokenizer, models)
from test_pretrain import Killed, SyntheticData, records, tiny_config, train  # noqa: E402

from litebert import checkpoint as ckpt  # noqa: E402
from litebert import distributed as D  # noqa: E402
from litebert import pretrain as P  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402

DEVICE = os.environ.get("LITEBERT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no CUDA device (LITEBERT_TEST_DEVICE=cpu rehearses)")
ON_GPU = DEVICE is not None and DEVICE.startswith("cuda")
ROOT = Path(__file__).resolve().parents[1]
# Wide enough for the GPU's tensor-core tiles to matter, small enough to run in seconds on a CPU.
SMALL = dict(vocab_size=512, embedding_size=64, hidden_size=128, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=512, max_position_embeddings=128, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 stays fp32 on the GPU: no TF32 in matmuls (their 10-bit mantissa would break the 1e-4 parity)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def padded_batch(config: AlbertConfig, batch: int = 4, length: int = 100, seed: int = 0) -> dict:
    """Token ids with the second half of the rows padded to various lengths, 6 masked positions per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(batch // 2, batch):
        mask[row, length // (row + 1):] = 0
    positions = torch.stack([torch.randperm(length // batch - 1, generator=g)[:6] + 1 for _ in range(batch)])
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                masked_lm_positions=positions.sort(-1).values, labels=torch.gather(ids, 1, positions.sort(-1).values),
                sentence_order_label=torch.randint(0, 2, (batch,), generator=g))


def forward_backward(model, batch: dict, device: str, bf16: bool = False) -> tuple[torch.Tensor, dict]:
    """MLM logits (B, P, V) in fp32 on the CPU and every parameter's gradient, after one forward + backward."""
    model.zero_grad()
    on_device = {k: v.to(device) for k, v in batch.items()}
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        out = model(**on_device)
    out.loss.backward()
    params = getattr(model, "_orig_mod", model).named_parameters()  # a compiled model's, under their own names
    grads = {n: p.grad.float().cpu() for n, p in params if p.grad is not None}
    return out.prediction_logits.float().detach().cpu(), grads


def test_the_model_computes_on_the_device_what_it_computes_on_the_cpu():
    """fp32 forward and backward on the device equal the CPU's to rounding, on a padded batch."""
    config = AlbertConfig(**SMALL)
    torch.manual_seed(0)
    model = AlbertForPreTraining(config).train()
    batch = padded_batch(config)
    want_logits, want_grads = forward_backward(model, batch, "cpu")
    got_logits, got_grads = forward_backward(model.to(DEVICE), batch, DEVICE)
    torch.testing.assert_close(got_logits, want_logits, atol=1e-4, rtol=1e-4)
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], atol=1e-4, rtol=1e-3, msg=name)


def test_bf16_autocast_on_the_device_stays_near_fp32():
    """bf16 autocast (what runs on a GPU by default) changes the logits and gradients by bf16 rounding only:
    relative error of a few 1e-3, far below what a wrong kernel or a mask in the wrong dtype would give."""
    config = AlbertConfig(**SMALL)
    torch.manual_seed(0)
    model = AlbertForPreTraining(config).train().to(DEVICE)
    batch = padded_batch(config)
    fp32_logits, fp32_grads = forward_backward(model, batch, DEVICE)
    bf16_logits, bf16_grads = forward_backward(model, batch, DEVICE, bf16=True)

    def relative(a, b):
        return float((a - b).norm() / b.norm())

    assert relative(bf16_logits, fp32_logits) < 2e-2
    # The key bias's gradient is 0 in exact arithmetic (the softmax ignores a shift of all scores): only rounding.
    errors = {n: relative(bf16_grads[n], fp32_grads[n]) for n in fp32_grads if fp32_grads[n].norm() > 1e-6}
    assert sorted(errors.values())[len(errors) // 2] < 5e-2, errors  # the median parameter's gradient


@pytest.mark.skipif(not ON_GPU, reason="which SDPA kernel runs is a GPU question")
@pytest.mark.parametrize("length", [128, 100], ids=["aligned", "unaligned"])
def test_padded_bf16_attention_runs_in_a_fused_kernel(length):
    """The additive (B, 1, 1, T) padding mask the model builds is one that SDPA's fused kernels (memory-efficient,
    cuDNN) accept, forward and backward, also for a length that is no multiple of 8: with the unfused math
    kernel switched off the step still runs, and gives what it gives with every kernel allowed."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = AlbertConfig(**SMALL)
    torch.manual_seed(0)
    model = AlbertForPreTraining(config).train().to(DEVICE)
    batch = padded_batch(config, batch=8, length=length)
    any_logits, _ = forward_backward(model, batch, DEVICE, bf16=True)
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    with sdpa_kernel(fused):
        fused_logits, _ = forward_backward(model, batch, DEVICE, bf16=True)
    torch.testing.assert_close(fused_logits, any_logits, atol=2e-2, rtol=2e-2)


def test_a_compiled_model_on_the_device_computes_what_eager_does():
    config = AlbertConfig(**SMALL)
    torch.manual_seed(0)
    model = AlbertForPreTraining(config).train().to(DEVICE)
    batch = padded_batch(config)
    eager_logits, eager_grads = forward_backward(model, batch, DEVICE)
    compiled_logits, compiled_grads = forward_backward(torch.compile(model), batch, DEVICE)
    torch.testing.assert_close(compiled_logits, eager_logits, atol=1e-4, rtol=1e-4)
    for name in eager_grads:
        torch.testing.assert_close(compiled_grads[name], eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


def device_config(output: Path, **train_changes) -> P.PretrainConfig:
    """tests/test_pretrain.py's tiny run on the device, in its default precision (bf16 autocast on a GPU)."""
    return tiny_config(output, train={"device": DEVICE, "bf16": None, **train_changes})


def test_pretraining_on_the_device_learns_and_resumes(tmp_path):
    """8 steps straight == 4 steps, a kill, and a resume, on the device. On a GPU the backward's atomic adds may
    sum in another order from run to run (and bf16 then round differently), so losses are compared to 3e-4 and
    weights to 5e-4: below what a resume that restored the wrong data, RNG or optimizer state would change (the
    run's consecutive losses differ by 1.5e-3 or more; one AdamW step moves a weight by up to the lr, 3e-3)."""
    train(device_config(tmp_path / "straight"))

    def kill_at(step, model):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(device_config(tmp_path / "resumed"), hooks=P.Hooks(before_forward=kill_at))
    assert train(device_config(tmp_path / "resumed"))["steps"] == 8
    a, b = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=3e-4)
    assert a[-1]["loss"] < a[0]["loss"]  # it learns
    precision = json.loads((tmp_path / "straight/summary.json").read_text())["precision"]
    if ON_GPU:  # a GPU that supports bf16 runs the step in it, untold
        assert (precision["bf16"], precision["how"]) == (True, "by device support")
    final_a = ckpt.load_checkpoint(tmp_path / "straight/checkpoints/step-0000008").model
    final_b = ckpt.load_checkpoint(tmp_path / "resumed/checkpoints/step-0000008").model
    for name in final_a:
        torch.testing.assert_close(final_b[name], final_a[name], atol=5e-4, rtol=0, msg=name)


def worker(mode: str, output: Path) -> None:
    """One torchrun rank on the device: `ddp`, or `fsdp` with activation checkpointing, in fp32."""
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    config = device_config(output, bf16=False, max_steps=6, activation_checkpointing=mode == "fsdp")
    config.parallel = D.ParallelConfig(fsdp=mode == "fsdp", timeout_s=60)
    train(config, data=SyntheticData(seed=config.train.seed, rank=rank, world_size=world_size))


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_torchrun_on_the_device_trains_as_one_process_does(tmp_path, mode):
    """One rank per GPU (nccl on a GPU): the launched, wrapped run takes the same steps as a plain process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    ranks = str(max(1, torch.cuda.device_count())) if ON_GPU else "1"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", ranks,
                           str(Path(__file__).resolve()), mode, str(tmp_path / "launched")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    train(device_config(tmp_path / "single", bf16=False, max_steps=6))
    launched, single = records(tmp_path / "launched"), records(tmp_path / "single")
    assert [r["step"] for r in launched] == [r["step"] for r in single] == list(range(1, 7))
    assert [r["loss"] for r in launched] == pytest.approx([r["loss"] for r in single], abs=1e-4)
    assert json.loads((tmp_path / "launched/summary.json").read_text())["world_size"] == int(ranks)


@pytest.mark.parametrize("task,folder,split,metric,bar", [("sst-2", "glue", "dev", "accuracy", 0.80),
                                                          ("squad1.1", "squad", "dev-v1.1", "f1", 60.0)])
def test_fine_tuning_on_the_device_learns(learnable, tmp_path, task, folder, split, metric, bar):
    """The fine-tuning CLI on the device, in its default precision, fits the tasks tests/test_finetune_learns.py
    fits on a CPU (same bars: majority ~0.5 for sst-2, F1 < 10 for a random word), and its saved model
    classifies raw text on the device as it does on the CPU."""
    from litebert.cli import main

    out = tmp_path / "run"
    assert main(["finetune", "--task", task, "--data-dir", str(learnable / folder), "--model",
                 str(learnable / "small"), "--tokenizer", str(learnable / "tok"), "--output", str(out),
                 "--optimizer", "adamw", "--lr", "2e-3", "--batch-size", "16", "--epochs", "8",
                 "--max-seq-length", "64", "--eval-every", "30", "--max-query-length", "8", "--doc-stride", "32",
                 "--device", DEVICE, "--no-progress"]) == 0
    score = json.loads((out / "metrics.json").read_text())["seeds"]["1"]["reported"][split][metric]
    assert score >= bar, (task, metric, score)
    if task == "sst-2":
        from litebert.pipelines import pipeline

        texts = (learnable / "glue/SST-2/dev.tsv").read_text(encoding="utf-8").splitlines()[1:41]
        texts = [line.split("\t")[0] for line in texts]
        on_device = pipeline("text-classification", out / "seed-1/model", device=DEVICE, bf16=False)(texts)
        on_cpu = pipeline("text-classification", out / "seed-1/model", device="cpu", bf16=False)(texts)
        assert [r["label"] for r in on_device] == [r["label"] for r in on_cpu]
        assert [r["score"] for r in on_device] == pytest.approx([r["score"] for r in on_cpu], abs=1e-4)


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
