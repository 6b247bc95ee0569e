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
    """Median and spread of test accuracy (in %) over an arm's seeds, plus the values themselves (by seed)."""
    test = [100 * r["test"]["accuracy"] for r in arm["runs"]]
    dev = [100 * r["dev"]["accuracy"] for r in arm["runs"]]
    return {"arm": arm["arm"], "title": ARM_TITLES.get(arm["arm"], arm["arm"]), "test": test, "dev": dev,
            "seeds": [r["seed"] for r in arm["runs"]], "lr": arm.get("lr"), "search": arm.get("search", []),
            "search_seeds": arm.get("search_seeds"),
            "median": statistics.median(test), "min": min(test), "max": max(test),
            "dev_median": statistics.median(dev)}


def paired_differences(a: dict, b: dict) -> list[float]:
    """Test accuracy of arm `a` minus arm `b` for each seed both ran (points), in `a`'s seed order."""
    b_by_seed = dict(zip(b["seeds"], b["test"]))
    return [t - b_by_seed[s] for s, t in zip(a["seeds"], a["test"]) if s in b_by_seed]


def plot_pretraining(records: list[dict], path: Path) -> Path:
    """Loss, MLM accuracy and SOP accuracy against minutes of training (train and held-out eval); the MLM
    panel draws the accuracy of always guessing the most frequent piece (the unigram baseline) as a line."""
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
    unigram = unigram_baseline(records)
    if unigram is not None:
        axes[1].axhline(unigram, color="#c44e52", ls="--", lw=1, label=f"unigram baseline {100 * unigram:.1f}%")
        axes[1].legend(fontsize=8)
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


def unigram_baseline(records: list[dict]) -> float | None:
    """The held-out accuracy of always guessing the training data's most frequent piece, if evaluated."""
    return next((r["unigram_mlm_acc"] for r in records if r.get("split") == "eval" and "unigram_mlm_acc" in r), None)


def verdict(arms: dict[str, dict]) -> str:
    """One plain sentence on whether pretraining helped, from the paired (same-seed) test differences:
    helped (or hurt) only when every seed agrees on the sign and the median difference exceeds a point."""
    if "pretrained" not in arms or "random-init" not in arms:
        return ""
    diffs = paired_differences(arms["pretrained"], arms["random-init"])
    gain = statistics.median(diffs)
    each = ", ".join(f"{d:+.1f}" for d in diffs)
    if all(d > 0 for d in diffs) and gain > 1.0:
        sentence = f"Pretraining helped: {gain:+.1f} points of test accuracy over the same model from random init"
    elif all(d < 0 for d in diffs) and gain < -1.0:
        sentence = f"Pretraining hurt: {gain:+.1f} points of test accuracy against the same model from random init"
    else:
        sentence = f"Pretraining made no clear difference: {gain:+.1f} points of test accuracy against random init"
    sentence += f" (median of the paired seed differences {each})"
    if "tfidf-logreg" in arms:
        gap = arms["pretrained"]["median"] - arms["tfidf-logreg"]["median"]
        sentence += (f"; it is {'above' if gap >= 0 else 'below'} TF-IDF + logistic regression by "
                     f"{abs(gap):.1f} points")
    return sentence + "."


def _stage_rows(stages: dict[str, tuple[Path, dict]]) -> list[tuple[str, str, str]]:
    tok, data, base, pre, ft = (stages[k][1] for k in ("tokenizer", "data", "baselines", "pretrain", "finetune"))
    splits = data["manifest"]["splits"]
    summary = pre["summary"]
    runs = lambda arms: sum(len(a.get("all_runs", a["runs"])) for a in arms)  # noqa: E731
    names = lambda arms: ", ".join(a["arm"] for a in arms)  # noqa: E731
    held_out = splits.get("eval", {}).get("examples", 0)
    return [
        ("tokenizer", f"{tok['seconds']:.0f} s", f"SentencePiece unigram, {tok['vocab_size']:,} pieces"),
        ("data", f"{data['seconds']:.0f} s", f"{splits['train']['examples']:,} examples "
                                             f"({splits['train']['tokens']:,} tokens; {held_out:,} held out)"),
        ("baselines", f"{base['seconds']:.0f} s", f"{runs(base['arms'])} runs ({names(base['arms'])}) on "
                                                  f"{base['sizes']['train']:,} train sentences"),
        ("pretrain", f"{pre['seconds']:.0f} s", f"{summary['steps']:,} steps, {int(summary['tokens']):,} tokens"),
        ("finetune", f"{ft['seconds']:.0f} s", f"{runs(ft['arms'])} runs ({names(ft['arms'])})"),
    ]


