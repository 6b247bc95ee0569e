"""Short pretraining probes that rank the small-budget recipe's levers, on held-out MLM and dev accuracy only.

Each probe is the demo's pipeline (`litebert.demo`: text -> tokenizer -> data -> pretraining under a wall-clock
budget) with one or a few settings changed from a base recipe, then fine-tuned on the movie-review task's
**dev** split. Test is never scored here: the TaskData handed to fine-tuning has no reported split, so the
recipe chosen from this table cannot have seen it.

Per probe the table gives: optimizer steps and tokens in the budget, the last held-out MLM accuracy and loss,
the accuracy of always guessing the most frequent piece on the same held-out predictions (the unigram
plateau; a probe at that level has learnt nothing from context), SOP accuracy, and the dev accuracy of the
fine-tuned pretrained model and of the same model from random init (same tokenizer, same fine-tuning), each
the median over `--seeds`.

    PYTHONPATH=src .venv/bin/python benchmarks/pretrain_sweep.py --list
    PYTHONPATH=src .venv/bin/python benchmarks/pretrain_sweep.py --budget 180 --probes base,lamb,post-ln
    PYTHONPATH=src .venv/bin/python benchmarks/pretrain_sweep.py --base old-demo --probes base
    PYTHONPATH=src .venv/bin/python benchmarks/pretrain_sweep.py --budget 540 --lr-search --probes reviews-only \
        --output pretrain_sweep_full.json      # the demo's budget, each arm at its own best dev rate
    PYTHONPATH=src .venv/bin/python benchmarks/pretrain_sweep.py --probes base --protocol --protocol-epochs 3

Stages are cached under --workdir by content (probes that share text, tokenizer or data reuse them), so a
rerun only trains what changed; results accumulate in benchmarks/results/pretrain_sweep.json by probe name
and base. Run probes one at a time on a 2-core machine: they are timed by the wall clock.
Precision is the demo's: bf16 or fp32 as `litebert.calibrate` measures it on this machine (the rows of
2026-12-01/02 ran in bf16 on an EPYC, where it is chosen).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from common import format_table, machine_info, write_json

from litebert import demo
from litebert.config import AlbertConfig
from litebert.finetune.train import TaskData, finetune
from litebert.report import read_metrics, unigram_baseline
from litebert.tokenizer import AlbertTokenizer

BASES: dict[str, dict] = {
    "recipe": {},
    # The demo's settings before the sweep (docs/demo/report.md of 2026-11-25), with its Shakespeare text.
    "old-demo": dict(sources=("shakespeare",), preset="albert-mini", model_overrides={"num_hidden_layers": 4},
                     vocab_size=8000, seq_length=128, max_predictions=20, masking="static", dupe_factor=3,
                     micro_batch=32, optimizer="lamb", lr=0.001, warmup_fraction=0.05, mlm_bias_init="zero"),
}
"""Starting points: `recipe` is DemoConfig's defaults (the chosen recipe); a probe changes fields of one."""

PROBES: dict[str, dict] = {
    "base": {},
    # optimizer and learning rate
    "lamb": dict(optimizer="lamb", lr=0.01),
    "adamw-2e-3": dict(optimizer="adamw", lr=0.002),
    "adamw-5e-4": dict(optimizer="adamw", lr=0.0005),
    "warmup-20%": dict(warmup_fraction=0.2),
    # structure and initialisation
    "pre-ln": dict(model_overrides={"norm_position": "pre"}),
    "pre-ln-3e-3": dict(model_overrides={"norm_position": "pre"}, optimizer="adamw", lr=0.003),
    "init-0.05": dict(model_overrides={"initializer_range": 0.05}),
    "mlm-bias-zero": dict(mlm_bias_init="zero"),
    # masking
    "mask-40%": dict(masked_lm_prob=0.4, max_predictions=26),
    "single-piece": dict(whole_word=False, ngram=1),
    "static-masks": dict(masking="static", dupe_factor=5),
    "no-sop": dict(sentence_task="none"),
    # shape of the batch and the model
    "batch-128": dict(micro_batch=128),
    "seq-128": dict(seq_length=128, max_predictions=20),
    "h256-4l": dict(model_overrides={"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
                                     "num_hidden_layers": 4}),
    "2-layers": dict(model_overrides={"num_hidden_layers": 2}),
    "vocab-4k": dict(vocab_size=4000),
    "vocab-16k": dict(vocab_size=16000),
    # text
    "text+snippets": dict(sources=("wikipedia", "snippets")),
    "text+shakespeare": dict(sources=("wikipedia", "shakespeare")),
    "reviews-only": dict(sources=()),
    "task-x4": dict(task_repeats=4),
    "snippets-task-x4": dict(sources=("wikipedia", "snippets"), task_repeats=4),
}
"""Each probe's changes to the base, one lever (or one coupled pair) at a time."""


