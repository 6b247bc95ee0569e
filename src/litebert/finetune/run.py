"""`litebert finetune | evaluate | predict`: runs over seeds, their output files, and scoring saved models.

An output directory of `litebert finetune --output OUT --seeds 1,2,3`:

    OUT/metrics.json           every seed's selection and reported metrics, and the median of each metric
    OUT/seed-N/model/          the best state (save_pretrained) + its tokenizer + finetune.json (task, length,
                               SQuAD 2.0 head and no-answer threshold): what `evaluate` / `predict` load
    OUT/seed-N/log.jsonl       training records and selection evaluations (+ tb/ for TensorBoard)
    OUT/seed-N/checkpoints/    the best state so far (a litebert checkpoint), kept through a crash
    OUT/seed-N/resume/         the newest resumable checkpoint while the seed runs: a rerun continues from it
    OUT/seed-N/result.json     the seed's metrics, written last (a rerun keeps finished seeds)
    OUT/seed-N/...             predictions (`write_predictions`):
        GLUE / movie-reviews   predictions/{split}.tsv (index<TAB>prediction, scoreable offline) and, for
        / your own texts       GLUE test files, submission/{CoLA,SST-2,...,MNLI-m,MNLI-mm,AX}.tsv
        CoNLL tagging          predictions/{split}.txt (word gold predicted, as conlleval reads it)
        SQuAD                  predictions.json {qid: answer} (+ null_odds.json {qid: odds} for v2.0)
        RACE                   predictions_{split}.json {guid: "A".."D"}
    OUT/submission/            the GLUE submission files of the seed that scored best on the SELECTION split
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from litebert import calibrate
from litebert import distributed as D
from litebert import metrics
from litebert.config import AlbertConfig, fields
from litebert.config.pretrain import ParallelConfig
from litebert.convert import check_model_directory
from litebert.export import BACKENDS, backend_model, check_backend
from litebert.files import write_json_atomic, write_text_atomic
from litebert.finetune.evaluate import glue_submission, glue_submission_files, score_predictions, \
    write_glue_predictions
from litebert.finetune.readers import locate_files
from litebert.finetune.tasks import ConllFormat, Task, get_task
from litebert.finetune.train import HEADS, FinetuneConfig, FinetuneResult, Scored, encode_split, \
    Interrupted, finetune, load_task_data, main_metric, predict, read_eval_splits, score, split_name
from litebert.tokenizer import AlbertTokenizer, has_tokenizer

FINETUNE_FILE = "finetune.json"
RESULT_FILE = "result.json"
"""A seed's metrics, written last: its presence means the seed finished (a rerun keeps it)."""
"""Written next to a fine-tuned model: what `evaluate` and `predict` need besides the weights."""


def load_tokenizer(path: str | Path):
    """An ALBERT SentencePiece or BERT WordPiece tokenizer from a directory (e.g. the model's own)."""
    return AlbertTokenizer.from_pretrained(path)


def run_seeds(task: Task | str, model_source: str | Path | AlbertConfig, tokenizer, data_dir: str | Path,
              output: str | Path, config: FinetuneConfig, seeds: list[int], resume: bool = True) -> dict[str, Any]:
    """Fine-tune once per seed on the same data; write every seed's directory and OUT/metrics.json.

    With `resume`, an interrupted run continues where it stopped: finished seeds are kept (their result.json),
    an unfinished one resumes from its newest resumable checkpoint; without it, seed directories start over.
    Returns the metrics.json content: per seed, and the median over seeds of every metric.
    """
    task = get_task(task) if isinstance(task, str) else task
    with D.joined(ParallelConfig(), config.device) as world:  # a single process outside torchrun
        return _run_seeds(task, model_source, tokenizer, data_dir, Path(output), config, seeds, resume, world)


