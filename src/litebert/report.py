"""The demo's report: report.md and PNG figures, every number read from the stages' own output files.

Nothing here computes a result: pretraining numbers come from the run's metrics.jsonl and summary.json,
fine-tuning numbers from the fine-tuning stage's result.json.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

ARM_TITLES = {
    "pretrained": "ALBERT, pretrained here",
    "random-init": "ALBERT, random init (same recipe)",
    "tfidf-logreg": "TF-IDF + logistic regression",
    "minilm": "MiniLM-L6 BERT (real pretrained, ceiling)",
}


def read_metrics(path: Path) -> list[dict]:
    """The JSON records of a metrics.jsonl file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def arm_summary(arm: dict) -> dict:
    """Median and spread of test accuracy (in %) over an arm's seeds, plus the values themselves."""
    test = [100 * r["test"]["accuracy"] for r in arm["runs"]]
    dev = [100 * r["dev"]["accuracy"] for r in arm["runs"]]
    return {"arm": arm["arm"], "title": ARM_TITLES.get(arm["arm"], arm["arm"]), "test": test, "dev": dev,
            "median": statistics.median(test), "min": min(test), "max": max(test),
            "dev_median": statistics.median(dev)}


def plot_pretraining(records: list[dict], path: Path) -> Path:
    """Loss, MLM accuracy and SOP accuracy against minutes of training (train and held-out eval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("split", "train") == "train"]
    evals = [r for r in records if r.get("split") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("loss", "mlm_acc", "sop_acc"), ("loss (MLM + SOP)", "MLM accuracy",
                                                                      "SOP accuracy")):
        ax.plot([r["time_s"] / 60 for r in train if r.get(key) is not None],
                [r[key] for r in train if r.get(key) is not None], label="train", color="#4c72b0", lw=1.2)
        if evals:
            ax.plot([r["time_s"] / 60 for r in evals if r.get(key) is not None],
                    [r[key] for r in evals if r.get(key) is not None], "o-", label="held-out", color="#dd8452",
                    ms=3)
        ax.set_title(title)
        ax.set_xlabel("minutes")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy(arms: list[dict], majority: float, path: Path) -> Path:
    """Test accuracy per arm: a bar at the median, a dot per seed, the majority class as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, arm in enumerate(arms):
        ax.bar(i, arm["median"], color="#8fb0d8", width=0.6)
        ax.scatter([i] * len(arm["test"]), arm["test"], color="#1f3f6e", zorder=3, s=18)
        ax.text(i, max(arm["test"]) + 1.0, f"{arm['median']:.1f}", ha="center", fontsize=9)
    ax.axhline(100 * majority, color="#c44e52", ls="--", lw=1, label=f"majority class {100 * majority:.1f}")
    ax.set_xticks(range(len(arms)), [a["title"].replace(" (", "\n(").replace(", ", ",\n", 1) for a in arms],
                  fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    low = min(min(a["test"]) for a in arms)
    ax.set_ylim(max(0, min(low, 100 * majority) - 5), 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Movie-review sentiment: test accuracy (median of seeds; dots = seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def verdict(arms: dict[str, dict]) -> str:
    """One sentence on whether pretraining helped, from the medians alone."""
    if "pretrained" not in arms or "random-init" not in arms:
        return ""
    gain = arms["pretrained"]["median"] - arms["random-init"]["median"]
    spread = max(arms["pretrained"]["max"] - arms["pretrained"]["min"],
                 arms["random-init"]["max"] - arms["random-init"]["min"])
    if gain > spread:
        return f"Pretraining helped: +{gain:.1f} points of median test accuracy over the same model from random init."
    if gain < -spread:
        return f"Pretraining hurt: {gain:.1f} points of median test accuracy against random init."
    return (f"Pretraining made no clear difference: {gain:+.1f} points of median test accuracy, within the "
            f"seed spread ({spread:.1f} points).")


def _stage_rows(stages: dict[str, tuple[Path, dict]]) -> list[tuple[str, str, str]]:
    tok, data, pre, ft = (stages[k][1] for k in ("tokenizer", "data", "pretrain", "finetune"))
    splits = data["manifest"]["splits"]
    summary = pre["summary"]
    runs = sum(len(a["runs"]) for a in ft["arms"])
    held_out = splits.get("eval", {}).get("examples", 0)
    return [
        ("tokenizer", f"{tok['seconds']:.0f} s", f"SentencePiece unigram, {tok['vocab_size']:,} pieces"),
        ("data", f"{data['seconds']:.0f} s", f"{splits['train']['examples']:,} SOP examples "
                                             f"({splits['train']['tokens']:,} tokens; {held_out:,} held out)"),
        ("pretrain", f"{pre['seconds']:.0f} s", f"{summary['steps']:,} steps, {int(summary['tokens']):,} tokens"),
        ("finetune", f"{ft['seconds']:.0f} s", f"{runs} runs on {ft['sizes']['train']:,} train sentences"),
    ]


def sum_minutes(stages: dict[str, tuple[Path, dict]]) -> float:
    return sum(result["seconds"] for _, result in stages.values()) / 60


def write_report(output: Path, stages: dict[str, tuple[Path, dict]], facts: dict[str, Any]) -> dict:
    """Write report.md and the figures into `output`; return the numbers and the printed summary table."""
    pre_dir, pre = stages["pretrain"]
    ft = stages["finetune"][1]
    records = read_metrics(Path(pre["run"]) / "metrics.jsonl")
    arms = [arm_summary(a) for a in ft["arms"]]
    by_name = {a["arm"]: a for a in arms}
    majority = ft["majority"]["test_accuracy"]
    plot_pretraining(records, output / "pretraining.png")
    plot_accuracy(arms, majority, output / "accuracy.png")
    rows = _stage_rows(stages)
    summary = pre["summary"]
    final_eval = next((r for r in reversed(records) if r.get("split") == "eval"), {})
    lines = [
        "# litebert demo: ALBERT end to end on public text",
        "",
        f"{facts['date']} · {facts['machine']} · torch {facts['torch']} · {facts['threads']} threads · "
        f"bf16 {'on' if facts['bf16'] else 'off'} · stages below took {sum_minutes(stages):.1f} min "
        f"(this invocation {facts['total_seconds'] / 60:.1f} min; finished stages are reused)",
        "",
        f"**{verdict(by_name)}**" if verdict(by_name) else "",
        "",
        "![test accuracy per arm](accuracy.png)",
        "",
        "## Movie-review sentiment (test split)",
        "",
        f"Rotten Tomatoes sentences with mean human ratings; neutral ones (|rating| ≤ 0.5) dropped; fixed hash split "
        f"{ft['sizes']['train']:,} / {ft['sizes']['dev']:,} / {ft['sizes']['test']:,} (train / dev / test). "
        f"Model selection on dev; the numbers are test accuracy. Majority class: {100 * majority:.1f}%.",
        "",
        "| arm | test acc. median | min – max | seeds | dev median |",
        "|---|---|---|---|---|",
        *(f"| {a['title']} | **{a['median']:.1f}** | {a['min']:.1f} – {a['max']:.1f} | "
          f"{', '.join(f'{v:.1f}' for v in a['test'])} | {a['dev_median']:.1f} |" for a in arms),
        "",
        "## Pretraining",
        "",
        "![pretraining curves](pretraining.png)",
        "",
        f"Preset `{facts['config']['preset']}`, {summary['steps']:,} steps in {summary['time_s'] / 60:.1f} min, "
        f"{int(summary['tokens']):,} tokens, {summary['skipped_steps']} skipped steps. "
        f"Last held-out evaluation: MLM accuracy {100 * final_eval.get('mlm_acc', float('nan')):.1f}%, "
        f"SOP accuracy {100 * final_eval.get('sop_acc', float('nan')):.1f}%, loss {final_eval.get('loss', float('nan')):.3f}.",
        "",
        "## What ran",
        "",
        "| stage | time | what it made |",
        "|---|---|---|",
        *(f"| {name} | {t} | {what} |" for name, t, what in rows),
        "",
        "Sources: " + ", ".join(f"`{d.relative_to(output)}`" for d, _ in stages.values()) + ".",
    ]
    (output / "report.md").write_text("\n".join(lines) + "\n")
    table = "\n".join([f"{'stage':<10} {'time':>8}  what", *(f"{n:<10} {t:>8}  {w}" for n, t, w in rows), "",
                       f"{'arm':<44} {'test acc (median, min-max)':>28}",
                       *(f"{a['title']:<44} {a['median']:>10.1f} ({a['min']:.1f}-{a['max']:.1f})" for a in arms),
                       f"{'majority class':<44} {100 * majority:>10.1f}", "", verdict(by_name)])
    result = {"arms": arms, "majority": majority, "facts": facts, "summary_table": table}
    (output / "report.json").write_text(json.dumps({k: v for k, v in result.items() if k != "summary_table"},
                                                   indent=2))
    return result
