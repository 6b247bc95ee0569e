"""`litebert params`: parameter counts and memory of a configuration, without allocating its weights.

Models are built on the meta device, so even albert-xxlarge costs no memory to count.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import torch

from litebert.config import PRESETS, SHARE_CHOICES, AlbertConfig
from litebert.model import AlbertForPreTraining

GIB = 1024 ** 3


@dataclass
class ParamReport:
    """Counts of AlbertForPreTraining's parameters, by part, and memory estimates in bytes."""

    preset: str
    embeddings: int  # word/position/type tables, LayerNorm, E→H projection
    encoder: int  # the distinct (shared) transformer blocks
    pooler: int
    heads: int  # MLM transform + output bias (decoder tied to the embeddings) and the SOP classifier
    model_params: int  # AlbertModel: embeddings + encoder + pooler, no heads
    total: int
    weights_fp32_bytes: int
    weights_bf16_bytes: int
    train_state_bytes: int  # fp32 weights + grads + two LAMB/Adam moments
    activation_bytes: int | None  # saved-for-backward estimate for batch x seq (bf16), see activation_bytes()
    checkpointed_activation_bytes: int | None  # the same with activation checkpointing
    batch: int | None
    seq: int | None


def _count(module: torch.nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def activation_bytes(config: AlbertConfig, batch: int, seq: int, bytes_per_elem: int = 2,
                     checkpointed: bool = False) -> int:
    """Rough size of the activations one training step keeps for backward.

    Per transformer layer applied: its input, Q, K, V, the attention context, two residual sums and their
    LayerNorm outputs (8 x B*T*H), the FFN's pre- and post-activation (2 x B*T*I), and the attention
    probabilities (B*nh*T*T; fused SDPA kernels keep less). Sharing saves weights, not activations: every
    one of the L x inner_group_num layer applications counts.

    `checkpointed` (activation checkpointing, `distributed.checkpoint_activations`): each layer keeps only its
    attention and FFN blocks' inputs (2 x B*T*H), and backward holds one layer's full activations at a time.
    """
    B, T, H, I = batch, seq, config.hidden_size, config.intermediate_size
    per_layer = B * T * (8 * H + 2 * I) + B * config.num_attention_heads * T * T
    embeddings = B * T * (3 * config.embedding_size + H)
    kept = config.depth * (2 * B * T * H) + per_layer if checkpointed else config.depth * per_layer
    return bytes_per_elem * (kept + embeddings)


def report(config: AlbertConfig, preset: str = "custom", batch: int | None = None,
           seq: int | None = None) -> ParamReport:
    """Count every part of `config`'s pretraining model (on the meta device)."""
    with torch.device("meta"):
        model = AlbertForPreTraining(config)
    base = model.albert
    embeddings, encoder, pooler = _count(base.embeddings), _count(base.encoder), _count(base.pooler)
    total = _count(model)
    model_params = embeddings + encoder + pooler
    acts = activation_bytes(config, batch, seq) if batch and seq else None
    checkpointed = activation_bytes(config, batch, seq, checkpointed=True) if batch and seq else None
    return ParamReport(preset, embeddings, encoder, pooler, total - model_params, model_params, total,
                       4 * total, 2 * total, 16 * total, acts, checkpointed, batch, seq)


def _format(rep: ParamReport) -> str:
    rows = [("embeddings", rep.embeddings), ("encoder", rep.encoder), ("pooler", rep.pooler),
            ("model (AlbertModel)", rep.model_params), ("heads (MLM + SOP)", rep.heads), ("total", rep.total)]
    lines = [f"{rep.preset}: parameters"] + [f"  {name:<22}{n:>15,}" for name, n in rows]
    lines += ["memory",
              f"  {'weights fp32':<22}{rep.weights_fp32_bytes / GIB:>14.3f} GiB",
              f"  {'weights bf16':<22}{rep.weights_bf16_bytes / GIB:>14.3f} GiB",
              f"  {'train state':<22}{rep.train_state_bytes / GIB:>14.3f} GiB  (fp32 weights, grads, 2 moments)"]
    if rep.activation_bytes is not None:
        lines.append(f"  {'activations':<22}{rep.activation_bytes / GIB:>14.3f} GiB  "
                     f"(bf16, batch {rep.batch} x seq {rep.seq}, estimate)")
        lines.append(f"  {'  checkpointed':<22}{rep.checkpointed_activation_bytes / GIB:>14.3f} GiB  "
                     f"(with --activation-checkpointing)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in PRESETS:
            rep = report(AlbertConfig.preset(name), name)
            print(f"{name:<20}{rep.model_params:>15,}")
        return 0
    overrides = {k: v for k, v in (("share", args.share), ("embedding_size", args.embedding_size),
                                   ("vocab_size", args.vocab_size)) if v is not None}
    config = AlbertConfig.preset(args.preset).replace(**overrides)
    rep = report(config, args.preset, args.batch, args.seq)
    print(json.dumps(asdict(rep)) if args.json else _format(rep))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="parameter counts and memory of a preset (nothing is allocated)")
    p.add_argument("--preset", default="albert-base-v2", help="preset name (see --list)")
    p.add_argument("--list", action="store_true", help="list every preset with its AlbertModel size")
    p.add_argument("--share", choices=SHARE_CHOICES, help="override the cross-layer sharing")
    p.add_argument("--embedding-size", type=int, help="override E")
    p.add_argument("--vocab-size", type=int, help="override V")
    p.add_argument("--batch", type=int, help="batch size for the activation estimate")
    p.add_argument("--seq", type=int, help="sequence length for the activation estimate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