def _run_seeds(task: Task, model_source, tokenizer, data_dir, output: Path, config: FinetuneConfig,
               seeds: list[int], resume: bool, world: D.World) -> dict[str, Any]:
    data = load_task_data(task, data_dir, config)
    task = data.task
    if world.is_main:
        for report in data.reports:
            print(report.summary(), file=sys.stderr)
    runs: dict[str, dict[str, Any]] = {}
    best_seed, best_score = None, None
    for seed in seeds:
        seed_dir = output / f"seed-{seed}"
        done = None  # rank 0 decides whether the seed finished before (and tells the others what it found)
        if world.is_main:
            if not resume:
                shutil.rmtree(seed_dir, ignore_errors=True)
            if (seed_dir / RESULT_FILE).is_file():  # finished before an interruption: its files are all written
                done = json.loads((seed_dir / RESULT_FILE).read_text())
                print(f"seed {seed}: done earlier ({seed_dir / RESULT_FILE})", file=sys.stderr)
        done = D.broadcast_object(world, done)
        if done is not None:
            runs[str(seed)] = done
        else:
            result = finetune(task, model_source, tokenizer, data, config, seed, run_dir=seed_dir, world=world)
            runs[str(seed)] = run_record(result)
            if world.is_main:
                save_model(result, tokenizer, seed_dir / "model", config)
                write_predictions(task, result.predictions, seed_dir)
                write_json_atomic(seed_dir / RESULT_FILE, runs[str(seed)])  # last: marks the seed as done
                print(f"seed {seed}: best step {result.best_step}/{result.steps}, selection "
                      f"{metrics.describe(result.selection)}; reported {metrics.describe(result.reported)}",
                      file=sys.stderr)
        if best_score is None or main_metric(task, runs[str(seed)]["selection"]) > best_score:
            best_seed, best_score = seed, main_metric(task, runs[str(seed)]["selection"])
    summary = {
        "task": task.name, "model": str(model_source) if not isinstance(model_source, AlbertConfig) else "config",
        "selection_split": data.selection_name, "reported_splits": list(data.reported),
        "seeds": runs, "median": median_metrics(list(runs.values())),
        "best_seed_by_selection": best_seed, "config": dataclasses.asdict(config),
    }
    if world.is_main:
        if (output / f"seed-{best_seed}" / "submission").is_dir():
            shutil.copytree(output / f"seed-{best_seed}" / "submission", output / "submission", dirs_exist_ok=True)
        write_json_atomic(output / "metrics.json", summary, default=str)
    return summary


def run_record(result: FinetuneResult) -> dict[str, Any]:
    return {"best_step": result.best_step, "steps": result.steps, "selection": result.selection,
            "reported": result.reported, "null_threshold": result.null_threshold,
            "train_seconds": result.train_seconds, "total_seconds": result.total_seconds,
            "train_examples_per_s": result.train_examples_per_s}


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """{"selection": {metric: median}, "reported": {split: {metric: median}}} over the runs."""
    def med(dicts: list[dict[str, float]]) -> dict[str, float]:
        return {k: statistics.median(d[k] for d in dicts) for k in dicts[0]}
    splits = runs[0]["reported"]
    return {"selection": med([r["selection"] for r in runs]),
            "reported": {s: med([r["reported"][s] for r in runs]) for s in splits}}


def save_model(result: FinetuneResult, tokenizer, directory: Path, config: FinetuneConfig) -> None:
    """The best state, its tokenizer and finetune.json, so that the directory alone can predict."""
    result.model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    settings = {"task": result.task.name, "max_seq_length": config.max_seq_length or result.task.hparams.max_seq_length,
                "squad2_head": config.squad2_head, "null_threshold": result.null_threshold,
                "doc_stride": config.doc_stride, "max_query_length": config.max_query_length,
                "n_best_size": config.n_best_size, "max_answer_length": config.max_answer_length}
    if isinstance(result.task.format, ConllFormat):  # the tag column this model was trained on
        settings.update(label_column=result.task.format.label_column)
    if not get_task(result.task.name).labels and result.task.labels:  # a generic row: the data's labels
        settings.update(labels=list(result.task.labels))
    write_json_atomic(directory / FINETUNE_FILE, settings)


