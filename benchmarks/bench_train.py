"""Training throughput: litebert's AlbertForPreTraining vs transformers' in the same process (with --head
classification, their AlbertForSequenceClassification: a fine-tuning step).

One training step = forward + backward + AdamW update, same config, batch, sequence length and dtype (fp32, or
bf16 autocast over fp32 weights). The losses differ by design: Hugging Face's model takes labels over all T
positions (-100 where nothing is masked) and so builds (B, T, V) logits; litebert takes the masked positions
(B, P) and runs the MLM head on those only. That is litebert's advantage and the reason for part of the ratio.

Timings interleave the models step by step and report the median, which blunts other load on the machine.
On a GPU (--device cuda, the default where one is present) the same steps run there, timed with
synchronisation; --compile adds torch.compile(litebert) as a third contender (its compile timed apart, as the
first step). On a CPU, litebert runs with the fast paths `litebert.calibrate` measures for the shape when the
row's precision is the one calibration chose (as `litebert pretrain` does: attention backward, GELU form, matmul
row blocks, summed shared gradient; the choice is in the JSON), else with the defaults, as a run given --bf16 or
--no-bf16 against the measurement; they switch themselves off on a GPU.

Model FLOP utilisation (MFU) = model FLOPs per step / step time / this machine's dense matmul rate in the
step's dtype (bf16 or fp32): the best of a few square sizes with `common.matmul_tflops`, measured in the
run. Model FLOPs are counted analytically, forward x 3 for forward + backward: per applied layer (depth of them)
2*B*T*(4*H^2 + 2*H*I) for the linear layers plus 4*B*T^2*H for attention scores and context, except that the
last layer counts its K and V projections at all T positions and the rest at the P masked positions and [CLS]
only; the embedding projection 2*B*T*E*H when E != H; and the MLM head over the P masked positions only,
2*B*P*(H*E + E*V). Both implementations are credited with the SAME useful FLOPs: Hugging Face's head over all T
positions and its last layer at every position do work the loss does not need, and that extra work is not
counted (so its MFU is lower where it wastes time there). (Before 2026-12-05 the last layer was counted at all T
positions, which litebert then also computed: MFUs of that count read ~5% higher at ALBERT-base 8x128.)
Elementwise ops, layer norms, softmax, the SOP head and the optimizer are not counted. A classification step
(--head classification: 2 labels, a random label per sequence, the classifier's dropout as configured) counts the
last layer at [CLS] only, where litebert computes it (its queries, output projection and FFN on one row; its K
and V at all T), and the pooler and classifier; HF runs its last layer at all T positions.

    python benchmarks/bench_train.py [--presets albert-tiny albert-base-v2] [--shapes 8x128 32x128 8x512]
        [--dtypes fp32 bf16] [--steps 4] [--device cpu|cuda] [--compile] [--threads N] [--output train.json]
        [--head pretraining|classification]
~10 minutes on 2 CPU cores for the defaults (HF's fp32 32x128 step alone is ~15 s).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, matmul_tflops, set_threads, time_once, use_run_allocator, write_json  # noqa: E402
from litebert import calibrate  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402
from litebert.hardware import bf16_supported  # noqa: E402
from litebert.kernels import CpuFastPaths  # noqa: E402
from litebert.model import AlbertForPreTraining, AlbertForSequenceClassification  # noqa: E402

PREDICTIONS = 20  # max_predictions_per_seq of the ALBERT recipe


def predictions_for(preset: str) -> int:
    """Masked positions per sequence in a preset's pretraining step: the ALBERT recipe's 20, or for `demo` the
    demo's own (DemoConfig.max_predictions: 15% of its 64 positions), so that its rows time the step it runs."""
    if preset != "demo":
        return PREDICTIONS
    from litebert.config import DemoConfig

    return DemoConfig().max_predictions


