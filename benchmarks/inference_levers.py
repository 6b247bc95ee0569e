"""Which changes make litebert's CPU inference faster? Each lever is timed against the same baseline, on the
same weights, round-robin in one run (see common.py), at one or more B x T shapes.

Levers that would need a change in model.py are applied here from outside (a patched mask function, a fused
QKV forward bound onto a copy of the model), so that they can be measured before anyone edits the model:
  - grad mode: torch.no_grad vs torch.inference_mode
  - precision: fp32, bf16 autocast, bf16 weights (model.to(torch.bfloat16))
  - the attention mask: additive float (today), boolean, or none at all (no padding in the batch)
  - one fused Q/K/V projection (H -> 3H) instead of three H -> H
  - torch.compile of the whole model (compile time reported apart)
  - intra-op threads: 1 vs all
Hugging Face's bf16 autocast is timed alongside as the reference.

    python benchmarks/inference_levers.py [--shapes 8x128 8x512] [--repeats 5] [--no-compile]
Writes benchmarks/results/inference_levers.json.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import inputs_for, random_weights  # noqa: E402
from common import format_table, interleaved_medians, machine_info, set_threads, write_json  # noqa: E402

import litebert.model as lm  # noqa: E402

PRESET = "albert-base-v2"


def bool_mask(attention_mask, dtype):
    """(B, T) 1/0 → boolean (B, 1, 1, T), True where attended: SDPA's other mask form."""
    return None if attention_mask is None else attention_mask[:, None, None, :].bool()


@contextlib.contextmanager
def patched_mask(fn):
    """Swap the model module's mask builder for the duration (AlbertModel.forward looks it up per call)."""
    saved = lm.extended_attention_mask
    lm.extended_attention_mask = fn
    try:
        yield
    finally:
        lm.extended_attention_mask = saved


def fused_qkv_forward(self, x, mask):
    """AlbertAttention.forward with one (3H, H) projection: one GEMM of 3x the width instead of three."""
    B, T, H = x.shape
    qkv = F.linear(x, self.qkv_weight, self.qkv_bias).view(B, T, 3, self.num_heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return self.layer_norm(x + self.dense(ctx.transpose(1, 2).reshape(B, T, H)))


def with_fused_qkv(model):
    """A copy of `model` whose attention blocks run `fused_qkv_forward` on concatenated weights."""
    model = copy.deepcopy(model)
    for block in model.encoder.attention:
        block.qkv_weight = torch.cat([block.query.weight, block.key.weight, block.value.weight]).detach()
        block.qkv_bias = torch.cat([block.query.bias, block.key.bias, block.value.bias]).detach()
        block.forward = types.MethodType(fused_qkv_forward, block)
    return model


def runner(model, inputs, grad_mode="no_grad", autocast=False, mask_fn=None, threads=None, drop_mask=False):
    """A zero-argument call of `model` under the given settings (restored afterwards)."""
    inputs = {**inputs, "attention_mask": None} if drop_mask else inputs
    grad = torch.inference_mode if grad_mode == "inference_mode" else torch.no_grad

    def run():
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), \
                    (patched_mask(mask_fn) if mask_fn else contextlib.nullcontext()):
                return model(**inputs)
        finally:
            torch.set_num_threads(before)
    return run


def contenders(fp32, bf16, fused_bf16, compiled_bf16, hf, inputs):
    inf = "inference_mode"
    table = {
        "fp32 no_grad (baseline)": runner(fp32, inputs),
        "fp32 inference_mode": runner(fp32, inputs, inf),
        "fp32 inference_mode, no mask": runner(fp32, inputs, inf, drop_mask=True),
        "bf16 autocast no_grad": runner(fp32, inputs, autocast=True),
        "bf16 autocast inference_mode": runner(fp32, inputs, inf, autocast=True),
        "bf16 weights no_grad": runner(bf16, inputs),
        "bf16 weights inference_mode": runner(bf16, inputs, inf),
        "bf16 weights, bool mask": runner(bf16, inputs, inf, mask_fn=bool_mask),
        "bf16 weights, no mask": runner(bf16, inputs, inf, drop_mask=True),
        "bf16 weights, fused QKV": runner(fused_bf16, inputs, inf),
        "bf16 weights, fused QKV, no mask": runner(fused_bf16, inputs, inf, drop_mask=True),
        "bf16 weights, 1 thread": runner(bf16, inputs, inf, threads=1),
        "HF bf16 autocast (reference)": runner(hf, inputs, autocast=True),
    }
    if compiled_bf16 is not None:
        table["bf16 weights, torch.compile"] = runner(compiled_bf16, inputs, inf)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["8x128", "8x512"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes to compile)")
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    import tempfile

    import transformers

    fp32 = random_weights(PRESET)
    with tempfile.TemporaryDirectory() as tmp:
        fp32.save_pretrained(tmp)
        hf = transformers.AlbertModel.from_pretrained(tmp).eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    fused_bf16 = with_fused_qkv(bf16)
    compiled = None if args.no_compile else torch.compile(bf16, dynamic=False)

    results, compile_s = [], {}
    for shape in args.shapes:
        batch, seq = map(int, shape.split("x"))
        inputs = inputs_for(fp32.config, batch, seq)
        if compiled is not None:  # the first call compiles; time it apart from the steady state
            start = time.perf_counter()
            with torch.inference_mode():
                compiled(**inputs)
            compile_s[shape] = time.perf_counter() - start
        table = contenders(fp32, bf16, fused_bf16, compiled, hf, inputs)
        seconds = interleaved_medians(table, warmup=1, repeats=args.repeats)
        base = seconds["fp32 no_grad (baseline)"]
        ref = seconds["HF bf16 autocast (reference)"]
        for name, s in seconds.items():
            results.append(dict(shape=shape, lever=name, seconds=s, tokens_per_s=batch * seq / s,
                                speedup_vs_fp32=base / s, vs_hf_bf16=ref / s))
        print(f"{shape} done", flush=True)

    for shape in args.shapes:
        rows = [[r["lever"], round(r["tokens_per_s"]), r["speedup_vs_fp32"], r["vs_hf_bf16"]]
                for r in results if r["shape"] == shape]
        print(f"\n{PRESET} {shape}" + (f" (torch.compile first call: {compile_s[shape]:.0f} s)"
                                        if shape in compile_s else ""))
        print(format_table(["lever", "tok/s", "x fp32", "x HF bf16"], rows))
    path = write_json({"machine": machine_info(threads=threads, repeats=args.repeats), "preset": PRESET,
                       "compile_s": compile_s, "results": results}, "inference_levers.json")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