def write_predictions(task: Task, predictions: dict[str, Scored], directory: Path) -> list[Path]:
    """Write every split's predictions in the task's official format (module docstring); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    submissions = {t.path: t.submission for t in task.test_files}
    for name, scored in predictions.items():
        guids, values = list(scored.predictions), list(scored.predictions.values())
        if task.kind == "span":
            written.append(_write_json(directory / "predictions.json", scored.predictions))
            if scored.null_odds:
                written.append(_write_json(directory / "null_odds.json", scored.null_odds))
        elif task.kind == "token_classification":
            path = directory / "predictions" / f"{name.replace('/', '_')}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, conll_lines(scored.predictions))
            written.append(path)
        elif task.kind == "multiple_choice":
            letters = {g: task.labels[v] for g, v in scored.predictions.items()}
            written.append(_write_json(directory / f"predictions_{name}.json", letters))
        else:
            path = (directory / "submission" / submissions[name] if submissions.get(name)
                    else directory / "predictions" / f"{split_name(name).replace('/', '_')}.tsv")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_glue_predictions(str(path), task, guids, values)
            written.append(path)
    return written


def conll_lines(predictions: dict[str, list[list[str | None]]]) -> str:
    """Per-token predictions in CoNLL layout: `word gold predicted` (`word predicted` without gold), a blank
    line after each sentence (conlleval reads this directly)."""
    out = []
    for rows in predictions.values():
        out.extend(" ".join(x for x in row if x is not None) for row in rows)
        out.append("")
    return "\n".join(out) + "\n"


def _write_json(path: Path, data: dict) -> Path:
    write_json_atomic(path, data)
    return path


# ---------------------------------------------------------------------------------------------- saved models
SAVED_CONFIG_FIELDS = ("max_seq_length", "squad2_head", "doc_stride", "max_query_length", "n_best_size",
                       "max_answer_length")
"""The FinetuneConfig fields `save_model` keeps in finetune.json: how the model reads and decodes its inputs."""


def finetune_settings(model_dir: str | Path) -> dict | None:
    """The finetune.json `save_model` wrote into a model directory, or None for a model not fine-tuned here."""
    path = Path(model_dir) / FINETUNE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def saved_config(settings: dict) -> FinetuneConfig:
    """The FinetuneConfig of finetune.json's settings (SAVED_CONFIG_FIELDS; the defaults for those absent)."""
    return FinetuneConfig(**{k: settings[k] for k in SAVED_CONFIG_FIELDS if k in settings})


def load_finetuned(model_dir: str | Path) -> tuple[Task, Any, Any, FinetuneConfig, float | None]:
    """(task, model, tokenizer, config, null threshold) of a directory written by `save_model`."""
    model_dir = Path(model_dir)
    settings = finetune_settings(model_dir)
    if settings is None:
        raise FileNotFoundError(f"{model_dir / FINETUNE_FILE}: not found; pass a seed's model/ directory written by "
                                f"finetune")
    task = get_task(settings["task"])
    if "label_column" in settings:  # a tagging model: its own tag column
        task = dataclasses.replace(task, format=ConllFormat(settings["label_column"]))
    if "labels" in settings:  # a generic row: the labels it was trained on
        task = dataclasses.replace(task, labels=tuple(settings["labels"]))
    config = saved_config(settings)
    model = HEADS[task.kind].from_pretrained(model_dir)
    return task, model, load_tokenizer(model_dir), config, settings["null_threshold"]