def make_batch(config: AlbertConfig, batch: int, length: int, seed: int = 0,
               predictions: int = PREDICTIONS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    positions = torch.stack([torch.randperm(length - 1, generator=g)[:predictions] + 1 for _ in range(batch)])
    positions = positions.sort(-1).values  # (B, P)
    targets = torch.gather(ids, 1, positions)  # (B, P)
    full = torch.full_like(ids, -100).scatter(1, positions, targets)  # (B, T): HF's labels
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                positions=positions, targets=targets, full_labels=full,
                sop=torch.randint(0, 2, (batch,), generator=g),
                labels=torch.randint(0, 2, (batch,), generator=g))  # a classification step's (drawn last)


def model_config(preset: str) -> AlbertConfig:
    """A preset, or `demo`: the model `litebert demo` pretrains on CPU (DemoConfig; its tokenizer's 8k vocab)."""
    if preset != "demo":
        return AlbertConfig.preset(preset)
    from litebert.config import DemoConfig
    from litebert.demo import model_overrides

    cfg = DemoConfig()
    return AlbertConfig.preset(cfg.preset, **model_overrides(cfg))


def ours_step(model, b):
    return model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["targets"],
                 sentence_order_label=b["sop"], masked_lm_positions=b["positions"]).loss


def hf_step(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                 labels=b["full_labels"], sentence_order_label=b["sop"]).loss


def ours_classify_step(model, b):
    return model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["labels"]).loss


def hf_classify_step(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                 labels=b["labels"]).loss


def encoder_flops(config: AlbertConfig, batch: int, length: int, last_rows: int) -> float:
    """Useful forward FLOPs of the embedding projection and the encoder, its last layer at `last_rows` positions
    (all layers' K and V at every position)."""
    B, T = batch, length
    H, I, E = config.hidden_size, config.intermediate_size, config.embedding_size
    kv = 2 * B * T * 2 * H * H  # the K and V projections: every position of every layer

    def queries(rows: int) -> int:  # Q and output projections, FFN, scores and context at `rows` positions
        return 2 * B * rows * (2 * H * H + 2 * H * I) + 4 * B * rows * T * H

    forward = config.depth * kv + (config.depth - 1) * queries(T) + queries(last_rows)
    return forward + (2 * B * T * E * H if E != H else 0)


def train_flops(config: AlbertConfig, batch: int, length: int, predictions: int = PREDICTIONS) -> float:
    """Useful model FLOPs of one pretraining step (3 x forward), the same for both implementations: the last
    layer feeds only the heads (the masked positions and [CLS] for SOP), the MLM head runs on the masked ones."""
    H, E, V, P = config.hidden_size, config.embedding_size, config.vocab_size, predictions
    head = 2 * batch * P * (H * E + E * V)
    return 3.0 * (encoder_flops(config, batch, length, min(length, P + 1)) + head)


def classify_flops(config: AlbertConfig, batch: int, length: int, predictions: int = 0) -> float:
    """Useful model FLOPs of one sequence-classification step: the last layer at [CLS] only, the pooler and the
    classifier (`predictions`: none in this step; the argument keeps the heads' signature)."""
    H = config.hidden_size
    return 3.0 * (encoder_flops(config, batch, length, 1) + 2 * batch * H * (H + config.num_labels))


@dataclasses.dataclass(frozen=True)
class Head:
    """One training objective as both implementations run it."""
    ours: type  # litebert's model class
    hf: str  # transformers' class of the same job
    ours_step: Callable[[torch.nn.Module, dict], torch.Tensor]
    hf_step: Callable[[torch.nn.Module, dict], torch.Tensor]
    flops: Callable[[AlbertConfig, int, int, int], float]  # (config, batch, length, predictions) → FLOPs of a step


HEADS = {
    "pretraining": Head(AlbertForPreTraining, "AlbertForPreTraining", ours_step, hf_step, train_flops),
    "classification": Head(AlbertForSequenceClassification, "AlbertForSequenceClassification", ours_classify_step,
                           hf_classify_step, classify_flops),
}


def to_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def hf_albert_config(config: AlbertConfig):
    """transformers' AlbertConfig of the same model (the fields both name, and the label count)."""
    import transformers

    fields = transformers.AlbertConfig().to_dict()
    return transformers.AlbertConfig(num_labels=config.num_labels,
                                     **{k: v for k, v in config.to_dict().items() if k in fields})