def budget_line(facts: dict) -> str:
    """How long pretraining was allowed to run, and why that long."""
    b = facts.get("budget")
    if not b:
        return ""
    line = f"Pretraining budget: {b['pretrain_s'] / 60:.1f} min"
    if b["how"] == "given":
        return line + " (given)."
    line += (f", what the run's {b['total_s'] / 60:g}-minute total left after the stages before it "
             f"({b['spent_s'] / 60:.1f} min on this machine) and the pretrained arm's fine-tuning (timed as the "
             f"random-init arm's, {b['arm_s'] / 60:.1f} min)")
    if b["how"] == "minimum":
        line += "; that was under the minimum, so the minimum ran and the run is over its total"
    return line + "."


def sum_minutes(stages: dict[str, tuple[Path, dict]]) -> float:
    return sum(result["seconds"] for _, result in stages.values()) / 60


def precision_line(facts: dict) -> str:
    """Which precision every stage ran in, and the measurement that chose it (`litebert.calibrate`)."""
    chosen = "bf16 autocast" if facts["bf16"] else "fp32"
    timings = facts.get("precision_timings")
    memory = f" Memory: {facts['memory']}." if facts.get("memory") else ""  # absent from reports before it was set
    if not timings:
        return f"Precision: {chosen} ({facts.get('precision', 'as configured')}).{memory}"
    measured = ", ".join(f"{name} {ms:.0f} ms" for name, ms in timings.items())
    return (f"Precision: {chosen}, chosen on this machine by timing one layer's training step at the pretraining "
            f"shape ({measured}); bf16 is taken only when at least 5% faster.{memory}")


def recipe_line(config: dict[str, str], manifest: dict) -> str:
    """The pretraining recipe that ran, in one sentence (what a reader needs to reproduce or question it)."""
    settings = manifest["settings"]
    overrides = config.get("model_overrides", "{}")
    masking = (f"{'whole-word ' if settings.get('whole_word', True) else 'single-piece '}"
               f"{settings['ngram']}-gram masking of {100 * settings['masked_lm_prob']:.0f}% ({settings['masking']})")
    text_pieces = manifest.get("input", {}).get("text_pieces")  # absent from data made before it was counted
    truncated = (f" ({manifest['skipped']['truncated_pieces'] / text_pieces:.0%} of the text's pieces cut to fit)"
                 if text_pieces else "")
    return (f"Preset `{config['preset']}` with {overrides}; {masking}, {settings['sentence_task'].upper()}, "
            f"sequences of {settings['max_seq_length']}{truncated}; {config['optimizer'].upper()} peak lr "
            f"{config['lr']}, "
            f"warmup {float(config['warmup_fraction']):.0%} of the budget then linear decay, batch "
            f"{config['micro_batch']}, MLM bias init `{config['mlm_bias_init']}`.")