def predict_files(model_dir: str | Path, data_dir: str | Path, split: str | None = None,
                  config_overrides: dict[str, Any] | None = None, backend: str = "torch"
                  ) -> tuple[Task, dict[str, Scored]]:
    """Scores (labelled splits) and predictions of a fine-tuned model on the task's evaluation files
    (the reported splits and unlabelled test files, or only `split`), with its saved no-answer threshold.

    `backend` (`export.BACKENDS`): "torch" as trained, or on the CPU its int8 form or its ONNX export, which is
    how a deployment would run it (int8 is faster and a little less accurate: benchmarks/bench_int8_accuracy.py).
    """
    task, model, tokenizer, config, threshold = load_finetuned(model_dir)
    config = dataclasses.replace(config, **(config_overrides or {}))
    check_backend(backend, config.device, config.bf16)
    task = locate_files(task, data_dir)
    reported, unlabelled = read_eval_splits(task, data_dir)
    splits = {**reported, **unlabelled}
    if split is not None:
        if split not in splits:
            raise ValueError(f"no split {split!r} for {task.name}; splits: {', '.join(splits)}")
        splits = {split: splits[split]}
    if backend == "torch":
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        precision = calibrate.precision_choice(device, config.bf16, model.config, config.eval_batch_size or 64,
                                               config.max_seq_length or model.config.max_position_embeddings, "infer")
        calibrate.apply_choice(precision)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision["bf16"] else nullcontext()
        model.to(device)
    else:
        model, device, autocast = backend_model(model, backend), torch.device("cpu"), nullcontext()
    results = {}
    for name, examples in splits.items():
        encoded = encode_split(task, examples, tokenizer, config.max_seq_length, config)
        outputs = predict(model, encoded, config.eval_batch_size or 64, config.padding, device, autocast)
        results[name] = score(task, encoded, outputs, config, threshold, labelled=name in reported)
    return task, results


# ---------------------------------------------------------------------------------------------- CLI
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("finetune", help="fine-tune on a GLUE / SQuAD / RACE / movie-reviews / CoNLL NER task, "
                                               "or on your own labelled texts",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name (cola, sst-2, ..., squad2.0, race, movie-reviews); "
                   "your own data: text-classification, multi-label-classification, text-regression, "
                   "token-classification")
    p.add_argument("--data-dir", required=True, help="the benchmark's root directory (e.g. glue_data/); for "
                   "your own texts a directory with train and dev (+ test) .csv/.tsv/.jsonl/.json files with columns "
                   "text (or sentence, sentence1), label, optionally text_pair (sentence2) and id; a multi-label "
                   "label is a JSON list or names separated by commas")
    p.add_argument("--model", required=True, help="checkpoint directory, or a preset name for random init")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the model directory)")
    p.add_argument("--seeds", default="1", help="comma-separated run seeds (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write into an output directory with results")
    _add_config_args(p)
    p.set_defaults(func=_finetune_command)

    p = subparsers.add_parser("evaluate", help="score a fine-tuned model, or saved predictions offline")
    p.add_argument("--task", help="task name (offline mode; a model directory knows its task)")
    p.add_argument("--model", help="a seed's model/ directory written by finetune")
    p.add_argument("--data-dir", help="with --model: the benchmark's root directory")
    p.add_argument("--split", help="with --model: one split (default: the task's reported splits)")
    p.add_argument("--data-file", help="offline: labelled dev TSV / SQuAD JSON / RACE split directory")
    p.add_argument("--predictions", help="offline: predictions file (GLUE TSV, SQuAD JSON, RACE JSON)")
    p.add_argument("--na-probs", help="offline, SQuAD 2.0: no-answer odds JSON {qid: score}")
    _add_inference_args(p)
    p.set_defaults(func=_evaluate_command)

    p = subparsers.add_parser("glue-submission", help="zip GLUE test predictions for the GLUE server (AX included)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finetune output directories (or submission/ folders)")
    p.add_argument("--output", required=True, help="the zip to write, e.g. glue_submission.zip")
    p.add_argument("--allow-missing", action="store_true", help="write a partial zip (the server will refuse it)")
    p.set_defaults(func=_glue_submission_command)

    p = subparsers.add_parser("predict", help="write predictions / GLUE submission files of a fine-tuned model")
    p.add_argument("--model", required=True, help="a seed's model/ directory written by finetune")
    p.add_argument("--data-dir", required=True, help="the benchmark's root directory")
    p.add_argument("--output", required=True, help="directory for the prediction files")
    p.add_argument("--split", help="one split (default: every evaluation and test file)")
    _add_inference_args(p)
    p.set_defaults(func=_predict_command)