def contenders(config: AlbertConfig, device: str, compile_ours: bool, head: str = "pretraining") -> dict:
    """name → (model, step function): litebert, Hugging Face and, with compile_ours, torch.compile(litebert),
    each drawn from torch's seeded RNG (their weights differ; the compiled twin has litebert's)."""
    import transformers

    spec = HEADS[head]
    torch.manual_seed(0)
    ours = spec.ours(config).train().to(device)
    hf = getattr(transformers, spec.hf)(hf_albert_config(config)).train().to(device)
    runs = {"litebert": (ours, spec.ours_step), "transformers": (hf, spec.hf_step)}
    if compile_ours:
        twin = spec.ours(config).train().to(device)
        twin.load_state_dict(ours.state_dict())
        runs["litebert compiled"] = (torch.compile(twin), spec.ours_step)
    return runs


def bench(preset: str, batch: int, length: int, bf16: bool, steps: int, device: str = "cpu",
          compile_ours: bool = False, head: str = "pretraining") -> dict:
    """Median step time of each contender, timed step by step in turn (warm-up step first, and for the
    compiled model the compile, timed apart)."""
    config = model_config(preset)
    chosen = calibrate.calibrate(config, batch, length, "train") if device == "cpu" else None
    applies = chosen is not None and chosen.bf16 == bf16
    # The row runs from the model's default fast paths (not the last row's), with the calibration's on top when
    # it chose this row's precision; the other precision gets the defaults, as a run forced to it does.
    with calibrate.fast_paths(**dataclasses.asdict(CpuFastPaths())):
        if applies:
            chosen.apply()
        out = timed_steps(config, batch, length, bf16, steps, device, compile_ours, head, predictions_for(preset))
    out["preset"], out["head"] = preset, head
    out["calibrated"] = None if chosen is None else "bf16-autocast" if chosen.bf16 else "fp32"
    out["fast_paths"] = chosen.describe() if applies else "defaults"
    return out


def timed_steps(config: AlbertConfig, batch: int, length: int, bf16: bool, steps: int, device: str,
                compile_ours: bool, head: str = "pretraining", predictions: int = PREDICTIONS) -> dict:
    """Each contender's training steps at (batch, length), `predictions` masked positions per sequence,
    interleaved: medians, tokens/s and ratios."""
    runs = contenders(config, device, compile_ours, head)
    b = to_device(make_batch(config, batch, length, predictions=predictions), device)
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, (m, _) in runs.items()}
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step(name):
        model, fn = runs[name]
        with autocast:
            loss = fn(model, b)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    warmup = {name: time_once(lambda: step(name)) for name in runs}
    times = {name: [] for name in runs}
    for _ in range(steps):
        for name in runs:
            times[name].append(time_once(lambda: step(name)))
    out = {"batch": batch, "seq_length": length, "device": device,
           "dtype": "bf16-autocast" if bf16 else "fp32", "predictions": predictions,
           "flops_per_step": HEADS[head].flops(config, batch, length, predictions)}
    for name, ts in times.items():
        key = name.replace(" ", "_")
        out[f"{key}_step_s"] = statistics.median(ts)
        out[f"{key}_tokens_per_s"] = batch * length / statistics.median(ts)
        out[f"{key}_first_step_s"] = warmup[name]
    out["ratio"] = out["litebert_tokens_per_s"] / out["transformers_tokens_per_s"]
    if compile_ours:
        out["compiled_ratio"] = out["litebert_compiled_tokens_per_s"] / out["transformers_tokens_per_s"]
    return out


def peak_rates(device: str, bf16: bool = True) -> dict[str, float]:
    """This machine's dense matmul TFLOP/s per step dtype (the MFU denominators), measured now: the best of a
    few square sizes, since no single size is the fastest for both dtypes (on the AMX CPU fp32 peaks below
    2048, bf16 above); bf16's only when `bf16` (rows in bf16 are timed)."""
    sizes = (1024, 2048, 4096) if device == "cpu" else (4096, 8192)
    best = lambda dtype: max(matmul_tflops(dtype, n=n, repeats=3, device=device) for n in sizes)  # noqa: E731
    return {"fp32": best(torch.float32), **({"bf16-autocast": best(torch.bfloat16)} if bf16 else {}),
            "sizes": list(sizes)}