def probe_config(base: str, probe: str, args: argparse.Namespace) -> demo.DemoConfig:
    changes = {**BASES[base], **PROBES[probe]}
    # A base's model_overrides replace the demo's whole; a probe's change some of the base's.
    overrides = {**BASES[base].get("model_overrides", demo.DemoConfig().model_overrides),
                 **PROBES[probe].get("model_overrides", {})}
    return dataclasses.replace(demo.DemoConfig(), **{**changes, "model_overrides": overrides},
                               output=args.workdir, budget_s=args.budget, minilm=False, device="cpu",
                               progress=False, seeds=tuple(args.seeds))


def dev_accuracies(cfg: demo.DemoConfig, source, tokenizer, data: TaskData, lr: float, use_bf16: bool,
                   epochs: float | None = None) -> list[float]:
    """Dev accuracy (%) of one fine-tuning run per seed; no split is reported, so test is never scored."""
    dev_only = dataclasses.replace(data, reported={}, unlabelled={})
    ft = demo.finetune_config(cfg, lr, epochs or cfg.finetune_epochs, use_bf16)
    return [100 * finetune(demo.REVIEWS_TASK, source, tokenizer, dev_only, ft, seed).selection["accuracy"]
            for seed in cfg.seeds]


def pretrain_probe(cfg: demo.DemoConfig, verbose: bool):
    """The demo's stages up to pretraining for `cfg`: (task data, tokenizer dir, pretraining stage result, bf16 or
    not: the demo's precision choice, which fine-tuning then keeps)."""
    log = (lambda msg: print(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    sources, labelled = demo.stage_corpora(cfg)
    data = demo.review_data(labelled, cfg.output)
    held_out = [x.text_a for x in data.selection + data.reported["test"]]
    text_dir, _ = demo.write_pretraining_text(sources, [x.text_a for x in data.train], held_out,
                                              cfg.output / f"corpus-{demo.content_hash(sorted(sources), cfg.task_repeats)}",
                                              task_repeats=cfg.task_repeats)
    tok_dir, _ = demo.stage_tokenizer(cfg, text_dir, log)
    _, made = demo.stage_data(cfg, text_dir, tok_dir, log)
    use_bf16 = demo.demo_precision(cfg)["bf16"]
    _, pre = demo.stage_pretrain(cfg, Path(made["path"]), tok_dir, use_bf16, log)
    return data, tok_dir, pre, use_bf16


def protocol_search(base: str, probe: str, args: argparse.Namespace) -> dict:
    """Every (learning rate, epochs) of the grid, for the probe's pretrained model and the same model from
    random init: the search that fixes the demo's one fine-tuning protocol for both ALBERT arms (on dev)."""
    cfg = probe_config(base, probe, args)
    data, tok_dir, pre, use_bf16 = pretrain_probe(cfg, args.verbose)
    tokenizer = AlbertTokenizer.from_pretrained(tok_dir)
    model_config = AlbertConfig.from_dict(json.loads((Path(pre["final"]) / "config.json").read_text()))
    grid = []
    for lr in args.protocol_lrs:
        for epochs in args.protocol_epochs:
            pre_dev = dev_accuracies(cfg, Path(pre["final"]), tokenizer, data, lr, use_bf16, epochs)
            rand_dev = dev_accuracies(cfg, model_config, tokenizer, data, lr, use_bf16, epochs)
            grid.append({"lr": lr, "epochs": epochs, "dev_pretrained": pre_dev, "dev_random_init": rand_dev,
                         "dev_pretrained_median": statistics.median(pre_dev),
                         "dev_random_init_median": statistics.median(rand_dev)})
            print(f"protocol lr {lr:g} epochs {epochs:g}: dev pretrained {statistics.median(pre_dev):.1f} "
                  f"random init {statistics.median(rand_dev):.1f}", flush=True)
    return {"base": base, "probe": probe, "budget_s": cfg.budget_s, "seeds": list(cfg.seeds), "grid": grid}


def run_probe(base: str, probe: str, args: argparse.Namespace, random_cache: dict) -> dict:
    cfg = probe_config(base, probe, args)
    start = time.perf_counter()
    data, tok_dir, pre, use_bf16 = pretrain_probe(cfg, args.verbose)
    records = read_metrics(Path(pre["run"]) / "metrics.jsonl")
    last = [r for r in records if r.get("split") == "eval"][-1]
    summary = pre["summary"]
    tokenizer = AlbertTokenizer.from_pretrained(tok_dir)
    model_config = AlbertConfig.from_dict(json.loads((Path(pre["final"]) / "config.json").read_text()))
    lrs = cfg.finetune_lrs if args.lr_search else cfg.finetune_lrs[:1]
    pretrained_by_lr, random_by_lr = {}, {}
    for lr in lrs:
        pretrained_by_lr[lr] = dev_accuracies(cfg, Path(pre["final"]), tokenizer, data, lr, use_bf16)
        key = demo.content_hash(tok_dir, model_config.to_dict(), lr, list(cfg.seeds))
        if key not in random_cache:
            random_cache[key] = dev_accuracies(cfg, model_config, tokenizer, data, lr, use_bf16)
        random_by_lr[lr] = random_cache[key]
    # Each arm at its own best rate (median over seeds), as the demo's search picks it: the fair comparison.
    best_pre = demo.best_rate({lr: statistics.median(accs) for lr, accs in pretrained_by_lr.items()})
    best_rand = demo.best_rate({lr: statistics.median(accs) for lr, accs in random_by_lr.items()})
    pretrained_dev, random_dev = pretrained_by_lr[best_pre], random_by_lr[best_rand]
    return {"probe": probe, "base": base, "changes": PROBES[probe], "budget_s": cfg.budget_s,
            "steps": summary["steps"], "tokens": summary["tokens"], "tokens_per_s": summary["tokens"] / summary["time_s"],
            "eval_mlm_acc": last["mlm_acc"], "eval_mlm_loss": last["mlm_loss"], "sop_acc": last.get("sop_acc"),
            "unigram_mlm_acc": unigram_baseline(records),
            "dev_pretrained": pretrained_dev, "dev_random_init": random_dev,
            "dev_pretrained_median": statistics.median(pretrained_dev),
            "dev_random_init_median": statistics.median(random_dev),
            "finetune": {"lr": best_pre, "lr_random_init": best_rand, "epochs": cfg.finetune_epochs,
                         "seeds": list(cfg.seeds)},
            "dev_by_lr": {str(lr): {"pretrained": pretrained_by_lr[lr], "random_init": random_by_lr[lr]} for lr in lrs},
            "curve": [(r["step"], r["mlm_acc"]) for r in records if r.get("split") == "eval"],
            "wall_s": time.perf_counter() - start}


def table(rows: list[dict]) -> str:
    header = ["base", "probe", "steps", "Mtok", "MLM acc", "unigram", "MLM loss", "SOP", "dev pre", "dev rand",
              "pre-rand"]
    body = [[r["base"], r["probe"], r["steps"], r["tokens"] / 1e6, 100 * r["eval_mlm_acc"],
             100 * (r["unigram_mlm_acc"] or float("nan")), r["eval_mlm_loss"],
             100 * r["sop_acc"] if r["sop_acc"] is not None else "-", r["dev_pretrained_median"],
             r["dev_random_init_median"], r["dev_pretrained_median"] - r["dev_random_init_median"]] for r in rows]
    return format_table(header, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", default="base", help=f"comma-separated, from: {', '.join(PROBES)}")
    parser.add_argument("--base", default="recipe", choices=sorted(BASES))
    parser.add_argument("--budget", type=float, default=180.0, help="pretraining seconds per probe (default 180)")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                        help="fine-tuning seeds per probe (default 1,2)")
    parser.add_argument("--lr-search", action="store_true",
                        help="fine-tune each arm at every rate of the demo's search (DemoConfig.finetune_lrs) and "
                             "compare each arm at its own best dev rate, as the demo does (default: the first rate)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/pretrain_sweep"))
    parser.add_argument("--output", default="pretrain_sweep.json", help="file name under benchmarks/results/, or a path")
    parser.add_argument("--protocol", action="store_true",
                        help="instead of probes: the fine-tuning grid (--protocol-lrs x --protocol-epochs) for the "
                             "first probe's pretrained model and its random init, into results/finetune_protocol.json")
    parser.add_argument("--protocol-lrs", type=lambda s: [float(x) for x in s.split(",")], default=[3e-4, 1e-3, 2e-3])
    parser.add_argument("--protocol-epochs", type=lambda s: [float(x) for x in s.split(",")], default=[2.0, 3.0])
    parser.add_argument("--list", action="store_true", help="print the probes and exit")
    parser.add_argument("--verbose", action="store_true", help="stage messages on stderr")
    args = parser.parse_args(argv)
    if args.list:
        for name, changes in PROBES.items():
            print(f"{name:<18} {changes}")
        return 0
    probes = [p for p in args.probes.split(",") if p]
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        parser.error(f"unknown probe(s) {', '.join(unknown)}; --list shows them")
    if args.protocol:
        result = protocol_search(args.base, probes[0], args)
        result["machine"] = machine_info()
        print(f"\nwrote {write_json(result, 'finetune_protocol.json')}")
        return 0
    results_path = Path(__file__).resolve().parent / "results" / args.output
    stored = json.loads(results_path.read_text()) if results_path.exists() else {"rows": []}
    rows = {(r["base"], r["probe"]): r for r in stored["rows"]}
    random_cache: dict = {}
    for probe in probes:
        row = run_probe(args.base, probe, args, random_cache)
        row["machine"] = machine_info()
        rows[(args.base, probe)] = row
        print(table([row]).splitlines()[-1], flush=True)
        write_json({"rows": list(rows.values())}, args.output)  # after every probe: nothing lost on a crash
    print(table(list(rows.values())))
    print(f"\nwrote {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