def _add_inference_args(p: argparse.ArgumentParser) -> None:
    """How a saved model runs (not what it predicts): batch size, bf16, device, SQuAD decoding."""
    g = p.add_argument_group("inference (with --model)")
    g.add_argument("--batch-size", type=int, dest="eval_batch_size", default=argparse.SUPPRESS,
                   help="examples per forward pass (default 64)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                   help="bf16 autocast (default: the run's setting; unset, where it measures faster: "
                        "litebert.calibrate)")
    g.add_argument("--device", default=argparse.SUPPRESS, help="cpu or cuda (default: cuda when available)")
    g.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch-int8: the encoder's matmuls in int8 on the CPU (faster; may change a few "
                        "predictions: litebert.quantize); onnxruntime / onnxruntime-int8: the model's ONNX export "
                        "(made once, cached), scored as deployed")
    g.add_argument("--n-best-size", type=int, dest="n_best_size", default=argparse.SUPPRESS,
                   help="SQuAD: start/end candidates per window")
    g.add_argument("--max-answer-length", type=int, dest="max_answer_length", default=argparse.SUPPRESS,
                   help="SQuAD: longest answer in pieces")


INFERENCE_FIELDS = ("eval_batch_size", "bf16", "device", "n_best_size", "max_answer_length")


def _inference_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in INFERENCE_FIELDS if hasattr(args, k)}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """The common hyper-parameters as short flags; every FinetuneConfig field also as --FIELD=VALUE."""
    S = argparse.SUPPRESS  # flags not given leave FinetuneConfig's value (None: the task row's)
    g = p.add_argument_group("hyper-parameters (default: the task row's)")
    g.add_argument("--optimizer", choices=("adamweightdecay", "adamw"), dest="optimizer", default=S,
                   help="adamweightdecay: the official run scripts' (default); adamw: torch's, bias-corrected")
    g.add_argument("--lr", type=float, dest="learning_rate", default=S)
    g.add_argument("--batch-size", type=int, dest="batch_size", default=S,
                   help="examples per optimizer step (default: the task row's)")
    g.add_argument("--accumulate", type=int, dest="accumulate", default=S,
                   help="micro-batches per step: batch-size / accumulate examples per forward pass")
    g.add_argument("--max-seq-length", type=int, dest="max_seq_length", default=S)
    g.add_argument("--max-steps", type=int, dest="max_steps", default=S)
    g.add_argument("--epochs", type=float, dest="num_epochs", default=S)
    g.add_argument("--warmup-steps", type=int, dest="warmup_steps", default=S)
    g.add_argument("--weight-decay", type=float, dest="weight_decay", default=S)
    g.add_argument("--eval-every", type=int, dest="eval_every", default=S,
                   help="steps between selection evaluations (default: 10 per run)")
    g.add_argument("--save-every", type=int, dest="save_every", default=S,
                   help="steps between resumable checkpoints (default: at each evaluation; 0: none)")
    g.add_argument("--eval-batch-size", type=int, dest="eval_batch_size", default=S)
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, dest="bf16", default=S,
                   help="bf16 autocast (default: where it measures faster here, see litebert.calibrate)")
    g.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction,
                   dest="activation_checkpointing", default=S,
                   help="recompute the blocks' activations in backward: far less memory, ~30%% more time")
    g.add_argument("--padding", choices=("bucket", "fixed"), dest="padding", default=S,
                   help="length-bucketed batches (default) or every batch at max-seq-length")
    g.add_argument("--selection-fraction", type=float, dest="selection_fraction", default=S,
                   help="tasks with hidden test labels: fraction of train held out for model selection")
    g.add_argument("--selection-seed", type=int, dest="selection_seed", default=S)
    g.add_argument("--squad2-head", choices=("null-score", "answerability"), dest="squad2_head", default=S)
    g.add_argument("--doc-stride", type=int, dest="doc_stride", default=S)
    g.add_argument("--max-query-length", type=int, dest="max_query_length", default=S)
    g.add_argument("--n-best-size", type=int, dest="n_best_size", default=S)
    g.add_argument("--max-answer-length", type=int, dest="max_answer_length", default=S)
    g.add_argument("--label-column", type=int, dest="label_column", default=S,
                   help="token classification: the column holding the tag (default: the last)")
    g.add_argument("--device", dest="device", default=S)
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, dest="progress", default=S,
                   help="progress bar (default on)")
    fields.add_config_arguments(p, FinetuneConfig)