def print_row(r: dict) -> None:
    compiled = f"{r['compiled_ratio']:>9.2f}x" if "compiled_ratio" in r else ""
    print(f"{r['preset']:<16}{r['batch']}x{r['seq_length']:<5}{r['dtype']:>15}{r['litebert_tokens_per_s']:>16.0f}"
          f"{r['transformers_tokens_per_s']:>12.0f}{r['ratio']:>7.2f}x"
          f"{r['litebert_mfu']:>8.1%}{r['transformers_mfu']:>8.1%}{compiled}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["albert-tiny", "albert-base-v2"],
                        help="presets, or `demo` (the demo's CPU model; run it at 64x64)")
    parser.add_argument("--shapes", nargs="+", default=["8x128", "32x128", "8x512"], help="BATCHxLENGTH")
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"],
                        help="fp32, and/or bf16 autocast over fp32 weights (default: both; fp32 alone on a CPU "
                             "without native bf16, where torch emulates bf16 matmuls ~80x slower)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(litebert)")
    parser.add_argument("--threads", type=int, help="torch threads (default: every core)")
    parser.add_argument("--output", default="train.json", help="file name under benchmarks/results/, or a path")
    parser.add_argument("--head", choices=list(HEADS), default="pretraining",
                        help="the step: pretraining (MLM + SOP) or classification (a fine-tuning step, 2 labels)")
    args = parser.parse_args(argv)
    if args.dtypes is None:
        args.dtypes = ["fp32", "bf16"] if args.device != "cpu" or bf16_supported("cpu") else ["fp32"]
    use_run_allocator()
    set_threads(args.threads)
    peak = peak_rates(args.device, "bf16" in args.dtypes)
    bf16 = f"{peak['bf16-autocast']:.3g} TFLOP/s" if "bf16-autocast" in peak else "not timed"
    print(f"best square matmul of {peak['sizes']} on {args.device}: fp32 {peak['fp32']:.3g} TFLOP/s, bf16 {bf16}")
    header = (f"{'preset':<16}{'shape':<8}{'dtype':>15}{'litebert tok/s':>16}{'HF tok/s':>12}{'ratio':>8}"
              f"{'lb mfu':>8}{'HF mfu':>8}{'  compiled' if args.compile else ''}")
    print(header + "\n" + "-" * len(header))
    rows = []
    for preset in args.presets:
        for shape in args.shapes:
            batch, length = map(int, shape.split("x"))
            for bf16 in [d == "bf16" for d in args.dtypes]:
                r = bench(preset, batch, length, bf16, args.steps, args.device, args.compile, args.head)
                for name in ("litebert", "transformers", "litebert_compiled"):
                    if f"{name}_step_s" in r:
                        r[f"{name}_mfu"] = r["flops_per_step"] / r[f"{name}_step_s"] / (peak[r["dtype"]] * 1e12)
                rows.append(r)
                print_row(r)
    what = ("training step (forward + backward + AdamW), median s and tokens/s; HF loss over (B, T) labels, "
            "litebert over (B, P) masked positions (P in each row's `predictions`: 20, the demo's model its own 10); "
            "mfu = useful model FLOPs per step (3 x analytic forward, MLM head over the masked positions for both) / "
            "step time / matmul rate of the step's dtype")
    if args.head == "classification":
        what = ("sequence-classification training step (forward + backward + AdamW; 2 labels), median s and "
                "tokens/s; mfu = useful model FLOPs per step (3 x analytic forward, the last layer at [CLS] only, "
                "for both) / step time / matmul rate of the step's dtype")
    path = write_json({"what": what, "matmul_tflops": peak, "steps": args.steps,
                       "machine": machine_info(device=_device_name(args.device)), "rows": rows}, args.output)
    print(f"wrote {path}")
    return 0


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


if __name__ == "__main__":
    sys.exit(main())
