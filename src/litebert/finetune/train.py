"""The fine-tuning loop: one loop for classification, regression, multiple choice and span extraction.

    data      load_task_data: the task's files -> train / selection / reported (+ unlabelled test) examples
    encode    encode_split: examples -> padded tensors (SQuAD: overlapping windows), once per split
    model     build_model: the task's head on a checkpoint directory, a preset name or an AlbertConfig
    loop      AdamWeightDecay (the official run scripts' optimizer; torch AdamW as an option), linear warmup +
              linear decay, clip 1.0, bf16 autocast; each step is `litebert.step`'s, as pretraining's,
              length-bucketed batches; every `eval_every` steps score the SELECTION split, keep the best state
    report    the best state is scored once on the REPORTED split(s) and predicts the unlabelled test files

Honest reporting: the model (step) and the SQuAD 2.0 no-answer threshold are chosen on the selection split
only. Which split plays which role is the task row's `test_labelled` (see `finetune.tasks`): GLUE and SQuAD
report on dev and select on a held-out slice of train (`selection_fraction`, fixed by `selection_seed`, the
same slice for every run seed); RACE and movie-reviews select on dev and report on test.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from litebert import calibrate
from litebert import checkpoint as ckpt
from litebert import distributed as D
from litebert import hardware
from litebert import metrics
from litebert import step as S
from litebert.config import AlbertConfig, FinetuneConfig, fields
from litebert.config.pretrain import ParallelConfig
from litebert.finetune import batching
from litebert.finetune.readers import Example, ReadReport, SquadExample, TokenExample, encode_choice_examples, \
    encode_pair_examples, encode_token_examples, locate_files, read_examples
from litebert.finetune.squad import SquadConfig, SquadFeature, answerability_tensors, \
    build_features, choose_null_threshold, decode_beam_predictions, decode_predictions, features_to_tensors
from litebert.finetune.tasks import SquadFormat, TableFormat, Task, get_task, task_metrics, with_labels_from
from litebert.model import AlbertForMultipleChoice, AlbertForQuestionAnswering, \
    AlbertForSequenceClassification, AlbertForTokenClassification, AlbertPreTrainedModel
from litebert.optim import OptimConfig, build_optimizer, learning_rate, set_learning_rate
from litebert.runlog import RunLog

HEADS = {"classification": AlbertForSequenceClassification, "regression": AlbertForSequenceClassification,
         "multi_label": AlbertForSequenceClassification, "multiple_choice": AlbertForMultipleChoice,
         "span": AlbertForQuestionAnswering, "token_classification": AlbertForTokenClassification}
LABEL_KEYS = ("labels", "start_positions", "end_positions", "is_impossible")


@dataclass
class TaskData:
    """A task's examples by role. Split names are the files' short names ("dev", "dev_matched", "test")."""

    task: Task
    """The row as this data set has it (`resolve_task`: its files, and a generic row's labels)."""
    train: list[Example]
    selection: list[Example]
    selection_name: str
    """"dev", or "train-heldout" for the held-out slice of train."""
    reported: dict[str, list[Example]]
    unlabelled: dict[str, list[Example]] = field(default_factory=dict)
    """Test files without labels (GLUE), by their path in the task row: predicted, never scored."""
    reports: list[ReadReport] = field(default_factory=list)


@dataclass
class EncodedSplit:
    """A split as model inputs: `tensors` rows are examples (N, T) / (N, C, T), or SQuAD windows (F, T)."""

    examples: list[Example]
    tensors: dict[str, torch.Tensor]
    max_seq_length: int
    pad_token_id: int
    features: list[SquadFeature] | None = None
    word_starts: list[np.ndarray] | None = None
    """Token classification: each sentence's first-piece positions (W,), where its words' tags are read."""
    truncated: dict[str, int] = field(default_factory=dict)
    """What encoding had to cut, counted (reported in the run's log): "words" past max_seq_length (token
    classification: predicted "O"), "questions" longer than max_query_length (SQuAD: their first pieces kept)."""

    @property
    def lengths(self) -> np.ndarray:
        return batching.lengths_of(self.tensors)


@dataclass
class Scored:
    """Metrics of a labelled split (empty for an unlabelled one) and its predictions by example id:
    label id / score / option id, or answer text ("" = no answer); `null_odds` for SQuAD 2.0."""

    metrics: dict[str, float]
    predictions: dict[str, int | float | str]
    null_odds: dict[str, float] = field(default_factory=dict)
    null_threshold: float | None = None


@dataclass
class FinetuneResult:
    """What one run gives back: the best model (by the selection metric), its scores and its predictions."""

    task: Task
    seed: int
    model: AlbertPreTrainedModel
    best_step: int
    steps: int
    selection: dict[str, float]
    """Metrics of the best step on the selection split (what chose it)."""
    reported: dict[str, dict[str, float]]
    """Metrics of the best state on each reported split."""
    predictions: dict[str, Scored]
    """Scored/predicted outputs of every reported and unlabelled split, by split name."""
    null_threshold: float | None
    train_seconds: float
    total_seconds: float
    train_examples_per_s: float
    history: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------- data
def split_name(path: str) -> str:
    """Short name of a task file: "MNLI/dev_matched.tsv" -> "dev_matched", "FILE#test" -> "test"."""
    if "#" in path:
        return path.rpartition("#")[2]
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0]