def _seed_table(arms: list[dict], by_name: dict[str, dict]) -> list[str]:
    """Per-seed test accuracies of every arm, and pretrained − random init for each seed."""
    seeds = by_name["pretrained"]["seeds"] if "pretrained" in by_name else arms[0]["seeds"]
    lines = ["| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for arm in arms:
        by_seed = dict(zip(arm["seeds"], arm["test"]))
        lines.append(f"| {arm['title']} | " + " | ".join(f"{by_seed[s]:.1f}" if s in by_seed else "–"
                                                          for s in seeds) + " |")
    if "pretrained" in by_name and "random-init" in by_name:
        diffs = paired_differences(by_name["pretrained"], by_name["random-init"])
        lines.append("| **pretrained − random init** | " + " | ".join(f"**{d:+.1f}**" for d in diffs) + " |")
    return lines


def _search_line(arms: list[dict], config: dict[str, str]) -> str:
    """The ALBERT arms' fine-tuning protocol: the learning rate each chose on dev with the dev medians it saw,
    or, without a search in this run, the one fixed protocol both used."""
    parts, searched = [], None
    for arm in arms:
        if len(arm["search"]) > 1:
            seen = ", ".join(f"{s['lr']:g}: {100 * s['dev_median']:.1f}" for s in arm["search"])
            parts.append(f"{arm['title']} chose lr {arm['lr']:g} (dev {seen})")
            searched = arm.get("search_seeds")
    if parts:
        how = (f"each rate ran seed{'s' if len(searched) > 1 else ''} {', '.join(map(str, searched))}, the "
               "chosen rate then the other seeds" if searched else "each rate ran every seed")
        return (f"Fine-tuning learning rate chosen on dev by the same search for both ALBERT arms ({how}; dev "
                "accuracy, the median where several seeds ran): " + "; ".join(parts) + ".")
    albert = [arm for arm in arms if arm.get("lr") is not None and arm["arm"] in ("pretrained", "random-init")]
    if not albert:
        return ""
    return (f"Both ALBERT arms fine-tune with one protocol: lr {albert[0]['lr']:g}, "
            f"{float(config.get('finetune_epochs', 'nan')):g} epochs, batch {config.get('finetune_batch', '?')}, "
            "the best dev checkpoint (the protocol was chosen on dev for both arms by "
            "`benchmarks/pretrain_sweep.py --protocol`).")


def write_report(output: Path, stages: dict[str, tuple[Path, dict]], facts: dict[str, Any]) -> dict:
    """Write report.md and the figures into `output`; return the numbers and the printed summary table."""
    pre = stages["pretrain"][1]
    base = stages["baselines"][1]  # the task's sizes and majority class; the pretrained arm is in "finetune"
    records = read_metrics(Path(pre["run"]) / "metrics.jsonl")
    arms = [arm_summary(a) for a in stages["finetune"][1]["arms"] + base["arms"]]
    by_name = {a["arm"]: a for a in arms}
    majority = base["majority"]["test_accuracy"]
    plot_pretraining(records, output / "pretraining.png")
    plot_accuracy(arms, majority, output / "accuracy.png")
    rows = _stage_rows(stages)
    final_eval = next((r for r in reversed(records) if r.get("split") == "eval"), {})
    unigram = unigram_baseline(records)
    lines = [*_header_lines(stages, facts, by_name), *_task_lines(base, arms, by_name, majority, facts),
             *_pretraining_lines(stages, facts, final_eval, unigram), *_stage_lines(stages, rows, output)]
    (output / "report.md").write_text("\n".join(lines) + "\n")
    table = "\n".join([f"{'stage':<10} {'time':>8}  what", *(f"{n:<10} {t:>8}  {w}" for n, t, w in rows), "",
                       f"{'arm':<44} {'test acc (median, min-max)':>28}",
                       *(f"{a['title']:<44} {a['median']:>10.1f} ({a['min']:.1f}-{a['max']:.1f})" for a in arms),
                       f"{'majority class':<44} {100 * majority:>10.1f}", "", verdict(by_name)])
    result = {"arms": arms, "majority": majority, "facts": facts, "summary_table": table,
              "mlm_acc": final_eval.get("mlm_acc"), "unigram_mlm_acc": unigram}
    (output / "report.json").write_text(json.dumps({k: v for k, v in result.items() if k != "summary_table"},
                                                   indent=2))
    return result


def _header_lines(stages: dict[str, tuple[Path, dict]], facts: dict[str, Any], by_name: dict[str, dict]
                  ) -> list[str]:
    """Title, the machine and the run's time, the verdict and the accuracy figure."""
    return [
        "# litebert demo: ALBERT end to end on public text",
        "",
        f"{facts['date']} · {facts['machine']} · torch {facts['torch']} · {facts['threads']} threads · "
        f"{'bf16' if facts['bf16'] else 'fp32'} · "
        f"stages below took {sum_minutes(stages):.1f} min "
        f"(this invocation {facts['total_seconds'] / 60:.1f} min; finished stages are reused)",
        "",
        f"**{verdict(by_name)}**" if verdict(by_name) else "",
        "",
        "![test accuracy per arm](accuracy.png)",
        "",
    ]


def _task_lines(base: dict, arms: list[dict], by_name: dict[str, dict], majority: float,
                facts: dict[str, Any]) -> list[str]:
    """The task, each arm's test accuracy (median, range, dev), per seed, and the learning-rate search."""
    sizes = base["sizes"]
    return [
        "## Movie-review sentiment (test split)",
        "",
        f"Rotten Tomatoes sentences with mean human ratings; neutral ones (|rating| ≤ 0.5) dropped; fixed hash split "
        f"{sizes['train']:,} / {sizes['dev']:,} / {sizes['test']:,} (train / dev / test). "
        f"Model selection on dev; the numbers are test accuracy. Majority class: {100 * majority:.1f}%.",
        "",
        "| arm | test acc. median | min – max | dev median |",
        "|---|---|---|---|",
        *(f"| {a['title']} | **{a['median']:.1f}** | {a['min']:.1f} – {a['max']:.1f} | {a['dev_median']:.1f} |"
          for a in arms),
        "",
        "Per seed (test accuracy, %):",
        "",
        *_seed_table(arms, by_name),
        "",
        _search_line(arms, facts["config"]),
        "",
    ]


def _held_out_sentence(final_eval: dict, unigram: float | None) -> str:
    """The last held-out evaluation in words, or why there was none."""
    if "mlm_acc" not in final_eval:
        return "No held-out evaluation ran: the data held out no document."
    sop = final_eval.get("sop_acc")
    return (f"Last held-out evaluation: MLM accuracy {100 * final_eval['mlm_acc']:.1f}%"
            + (f" (always guessing the most frequent piece: {100 * unigram:.1f}%)" if unigram is not None else "")
            + (f", SOP accuracy {100 * sop:.1f}%" if sop is not None else "")
            + f", loss {final_eval['loss']:.3f}.")


def _pretraining_lines(stages: dict[str, tuple[Path, dict]], facts: dict[str, Any], final_eval: dict,
                       unigram: float | None) -> list[str]:
    """The recipe, the text, the steps and speed reached, the last held-out evaluation, budget and precision."""
    from litebert.demo import LONG_DOCUMENT_LINES, SENTENCES_PER_DOC

    summary = stages["pretrain"][1]["summary"]
    manifest = stages["data"][1]["manifest"]
    corpus = facts.get("corpus", {})
    tokens_per_s = summary["tokens"] / max(summary["time_s"], 1e-9)
    return [
        "## Pretraining",
        "",
        "![pretraining curves](pretraining.png)",
        "",
        recipe_line(facts["config"], manifest),
        "",
        f"Text: {', '.join(corpus.get('sources', [])) or 'the given corpus'} plus the task's train-split sentences "
        f"({sum(corpus.get('files', {}).values()):,} lines; {corpus.get('dropped_held_out', 0)} line(s) equal to "
        f"a dev/test sentence dropped"
        + (f"; {n:,} byte sequence(s) that are not UTF-8 replaced" if (n := corpus.get("undecodable_bytes")) else "")
        + (f"; {n:,} document(s) longer than {LONG_DOCUMENT_LINES} lines cut into documents of {SENTENCES_PER_DOC} "
           f"lines" if (n := corpus.get("long_documents_cut")) else "")
        + ").",
        "",
        f"{summary['steps']:,} steps in {summary['time_s'] / 60:.1f} min, {int(summary['tokens']):,} tokens: "
        f"{tokens_per_s:,.0f} tokens/s and {60 * summary['steps'] / max(summary['time_s'], 1e-9):,.0f} steps/min "
        f"on this machine; {summary['skipped_steps']} skipped steps. " + _held_out_sentence(final_eval, unigram),
        "",
        budget_line(facts),
        "",
        precision_line(facts),
        "",
    ]


def _stage_lines(stages: dict[str, tuple[Path, dict]], rows: list[tuple[str, str, str]], output: Path
                 ) -> list[str]:
    """What each stage took and made, and where its files are."""
    return [
        "## What ran",
        "",
        "| stage | time | what it made |",
        "|---|---|---|",
        *(f"| {name} | {t} | {what} |" for name, t, what in rows),
        "",
        "Sources: " + ", ".join(f"`{d.relative_to(output)}`" for d, _ in stages.values()) + ".",
    ]