def _config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """FinetuneConfig's defaults (with the progress bar on), then --config FILE, then the flags given."""
    return fields.config_from_args(FinetuneConfig, args, base=FinetuneConfig(progress=True))


def _finetune_command(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    output = Path(args.output)
    if (output / "metrics.json").exists() and not args.overwrite:
        raise FileExistsError(f"{output}/metrics.json exists; pass --overwrite or another --output")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if not seeds:
        raise ValueError("--seeds names no seed")
    is_dir = os.path.isdir(args.model)
    if not is_dir and args.tokenizer is None:
        raise ValueError(f"--model {args.model!r} is not a directory: a preset needs --tokenizer DIR")
    if is_dir:
        check_model_directory(Path(args.model))  # before its tokenizer: given a run, the error says where the model is
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    if is_dir and args.tokenizer:
        _warn_if_not_the_models_tokenizer(tokenizer, Path(args.model))
    try:
        summary = run_seeds(task, args.model, tokenizer, args.data_dir, output, _config_from_args(args), seeds,
                            resume=not args.overwrite)
    except Interrupted as stopped:  # pre-emption: a clean stop, resumed by rerunning the command
        print(f"litebert finetune: {stopped}; rerun the same command to resume", file=sys.stderr)
        return 0
    print(json.dumps(summary["median"], indent=2))
    return 0


def _warn_if_not_the_models_tokenizer(tokenizer, model_dir: Path) -> None:
    """A --tokenizer other than the one saved with the model maps text to ids the model never learned; a
    larger one is refused by `build_model`, a smaller one would train without complaint."""
    if not has_tokenizer(model_dir):
        return
    config = model_dir / "config.json"
    if config.is_file() and tokenizer.vocab_size > json.loads(config.read_text()).get("vocab_size", 0):
        return  # build_model refuses it, naming why
    own = load_tokenizer(model_dir).fingerprint()
    if own != tokenizer.fingerprint():
        print(f"litebert finetune: warning: --tokenizer differs from the tokenizer saved with {model_dir} "
              f"(fingerprint {tokenizer.fingerprint()[:12]}, the model's {own[:12]}): its ids will not mean what "
              f"the model learned", file=sys.stderr)


def _evaluate_command(args: argparse.Namespace) -> int:
    if args.model:
        _, results = predict_files(args.model, _required(args, "data_dir"), args.split, _inference_overrides(args),
                                   args.backend)
        print(json.dumps({name: s.metrics for name, s in results.items() if s.metrics}, indent=2))
        return 0
    task = _required(args, "task")
    for path in (_required(args, "data_file"), _required(args, "predictions"), args.na_probs):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
    print(json.dumps(score_predictions(task, args.data_file, args.predictions, args.na_probs), indent=2))
    return 0


def _glue_submission_command(args: argparse.Namespace) -> int:
    names = glue_submission(args.runs, args.output, allow_missing=args.allow_missing)
    missing = sorted(set(glue_submission_files()) - set(names))
    print(f"wrote {args.output}: {', '.join(names)}" + (f"; missing {', '.join(missing)}" if missing else ""))
    return 0


def _predict_command(args: argparse.Namespace) -> int:
    task, results = predict_files(args.model, args.data_dir, args.split, _inference_overrides(args), args.backend)
    for path in write_predictions(task, results, Path(args.output)):
        print(path)
    return 0


def _required(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    if value is None:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{flag} is required here (evaluate needs --model and --data-dir, or --task, "
                         f"--data-file and --predictions)")
    return value