def load_task_data(task: Task | str, data_dir: str | Path, config: FinetuneConfig | None = None) -> TaskData:
    """Read every file of `task` under `data_dir` and assign the train / selection / reported roles.

    `data_dir` may also be a file inside it (e.g. what `fetch_movie_reviews` returns). A missing file
    raises FileNotFoundError naming it.
    """
    task = get_task(task) if isinstance(task, str) else task
    data_dir = Path(data_dir).parent if Path(data_dir).is_file() else data_dir
    config = config or FinetuneConfig()
    reports: list[ReadReport] = []
    task = with_labels_from(locate_files(task, data_dir), [], config.label_column)
    train = _read(task, data_dir, task.train_file, reports, labelled=True)
    task = resolve_task(task, train, config)  # a generic row takes its labels from train
    if task.test_labelled:
        selection = _read(task, data_dir, task.dev_files[0], reports, labelled=True)
        selection_name = "dev"
    else:
        group = (lambda e: e.context) if isinstance(task.format, SquadFormat) else None
        train, selection = held_out_slice(train, config.selection_fraction, config.selection_seed, group)
        selection_name = "train-heldout"
    reported, unlabelled = read_eval_splits(task, data_dir, reports)
    return TaskData(task, train, selection, selection_name, reported, unlabelled, reports)


def resolve_task(task: Task, train: list[Example], config: FinetuneConfig) -> Task:
    """The row as this data set has it: for token classification, the tag column and (generic row) the tag
    set of the training examples; for the generic text-classification row, the training labels."""
    if task.kind == "token_classification":
        return with_labels_from(task, [t for e in train for t in (e.tags or ())], config.label_column)
    if task.kind == "classification" and not task.labels:
        task = with_labels_from(task, [e.label for e in train])
        if len(task.labels) < 2:
            raise ValueError(f"{task.train_file}: {task.name} needs two or more labels, found {list(task.labels)}")
    if task.kind == "multi_label" and not task.labels:
        task = with_labels_from(task, [name for e in train for name in e.label])
        if not task.labels:
            raise ValueError(f"{task.train_file}: no example of {task.name} has a label")
    return task


def read_eval_splits(task: Task, data_dir: str | Path, reports: list[ReadReport] | None = None
                     ) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
    """(reported splits by short name, unlabelled test files by path): dev where test labels are hidden
    (with the GLUE test files to predict), else test."""
    reports = [] if reports is None else reports
    if task.test_labelled:
        return {split_name(t.path): _read(task, data_dir, t.path, reports, labelled=True) for t in task.test_files}, {}
    reported = {split_name(p): _read(task, data_dir, p, reports, labelled=True) for p in task.dev_files}
    return reported, {t.path: _read(task, data_dir, t.path, reports) for t in task.test_files}


def _read(task: Task, data_dir: str | Path, relative: str, reports: list[ReadReport],
          labelled: bool = False) -> list[Example]:
    """The examples of one task file; with `labelled`, a file without labels (train, selection and reported
    splits need them) is an error naming it."""
    path = os.path.join(str(data_dir), relative)
    if not os.path.exists(path.rpartition("#")[0] if "#" in relative else path):
        raise FileNotFoundError(f"{path}: {task.name} file not found (is the data directory the benchmark's root?)")
    examples, report = read_examples(task, path)
    reports.append(report)
    if labelled and any((e.tags if isinstance(e, TokenExample) else getattr(e, "label", 0)) is None
                        for e in examples):
        column = f"a '{task.format.label}' column" if isinstance(task.format, TableFormat) else "labels"
        raise ValueError(f"{path}: no labels; training, selection and scored files need {column}")
    return examples


def held_out_slice(examples: list[Example], fraction: float, seed: int,
                   group: Callable[[Example], str] | None = None) -> tuple[list[Example], list[Example]]:
    """(rest, held out): a seeded random `fraction` of the groups (default: each example its own group),
    at least one, and at least one left to train on. Both keep the file order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"selection fraction must be in (0, 1), got {fraction}")
    keys = [group(e) if group else i for i, e in enumerate(examples)]
    groups = list(dict.fromkeys(keys))
    if len(groups) < 2:
        raise ValueError(f"cannot hold out a selection slice from {len(groups)} training group(s)")
    rng = np.random.default_rng(seed)
    n_held = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    held = {groups[i] for i in rng.permutation(len(groups))[:n_held]}
    rest = [e for e, k in zip(examples, keys) if k not in held]
    return rest, [e for e, k in zip(examples, keys) if k in held]


# ---------------------------------------------------------------------------------------------- encoding
def squad_config(config: FinetuneConfig, max_seq_length: int) -> SquadConfig:
    return SquadConfig(max_seq_length=max_seq_length, doc_stride=config.doc_stride,
                       max_query_length=config.max_query_length, n_best_size=config.n_best_size,
                       max_answer_length=config.max_answer_length)


def encode_split(task: Task, examples: list[Example], tokenizer, max_seq_length: int,
                 config: FinetuneConfig) -> EncodedSplit:
    """Tokenize a split once. Rows are trimmed to the split's longest (the batches pad again as needed),
    and encoded in chunks, so a large split never exists at full `max_seq_length` width in memory."""
    if task.kind == "span":
        counts: dict[str, int] = {}
        features = build_features(examples, tokenizer, squad_config(config, max_seq_length), counts)
        tensors = features_to_tensors(features)
        if uses_answerability(task, config):
            tensors.update(answerability_tensors(features))
        return EncodedSplit(examples, _trim(tensors), max_seq_length, tokenizer.pad_token_id, features,
                            truncated=counts)
    if task.kind == "token_classification":
        tensors, starts, cut = encode_token_examples(examples, task, tokenizer, max_seq_length)
        return EncodedSplit(examples, _trim(tensors), max_seq_length, tokenizer.pad_token_id, word_starts=starts,
                            truncated={"words": cut} if cut else {})
    encode = encode_choice_examples if task.kind == "multiple_choice" else encode_pair_examples
    chunks = [_trim(encode(examples[i:i + 4096], task, tokenizer, max_seq_length))
              for i in range(0, len(examples), 4096)]
    width = max(c["input_ids"].shape[-1] for c in chunks)
    sequence = batching.sequence_keys(chunks[0])
    tensors = {key: torch.cat([batching.fit_length(c[key], width, batching.fill_value(key, tokenizer.pad_token_id))
                               if key in sequence else c[key] for c in chunks])
               for key in chunks[0]}
    return EncodedSplit(examples, tensors, max_seq_length, tokenizer.pad_token_id)


def _trim(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the sequence tensors to the longest row (padding is always on the right)."""
    longest = max(1, int(batching.lengths_of(tensors).max()))
    sequence = batching.sequence_keys(tensors)
    return {k: v[..., :longest] if k in sequence else v for k, v in tensors.items()}


def uses_answerability(task: Task, config: FinetuneConfig) -> bool:
    return isinstance(task.format, SquadFormat) and task.format.version == "2.0" \
        and config.squad2_head == "answerability"


# ---------------------------------------------------------------------------------------------- model
def build_model(task: Task, source: str | Path | AlbertConfig, tokenizer,
                config: FinetuneConfig) -> AlbertPreTrainedModel:
    """The task's head on `source`: a checkpoint directory (a new head is initialised when it has none),
    a preset name or an AlbertConfig (random initialisation, vocabulary sized to the tokenizer)."""
    head = HEADS[task.kind]
    overrides: dict[str, Any] = dict(config.model_overrides)
    if task.kind in ("classification", "multi_label", "regression", "token_classification"):
        overrides["num_labels"] = task.num_labels
        if task.labels:
            overrides["id2label"] = dict(enumerate(task.labels))
    if task.kind == "multi_label":
        overrides["problem_type"] = "multi_label_classification"
    if task.kind == "span":
        overrides["qa_answerability"] = uses_answerability(task, config)
    if isinstance(source, AlbertConfig):
        model = head(source.replace(**overrides))
    elif Path(source).is_dir():
        try:
            model = head.from_pretrained(Path(source), **overrides)
        except ValueError as err:
            if "classifier" not in str(err) or "shape" not in str(err):
                raise
            labels = json.loads((Path(source) / "config.json").read_text()).get("num_labels", "?")
            raise ValueError(f"{source}: its classifier has {labels} labels, {task.name} needs {task.num_labels}: "
                             f"start from the pretrained model, not one fine-tuned for another task") from None
    else:
        model = head(AlbertConfig.preset(str(source), vocab_size=tokenizer.vocab_size, **overrides))
    if model.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary only "
                         f"{model.config.vocab_size}: pass the tokenizer the model was trained with")
    return model


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: AlbertPreTrainedModel, split: EncodedSplit, batch_size: int, padding: batching.Padding,
            device: torch.device, autocast) -> dict[str, np.ndarray]:
    """Raw head outputs for every row of `split`, in row order: `logits` (N, labels or C), or for spans
    `start_logits`/`end_logits` (F, T) (-1e30 past a row's batch) or the answerability head's beam outputs."""
    model.eval()
    out: dict[str, np.ndarray] = {}
    n = len(split.tensors["input_ids"])
    for index in batching.eval_batches(split.lengths, batch_size, padding):
        batch = batching.collate(split.tensors, index, padding, split.max_seq_length, split.pad_token_id)
        inputs = {k: v.to(device) for k, v in batch.items() if k not in LABEL_KEYS}
        with autocast:
            result = model(**inputs)
        for key in ("logits", "start_logits", "end_logits", "start_top_log_probs", "start_top_index",
                    "end_top_log_probs", "end_top_index", "cls_logits"):
            value = getattr(result, key, None)
            if value is None or (key in ("start_logits", "end_logits") and model.config.qa_answerability):
                continue
            value = value.float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
            if key not in out:
                # Span logits are batch-trimmed: rows are widened to the full length, padding never wins.
                per_token = key in ("start_logits", "end_logits") or value.ndim == 3  # (B, T) / (B, T, labels)
                shape = (n, split.max_seq_length, *value.shape[2:]) if per_token else (n, *value.shape[1:])
                out[key] = np.full(shape, -1e30 if value.dtype.kind == "f" else 0, dtype=value.dtype)
            if value.ndim == 1:
                out[key][index] = value
            else:
                out[key][index, :value.shape[1]] = value
    return out


def score(task: Task, split: EncodedSplit, outputs: dict[str, np.ndarray], config: FinetuneConfig,
          null_threshold: float | None = None, labelled: bool = True) -> Scored:
    """Predictions and (when `labelled`) metrics of a split. SQuAD 2.0 with `null_threshold=None` chooses the
    threshold on this split itself: call it so on the selection split only."""
    if task.kind == "span":
        return _score_spans(task, split, outputs, config, null_threshold)
    if task.kind == "token_classification":
        return _score_tokens(task, split, outputs, labelled)
    logits = outputs["logits"]
    guids = [e.guid for e in split.examples]
    if task.kind == "multi_label":  # every label whose sigmoid passes 0.5: (N, L) multi-hot
        values = (logits > 0).astype(np.int64)
        predictions = {g: tuple(np.flatnonzero(v).tolist()) for g, v in zip(guids, values)}
    else:
        values = logits[:, 0] if task.kind == "regression" else logits.argmax(-1)
        predictions = {g: (float(v) if task.kind == "regression" else int(v)) for g, v in zip(guids, values)}
    scores = {}
    if labelled:
        scores = task_metrics(task, values, split.tensors["labels"].numpy())
    return Scored(scores, predictions)


def _score_spans(task: Task, split: EncodedSplit, outputs: dict[str, np.ndarray], config: FinetuneConfig,
                 null_threshold: float | None) -> Scored:
    version = task.format.version
    sq = squad_config(config, split.max_seq_length)
    if "cls_logits" in outputs:
        decoded = decode_beam_predictions(split.examples, split.features, outputs["start_top_log_probs"],
                                          outputs["start_top_index"], outputs["end_top_log_probs"],
                                          outputs["end_top_index"], outputs["cls_logits"], sq)
    else:
        decoded = decode_predictions(split.examples, split.features, outputs["start_logits"],
                                     outputs["end_logits"], sq, version_2=version == "2.0")
    predictions: dict[str, str] = decoded.predictions
    if version == "2.0":
        if null_threshold is None:
            null_threshold = choose_null_threshold(split.examples, decoded)
        predictions = decoded.with_threshold(null_threshold)
    scores = metrics.evaluate_squad(squad_json(split.examples), predictions, None, version)
    return Scored(scores, dict(predictions), dict(decoded.null_odds), null_threshold)


def _score_tokens(task: Task, split: EncodedSplit, outputs: dict[str, np.ndarray], labelled: bool) -> Scored:
    """Each word's tag is the argmax at its first piece (words cut by truncation: "O"); predictions are
    [word, gold tag or None, predicted tag] rows per sentence, the CoNLL layout `write_predictions` writes."""
    ids = outputs["logits"].argmax(-1)  # (N, T)
    gold, predicted, predictions = [], [], {}
    for row, (example, starts) in enumerate(zip(split.examples, split.word_starts)):
        tags = [task.labels[i] for i in ids[row, starts]] + ["O"] * (len(example.words) - len(starts))
        golds = example.tags if example.tags is not None else [None] * len(tags)
        predictions[example.guid] = [[w, g, t] for w, g, t in zip(example.words, golds, tags)]
        if labelled:
            gold.append(list(example.tags))
            predicted.append(tags)
    scores = metrics.evaluate_entities(gold, predicted) if labelled else {}
    return Scored({k: scores[k] for k in task.metrics} if labelled else {}, predictions)


def squad_json(examples: list[SquadExample]) -> dict:
    """The official SQuAD JSON layout of `examples` (what `metrics.evaluate_squad` reads)."""
    return {"data": [{"paragraphs": [{"context": e.context, "qas": [{
        "id": e.qid, "question": e.question, "is_impossible": e.is_impossible,
        "answers": [{"text": t, "answer_start": s} for t, s in e.answers]}]}]} for e in examples]}


def main_metric(task: Task, scores: dict[str, float]) -> float:
    """The selection metric (the row's first); NaN (e.g. Pearson of constant predictions) ranks lowest."""
    value = scores[task.metrics[0]]
    return -math.inf if math.isnan(value) else value


# ---------------------------------------------------------------------------------------------- the loop
def _step_forward(device: torch.device) -> S.Forward:
    """One training micro-batch's loss (`litebert.step`); its statistics: the examples it held."""
    def forward(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(**{k: v.to(device) for k, v in batch.items()})
        return out.loss, torch.tensor([float(len(batch["input_ids"]))], dtype=torch.float64)
    return forward


class Interrupted(Exception):
    """A run stopped by SIGTERM / SIGINT after writing a resumable checkpoint: rerunning resumes it."""


@dataclass
class LoopState:
    """Everything a fine-tuning run carries from step to step, saved in its resumable checkpoints."""

    step: int = 0
    batches_drawn: int = 0
    """Micro-batches taken from the (seeded) batch stream: a resumed run skips this many."""
    seen: int = 0
    train_seconds: float = 0.0
    window_loss: float = 0.0
    window_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_threshold: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    """The best weights (CPU); on disk in the seed's checkpoints/, not in the resumable checkpoint."""
    skipped: int = 0
    """Updates skipped for a non-finite loss or gradient."""


RESUME_FREE = ("progress", "device", "save_every", "activation_checkpointing")
"""FinetuneConfig fields that change how a run goes, not where it goes: a resumed run may differ in them."""


def run_settings(task: Task, model_source, config: FinetuneConfig, seed: int) -> dict[str, Any]:
    """What fixes a run's trajectory: a resumed run must match the saved one."""
    settings = {k: v for k, v in fields.to_dict(config).items() if k not in RESUME_FREE}
    return {"task": task.name, "labels": list(task.labels), "seed": seed, "settings": settings,
            "model": str(model_source) if not isinstance(model_source, AlbertConfig) else model_source.to_dict()}


def _resume_point(resume_dir: Path | None, world: D.World) -> ckpt.Checkpoint | None:
    """The newest resumable checkpoint, chosen by rank 0 and loaded by every rank (None: start)."""
    if resume_dir is None:
        return None
    def newest_loadable() -> str | None:  # a corrupt newest one is skipped with a warning (load_latest)
        latest = ckpt.load_latest(resume_dir)
        return str(latest.path) if latest is not None else None

    path = D.decided_by_rank0(world, newest_loadable)
    return ckpt.load_checkpoint(Path(path)) if path is not None else None


def save_loop(directory: Path, loop: LoopState, model, optimizer, settings: dict[str, Any]) -> None:
    """A resumable checkpoint of the run at `loop.step` (only the newest is kept)."""
    state = {k: v for k, v in dataclasses.asdict(loop).items() if k != "best_state"}
    ckpt.save_checkpoint(directory, loop.step, model.state_dict(),
                         {"loop": state, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                          "run": settings})
    ckpt.prune(directory, keep_last=1)


def restore_loop(saved: ckpt.Checkpoint, model, optimizer, settings: dict[str, Any],
                 best_dir: Path | None) -> LoopState:
    """Model, optimizer and RNG back to a resumable checkpoint; the loop state (the best weights read from
    the best checkpoint). A checkpoint of another run is refused, naming what differs."""
    if saved.state["run"] != settings:
        changed = sorted(k for k in settings if saved.state["run"].get(k) != settings[k])
        raise ValueError(f"{saved.path} belongs to a run with other {', '.join(changed)}: pass --overwrite to "
                         f"start over, or another --output")
    model.load_state_dict(saved.model)
    optimizer.load_state_dict(saved.state["optimizer"])
    torch.set_rng_state(saved.state["torch_rng"])
    if saved.state["cuda_rng"]:
        torch.cuda.set_rng_state_all(saved.state["cuda_rng"])
    loop = LoopState(**saved.state["loop"])
    if loop.best_step:
        best = ckpt.load_checkpoint(ckpt.checkpoint_path(best_dir, loop.best_step))
        loop.best_state = best.model
    return loop


def save_best(directory: Path, loop: LoopState, task: Task) -> None:
    """The best state so far as a checkpoint (`litebert.checkpoint`: atomic, verified on load), marked best;
    earlier ones are removed, so a crash leaves the best weights on disk."""
    ckpt.save_checkpoint(directory, loop.best_step, loop.best_state,
                         {"selection": loop.best_metrics, "null_threshold": loop.best_threshold})
    ckpt.write_best(directory, loop.best_step, task.metrics[0], loop.best_score)
    ckpt.prune(directory, keep_last=1)


def resolve_schedule(task: Task, config: FinetuneConfig, num_train: int, batch_size: int) -> tuple[int, int]:
    """(total steps, warmup steps): explicit steps, else epochs, else the row; warmup keeps the row's ratio."""
    hp = task.hparams
    steps_per_epoch = math.ceil(num_train / batch_size)
    row_total, row_warmup = hp.schedule(steps_per_epoch)
    if config.max_steps is not None:
        total = config.max_steps
    elif config.num_epochs is not None:
        total = math.ceil(config.num_epochs * steps_per_epoch)
    else:
        total = row_total
    warmup = config.warmup_steps if config.warmup_steps is not None else int(total * row_warmup / max(row_total, 1))
    if total < 1 or not 0 <= warmup <= total:
        raise ValueError(f"need at least 1 step and 0 <= warmup <= steps, got {total} steps, {warmup} warmup")
    return total, warmup


def finetune(task: Task | str, model_source: str | Path | AlbertConfig, tokenizer, data: TaskData,
             config: FinetuneConfig, seed: int, run_dir: str | Path | None = None,
             world: D.World | None = None) -> FinetuneResult:
    """Fine-tune `model_source` on `data` with run seed `seed`; the best state by the selection metric is
    scored on the reported split(s) and predicts the unlabelled ones.

    torch's global RNG (a new head's initialisation, dropout) is seeded from `seed` inside `fork_rng`, so
    the caller's RNG state is left as it was; batch order uses its own numpy generator.

    Under torchrun (`world` from `distributed.joined`), every rank draws the same batches and takes
    its share of each (DDP averages the gradients: the global batch's), every rank scores the selection split
    (so all take the same decisions), and rank 0 alone writes the run's files.
    """
    name = task if isinstance(task, str) else task.name
    if name.lower() != data.task.name:
        raise ValueError(f"finetune: task {name!r}, but the data was read for {data.task.name!r}")
    task = data.task
    world = world or D.World(device=torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    with torch.random.fork_rng(devices=[] if world.device.type == "cpu" else [world.device]):
        torch.manual_seed(seed)
        return _finetune(task, model_source, tokenizer, data, config, seed, world,
                         Path(run_dir) if run_dir is not None else None)


@dataclass(frozen=True)
class Sizes:
    """A run's batch and length settings: the config's where given, else the task row's."""

    lr: float
    batch_size: int
    micro_batch: int
    """Examples per forward pass: batch_size / accumulate, shared by the ranks."""
    max_seq_length: int
    eval_batch_size: int


def resolve_sizes(task: Task, config: FinetuneConfig, world: D.World) -> Sizes:
    hp = task.hparams
    batch_size = config.batch_size or hp.batch_size
    if config.accumulate < 1 or batch_size % config.accumulate:
        raise ValueError(f"batch size {batch_size} is not a multiple of accumulate {config.accumulate}")
    micro_batch = batch_size // config.accumulate
    if micro_batch < world.world_size:
        raise ValueError(f"micro-batch {micro_batch} (batch size / accumulate) is smaller than the {world.world_size} "
                         f"ranks sharing it")
    return Sizes(lr=config.learning_rate or hp.learning_rate, batch_size=batch_size, micro_batch=micro_batch,
                 max_seq_length=config.max_seq_length or hp.max_seq_length,
                 eval_batch_size=config.eval_batch_size or 2 * micro_batch)


@dataclass
class FinetuneRun:
    """One seed's run as `_finetune` builds it: what the loop's pieces below share."""

    task: Task
    config: FinetuneConfig
    world: D.World
    sizes: Sizes
    model: AlbertPreTrainedModel
    model_for_step: torch.nn.Module
    """DDP-wrapped under torchrun, else `model`."""
    optimizer: torch.optim.Optimizer
    autocast: Any
    train: EncodedSplit
    selection: EncodedSplit
    total: int
    warmup: int
    eval_every: int
    save_every: int
    precision: dict
    """bf16 or fp32 and how it was decided (`calibrate.precision_choice`)."""
    settings: dict[str, Any]
    """`run_settings`: what a resumed run must match."""
    run_dir: Path | None
    """The run's files (None: none written): log.jsonl, tb/, checkpoints/ (the best state), resume/."""
    log: RunLog | None = None
    loop: LoopState = field(default_factory=LoopState)

    @property
    def best_dir(self) -> Path | None:
        return self.run_dir / "checkpoints" if self.run_dir is not None else None

    @property
    def resume_dir(self) -> Path | None:
        return self.run_dir / "resume" if self.run_dir is not None else None


def _finetune(task, model_source, tokenizer, data, config, seed, world: D.World, run_dir: Path | None
              ) -> FinetuneResult:
    started = time.perf_counter()
    r = _build_run(task, model_source, tokenizer, data, config, seed, world, run_dir)
    rng = np.random.default_rng(seed)
    _open_log(r, data, seed)
    _resume(r)
    batches = batching.training_batches(r.train.lengths, r.sizes.micro_batch, config.padding, rng)
    for _ in range(r.loop.batches_drawn):  # the same batches as an uninterrupted run: skip those already used
        next(batches)
    params = [p for p in r.model.parameters() if p.requires_grad]
    forward, skips = _step_forward(world.device), S.SkipGuard(config.max_consecutive_skips)
    stop: list = []  # signal names, filled by the handlers below
    with D.stop_on_signals(stop, "litebert finetune"):
        for step in range(r.loop.step + 1, r.total + 1):
            decision = _train_step(r, step, batches, params, forward, skips, stop)
            if step % r.eval_every == 0 or step == r.total:
                _select(r, step)
            if r.resume_dir is not None and world.is_main and step < r.total and (
                    decision.stop or (r.save_every and step % r.save_every == 0)):
                save_loop(r.resume_dir, r.loop, r.model, r.optimizer, r.settings)
            if decision.stop and step < r.total:
                r.log.close()
                raise _interrupted(r, stop, step)
    predictions = _report(r, data, tokenizer)
    if r.resume_dir is not None and world.is_main:  # finished: nothing to resume (the best state stays in checkpoints/)
        shutil.rmtree(r.resume_dir, ignore_errors=True)
    loop = r.loop
    return FinetuneResult(
        task=task, seed=seed, model=r.model.cpu(), best_step=loop.best_step, steps=r.total,
        selection=loop.best_metrics, reported={name: predictions[name].metrics for name in data.reported},
        predictions=predictions, null_threshold=loop.best_threshold, train_seconds=loop.train_seconds,
        total_seconds=time.perf_counter() - started,
        train_examples_per_s=loop.seen / max(loop.train_seconds, 1e-9), history=loop.history,
    )


def _interrupted(r: FinetuneRun, stop: list, step: int) -> Interrupted:
    where = f" in {r.resume_dir}" if r.resume_dir is not None else " (none: no run directory)"
    return Interrupted(f"{stop[0] if stop else 'a signal on another rank'}: stopped after step {step} of {r.total} "
                       f"with a resumable checkpoint{where}")


def _build_run(task, model_source, tokenizer, data, config, seed, world: D.World, run_dir: Path | None
               ) -> FinetuneRun:
    """Model (the new head drawn from torch's seeded RNG), encoded splits, schedule, optimizer, precision."""
    sizes = resolve_sizes(task, config, world)
    model = build_model(task, model_source, tokenizer, config).to(world.device)
    model_for_step = D.parallelize(model, world, ParallelConfig(),
                                   activation_checkpointing=config.activation_checkpointing)
    train = encode_split(task, data.train, tokenizer, sizes.max_seq_length, config)
    selection = encode_split(task, data.selection, tokenizer, sizes.max_seq_length, config)
    total, warmup = resolve_schedule(task, config, len(train.tensors["input_ids"]), sizes.batch_size)
    eval_every = config.eval_every or max(1, total // 10)
    optimizer = build_optimizer(model, OptimConfig(name=config.optimizer, lr=sizes.lr, weight_decay=config.weight_decay,
                                                   eps=config.adam_eps, clip_norm=config.clip_norm))
    precision = D.decided_by_rank0(world, lambda: calibrate.precision_choice(
        world.device, config.bf16, model.config, sizes.micro_batch, sizes.max_seq_length, "train"))
    calibrate.apply_choice(precision)
    autocast = torch.autocast(world.device.type, dtype=torch.bfloat16) if precision["bf16"] else nullcontext()
    r = FinetuneRun(task=task, config=config, world=world, sizes=sizes, model=model, model_for_step=model_for_step,
                    optimizer=optimizer, autocast=autocast, train=train, selection=selection, total=total,
                    warmup=warmup, eval_every=eval_every,
                    save_every=eval_every if config.save_every is None else config.save_every,
                    precision=precision, settings=run_settings(task, model_source, config, seed), run_dir=run_dir)
    return r


def _open_log(r: FinetuneRun, data: TaskData, seed: int) -> None:
    """The run log (appended to when a resumable checkpoint exists), its start record, and what encoding cut."""
    resuming = r.resume_dir is not None and bool(ckpt.list_checkpoints(r.resume_dir))
    run_dir = r.run_dir
    r.log = RunLog(run_dir / "log.jsonl" if run_dir else None, tensorboard=run_dir / "tb" if run_dir else None,
                   total=r.total, progress=r.config.progress, append=resuming, timestamps=True,
                   enabled=r.world.is_main)
    config, sizes = r.config, r.sizes
    r.log.write({"event": "start", "task": r.task.name, "seed": seed, "train": len(r.train.tensors["input_ids"]),
                 "selection": len(r.selection.tensors["input_ids"]), "selection_split": data.selection_name,
                 "steps": r.total, "warmup": r.warmup, "lr": sizes.lr, "batch_size": sizes.batch_size,
                 "accumulate": config.accumulate, "optimizer": config.optimizer,
                 "max_seq_length": sizes.max_seq_length, "padding": config.padding, "bf16": r.precision["bf16"],
                 "precision": r.precision["description"] or r.precision["how"], "memory": hardware.ALLOCATOR,
                 "truncated": {"train": r.train.truncated, "selection": r.selection.truncated}})
    why = {"words": f"words past max_seq_length {sizes.max_seq_length}, predicted \"O\"",
           "questions": f"questions longer than max_query_length {config.max_query_length}, their first pieces kept"}
    for name, split in (("train", r.train), ("selection", r.selection)):
        for what, count in split.truncated.items():
            r.log.message(f"{name}: {count} {why[what]}")


def _resume(r: FinetuneRun) -> None:
    """Model, optimizer, RNG and loop state back to the newest resumable checkpoint, if there is one."""
    saved = _resume_point(r.resume_dir, r.world)
    if saved is None:
        return
    r.loop = restore_loop(saved, r.model, r.optimizer, r.settings, r.best_dir)
    r.log.truncate_after(r.loop.step)
    r.log.write({"event": "resume", "step": r.loop.step, "from": str(saved.path)})
    r.log.message(f"resumed from {saved.path} at step {r.loop.step}")


def _train_step(r: FinetuneRun, step: int, batches, params, forward: S.Forward, skips: S.SkipGuard,
                stop: list) -> D.Decision:
    """One optimizer step (`litebert.step`'s accumulate -> clip -> agree, as pretraining's): every rank draws the
    same micro-batches and takes its share; a non-finite update is skipped on every rank."""
    t0 = time.perf_counter()
    loop, world = r.loop, r.world
    r.model_for_step.train()
    set_learning_rate(r.optimizer, learning_rate(r.sizes.lr, (step - 1) / r.total, r.warmup / r.total))
    micro = []
    for _ in range(r.config.accumulate):
        index = next(batches)
        micro.append(batching.collate(r.train.tensors, index[world.rank::world.world_size], r.config.padding,
                                      r.sizes.max_seq_length, r.train.pad_token_id))
        loop.seen, loop.batches_drawn = loop.seen + len(index), loop.batches_drawn + 1
    result = S.take_step(r.model_for_step, params, micro, forward, world, r.autocast,
                         clip_norm=r.config.clip_norm, stop=bool(stop),
                         micro_batch_done=lambda fraction: r.log.advance(step - 1 + fraction))
    S.update(r.optimizer, result.decision)
    skips.record(result.decision.skip, step)
    if result.decision.skip:
        loop.skipped += 1
        r.log.message(S.skip_message(step, loop.skipped))
        r.log.write({"step": step, "event": "skip"})
    loop.step, loop.train_seconds = step, loop.train_seconds + time.perf_counter() - t0
    loop.window_loss, loop.window_steps = loop.window_loss + result.loss, loop.window_steps + 1
    if step % r.config.log_every == 0 or step == r.total:
        _log_window(r, step, result.grad_norm)
    r.log.advance(step)
    return result.decision


def _log_window(r: FinetuneRun, step: int, grad_norm: float) -> None:
    """A train record: the loss averaged over the steps since the last one and over the ranks."""
    loop = r.loop
    window_loss = D.all_reduce_sum(r.world, torch.tensor([loop.window_loss], dtype=torch.float64)).item()
    record = {"step": step, "loss": window_loss / r.world.world_size / loop.window_steps,
              "lr": r.optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
              "examples_per_s": loop.seen / loop.train_seconds}
    r.log.write(record)
    r.log.advance(step, f"loss {record['loss']:.4f}")
    loop.window_loss, loop.window_steps = 0.0, 0


def _select(r: FinetuneRun, step: int) -> None:
    """Score the selection split; a better state is kept (on the CPU, and on disk in best_dir by rank 0)."""
    loop = r.loop
    outputs = predict(r.model, r.selection, r.sizes.eval_batch_size, r.config.padding, r.world.device, r.autocast)
    scored = score(r.task, r.selection, outputs, r.config)
    loop.history.append({"step": step, **scored.metrics})
    r.log.write({"step": step, "selection": scored.metrics})
    r.log.message(f"step {step}: selection {metrics.describe(scored.metrics)}")
    if loop.best_state is None or main_metric(r.task, scored.metrics) > loop.best_score:
        # Copied to the CPU: the best state must survive later optimizer steps.
        loop.best_score, loop.best_step = main_metric(r.task, scored.metrics), step
        loop.best_metrics, loop.best_threshold = scored.metrics, scored.null_threshold
        loop.best_state = {k: v.detach().to("cpu", copy=True) for k, v in r.model.state_dict().items()}
        if r.best_dir is not None and r.world.is_main:
            save_best(r.best_dir, loop, r.task)


def _report(r: FinetuneRun, data: TaskData, tokenizer) -> dict[str, Scored]:
    """The selected state scored on the reported splits (seen here for the first and only time) and predicting
    the unlabelled ones; the log's done record."""
    r.model.load_state_dict(r.loop.best_state)
    predictions: dict[str, Scored] = {}
    for name, examples in [*data.reported.items(), *data.unlabelled.items()]:
        split = encode_split(r.task, examples, tokenizer, r.sizes.max_seq_length, r.config)
        outputs = predict(r.model, split, r.sizes.eval_batch_size, r.config.padding, r.world.device, r.autocast)
        predictions[name] = score(r.task, split, outputs, r.config, r.loop.best_threshold,
                                  labelled=name in data.reported)
    reported = {name: predictions[name].metrics for name in data.reported}
    r.log.write({"event": "done", "best_step": r.loop.best_step, "selection": r.loop.best_metrics,
                 "reported": reported})
    r.log.close()
    return predictions
