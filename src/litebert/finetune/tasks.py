"""The fine-tuning task table: one `Task` row per GLUE task, SQuAD version and RACE subset, and generic rows.

A row says what kind of head the task needs, where its files lie in the official download, how to read
them (`TsvFormat` / `SquadFormat` / `RaceFormat`), which metrics to report, which file the GLUE server
wants for each test set, and the default hyper-parameters of the official ALBERT run scripts.

Hyper-parameter sources (google-research/albert):
  * GLUE: `run_glue.sh`, `run_task NAME warmup lr steps save_steps batch` with --max_seq_length=512 and
    --optimizer=adamw for every task. WNLI is not in that script: its row takes Table 14 of the ALBERT
    paper (appendix A.4, arXiv:1909.11942).
  * SQuAD v1.1 / v2.0: the `run_squad_v1` / `run_squad_v2` commands of README.md (identical flags:
    lr 5e-5, batch 48, 2 epochs, warmup proportion 0.1, max_seq_length 384, doc_stride 128,
    max_query_length 64, n_best_size 20, max_answer_length 30).
  * RACE: the `run_race` command of README.md (lr 1e-5, batch 32, 12000 steps, 1000 warmup,
    max_seq_length 512, max_qa_length 128); the README notes lr 1e-5 (not v1's 2e-5) for v2 models.
  * movie-reviews (not an ALBERT benchmark): SST-2's lr with 3 epochs, 10% warmup, length 128 (the
    sentences are short: under 100 ALBERT tokens).
  * text-classification / multi-label-classification / text-regression / token-classification: a user's own
    data (`TableFormat`, CoNLL columns); their labels are read from the training file.

Which split selects the model and which is reported (`Task.test_labelled`): where test labels are hidden
(GLUE, SQuAD) a held-out slice of train selects and dev is reported; where test labels are public (RACE,
movie-reviews) dev selects and test is reported. Model selection never sees the reported split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from litebert import metrics
from litebert.metrics import MetricName

TaskKind = Literal["classification", "multi_label", "regression", "span", "multiple_choice", "token_classification"]


@dataclass(frozen=True)
class TsvFormat:
    """How to read a GLUE TSV (always with csv.QUOTE_NONE: GLUE text holds stray quote characters)."""

    text_a: str
    """Header name of the first text column."""
    text_b: str | None
    """Header name of the second text column; None for single-sentence tasks."""
    label: str | None
    """Header name of the label column in train/dev files (test files have none)."""
    id_column: str | None = "index"
    """Column whose value becomes an example's guid (and a submission's `index`); where a file lacks it,
    the guid is the 0-based data-row number."""
    headerless: tuple[str, ...] = ()
    """Column names for files shipped without a header (CoLA train/dev). A file is taken as header-less
    when its first row does not contain `text_a`."""
    skip_malformed: bool = False
    """Skip (and count) rows with the wrong number of fields instead of failing: the official QQP files
    really have such rows."""


@dataclass(frozen=True)
class SquadFormat:
    """An official SQuAD JSON file: `data[].paragraphs[].context / qas[]`."""

    version: Literal["1.1", "2.0"]


@dataclass(frozen=True)
class RaceFormat:
    """A RACE split directory: `{middle,high}/*.txt`, each file one JSON passage with its questions."""

    levels: tuple[str, ...]
    """Sub-directories read: ("middle",), ("high",) or both."""
    num_choices: int = 4
    max_qa_length: int = 128
    """Question+option tokens kept (the last ones), run_race.py's --max_qa_length."""


@dataclass(frozen=True)
class RatedSnippetsFormat:
    """Hutto & Gilbert's rated snippets (vaderSentiment, ICWSM 2014): one UTF-8 file of
    `id<TAB>mean rating<TAB>text` lines, the mean of 20 human ratings in [-4, +4], no header, no split.

    Labels: "negative" below -`neutral_band`, "positive" above +`neutral_band`; the near-neutral rest is
    dropped (and counted). Splits are fixed by a stable hash of the snippet id (`readers.hash_split`):
    train / dev / test = 80 / 10 / 10 %, so they never change with file order or Python's hash seed.
    A task path names its split after a "#": `movieReviewSnippets_GroundTruth.txt#dev`.
    """

    neutral_band: float = 0.5
    split_bounds: tuple[float, float] = (0.8, 0.9)
    """Cumulative fractions where train ends and dev ends; test is the rest."""


@dataclass(frozen=True)
class ConllFormat:
    """CoNLL-2003 column files: one token per line, columns separated by spaces (or tabs), the word first; a
    blank line ends a sentence; `-DOCSTART-` lines mark documents and are skipped. Tags may be IOB1 (the
    original CoNLL-2003 files), IOB2/BIO or IOBES: scoring reads them all (`metrics.entities`)."""

    label_column: int = -1
    """Column of the tag: CoNLL-2003's NER tag is the last (word, POS, chunk, NER)."""


@dataclass(frozen=True)
class TableFormat:
    """A user's own labelled texts, as Hugging Face's run_glue.py takes them: `train`, `dev` and optionally
    `test` files in the data directory, each `.csv` (quoted as spreadsheets write it), `.tsv` (no quoting),
    `.jsonl` (one JSON object per line) or `.json` (JSON lines, or one array of objects). CSV/TSV files start
    with a header. Columns, by name: the text (the first of `text_a` present), an optional second text of a
    pair (`text_b`), the label, and an optional id. A multi-label example's label is a set: a JSON list, or
    names separated by commas in one cell ("" or [] for none).

    Which file is which, and whether the test file is labelled, is found in the directory
    (`readers.locate_files`); the label set of the classification row is the training file's (`with_labels_from`).
    """

    text_a: tuple[str, ...] = ("text", "sentence", "sentence1")
    text_b: tuple[str, ...] = ("text_pair", "sentence2")
    label: str = "label"
    id_columns: tuple[str, ...] = ("id", "idx", "index")
    """Column whose value becomes an example's guid (and its predictions' `index`); else the 0-based row."""
    suffixes: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".json")


@dataclass(frozen=True)
class TestFile:
    """A test set and the name its predictions must have in a GLUE submission zip."""

    path: str
    submission: str | None = None


@dataclass(frozen=True)
class HParams:
    """Fine-tuning defaults. Either a fixed step budget (GLUE, RACE) or epochs (SQuAD) is set."""

    learning_rate: float
    batch_size: int
    max_seq_length: int
    train_steps: int | None = None
    warmup_steps: int | None = None
    num_epochs: float | None = None
    warmup_proportion: float | None = None

    def __post_init__(self) -> None:
        if (self.train_steps is None) == (self.num_epochs is None):
            raise ValueError("set exactly one of train_steps and num_epochs")
        if (self.warmup_steps is None) == (self.warmup_proportion is None):
            raise ValueError("set exactly one of warmup_steps and warmup_proportion")

    def schedule(self, steps_per_epoch: int) -> tuple[int, int]:
        """(total training steps, warmup steps) for a training set of `steps_per_epoch` batches."""
        total = self.train_steps if self.train_steps is not None else int(self.num_epochs * steps_per_epoch)
        warmup = self.warmup_steps if self.warmup_steps is not None else int(self.warmup_proportion * total)
        return total, warmup


@dataclass(frozen=True)
class Task:
    """One fine-tuning task. Paths are relative to the benchmark's root directory (e.g. `glue_data/`)."""

    name: str
    kind: TaskKind
    format: TsvFormat | SquadFormat | RaceFormat | RatedSnippetsFormat | ConllFormat | TableFormat
    train_file: str
    dev_files: tuple[str, ...]
    test_files: tuple[TestFile, ...]
    labels: tuple[str, ...]
    """Label strings in id order; () for regression and span tasks, and for the generic text- and
    token-classification rows, whose labels are read from their training file (`with_labels_from`)."""
    metrics: tuple[MetricName, ...]
    """Reported metrics, the task's main (model-selection) metric first: names of `metrics.METRIC_FUNCTIONS`,
    or for span tasks keys of `metrics.evaluate_squad`'s result."""
    hparams: HParams
    test_labelled: bool = False
    """Whether the test files carry labels: then dev selects the model and test is reported; otherwise
    a held-out slice of train selects and dev is reported (see the module docstring)."""

    @property
    def num_labels(self) -> int:
        """Output width of the head: classes, 1 for regression / one score per choice, 2 for span ends."""
        return {"classification": len(self.labels), "multi_label": len(self.labels), "regression": 1, "span": 2,
                "multiple_choice": 1, "token_classification": len(self.labels)}[self.kind]

    def label_id(self, label: str) -> int:
        """Index of `label` in `labels`; ValueError naming the allowed labels otherwise."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"{self.name}: label {label!r} is not one of {list(self.labels)}") from None


def _glue(
    name: str, folder: str, fmt: TsvFormat, labels: tuple[str, ...], metrics: tuple[MetricName, ...],
    submission: str, hparams: HParams, kind: TaskKind = "classification",
) -> Task:
    """A GLUE row with the standard `{folder}/{train,dev,test}.tsv` layout."""
    return Task(
        name=name, kind=kind, format=fmt, train_file=f"{folder}/train.tsv", dev_files=(f"{folder}/dev.tsv",),
        test_files=(TestFile(f"{folder}/test.tsv", submission),), labels=labels, metrics=metrics,
        hparams=hparams,
    )


def _glue_hparams(warmup: int, lr: float, steps: int, batch: int) -> HParams:
    """Argument order of run_glue.sh's `run_task` (minus save_checkpoints_steps); all at length 512."""
    return HParams(learning_rate=lr, batch_size=batch, max_seq_length=512, train_steps=steps, warmup_steps=warmup)


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_SQUAD_HPARAMS = HParams(learning_rate=5e-5, batch_size=48, max_seq_length=384, num_epochs=2.0, warmup_proportion=0.1)
_RACE_HPARAMS = HParams(learning_rate=1e-5, batch_size=32, max_seq_length=512, train_steps=12000, warmup_steps=1000)

_ROWS = [
    _glue("cola", "CoLA",
          TsvFormat("sentence", None, "label", headerless=("source", "label", "original_label", "sentence")),
          _BINARY, ("mcc",), "CoLA.tsv", _glue_hparams(320, 1e-5, 5336, 16)),
    _glue("sst-2", "SST-2", TsvFormat("sentence", None, "label"),
          _BINARY, ("accuracy",), "SST-2.tsv", _glue_hparams(1256, 1e-5, 20935, 32)),
    _glue("mrpc", "MRPC", TsvFormat("#1 String", "#2 String", "Quality"),
          _BINARY, ("f1", "accuracy"), "MRPC.tsv", _glue_hparams(200, 2e-5, 800, 32)),
    _glue("sts-b", "STS-B", TsvFormat("sentence1", "sentence2", "score"),
          (), ("pearson", "spearman"), "STS-B.tsv", _glue_hparams(214, 2e-5, 3598, 16), kind="regression"),
    _glue("qqp", "QQP", TsvFormat("question1", "question2", "is_duplicate", id_column="id", skip_malformed=True),
          _BINARY, ("accuracy", "f1"), "QQP.tsv", _glue_hparams(1000, 5e-5, 14000, 128)),
    Task(
        name="mnli", kind="classification", format=TsvFormat("sentence1", "sentence2", "gold_label"),
        train_file="MNLI/train.tsv", dev_files=("MNLI/dev_matched.tsv", "MNLI/dev_mismatched.tsv"),
        # The diagnostic set has no training data of its own: the GLUE server scores MNLI's model on it.
        test_files=(TestFile("MNLI/test_matched.tsv", "MNLI-m.tsv"),
                    TestFile("MNLI/test_mismatched.tsv", "MNLI-mm.tsv"),
                    TestFile("diagnostic/diagnostic.tsv", "AX.tsv")),
        labels=("contradiction", "entailment", "neutral"), metrics=("accuracy",),
        hparams=_glue_hparams(1000, 3e-5, 10000, 128),
    ),
    _glue("qnli", "QNLI", TsvFormat("question", "sentence", "label"),
          _NLI2, ("accuracy",), "QNLI.tsv", _glue_hparams(1986, 1e-5, 33112, 32)),
    _glue("rte", "RTE", TsvFormat("sentence1", "sentence2", "label"),
          _NLI2, ("accuracy",), "RTE.tsv", _glue_hparams(200, 3e-5, 800, 32)),
    # Not in run_glue.sh: lr 2e-5, batch 16, 2000 steps, 250 warmup from the paper's Table 14.
    _glue("wnli", "WNLI", TsvFormat("sentence1", "sentence2", "label"),
          _BINARY, ("accuracy",), "WNLI.tsv", _glue_hparams(250, 2e-5, 2000, 16)),
    # SQuAD's test sets are hidden (scored on CodaLab), so no test files.
    Task(name="squad1.1", kind="span", format=SquadFormat("1.1"), train_file="train-v1.1.json",
         dev_files=("dev-v1.1.json",), test_files=(), labels=(), metrics=("f1", "exact_match"),
         hparams=_SQUAD_HPARAMS),
    Task(name="squad2.0", kind="span", format=SquadFormat("2.0"), train_file="train-v2.0.json",
         dev_files=("dev-v2.0.json",), test_files=(), labels=(), metrics=("f1", "exact"),
         hparams=_SQUAD_HPARAMS),
    *(
        Task(name=name, kind="multiple_choice", format=RaceFormat(levels), train_file="train",
             dev_files=("dev",), test_files=(TestFile("test"),), labels=("A", "B", "C", "D"),
             metrics=("accuracy",), hparams=_RACE_HPARAMS, test_labelled=True)
        for name, levels in (("race-middle", ("middle",)), ("race-high", ("high",)), ("race", ("middle", "high")))
    ),
    # CoNLL-2003 English NER (files as distributed with most toolkits); dev selects, test is reported. The
    # hyper-parameters are BERT's NER recipe (lr 5e-5, batch 32, 3 epochs, 10% warmup), at length 128.
    Task(name="conll2003-ner", kind="token_classification", format=ConllFormat(label_column=-1),
         train_file="train.txt", dev_files=("valid.txt",), test_files=(TestFile("test.txt"),),
         labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
         metrics=("f1", "precision", "recall", "accuracy"),
         hparams=HParams(learning_rate=5e-5, batch_size=32, max_seq_length=128, num_epochs=3.0,
                         warmup_proportion=0.1),
         test_labelled=True),
    # Any tagging task in the same layout: --label-column picks the tag column, the tag set is the training
    # file's ("O" first, then sorted).
    Task(name="token-classification", kind="token_classification", format=ConllFormat(label_column=-1),
         train_file="train.txt", dev_files=("valid.txt",), test_files=(TestFile("test.txt"),), labels=(),
         metrics=("f1", "precision", "recall", "accuracy"),
         hparams=HParams(learning_rate=5e-5, batch_size=32, max_seq_length=128, num_epochs=3.0,
                         warmup_proportion=0.1),
         test_labelled=True),
    # A user's own texts (`TableFormat`): run_glue.py's defaults (lr 2e-5, 3 epochs, length 128) with ALBERT's
    # batch 32 and 10% warmup. The labels are the training file's; multi-label rows hold a set of them (a JSON
    # list, or names separated by commas), regression reads float labels.
    *(
        Task(name=name, kind=kind, format=TableFormat(), train_file="train", dev_files=("dev",),
             test_files=(TestFile("test"),), labels=(), metrics=metrics,
             hparams=HParams(learning_rate=2e-5, batch_size=32, max_seq_length=128, num_epochs=3.0,
                             warmup_proportion=0.1))
        for name, kind, metrics in (("text-classification", "classification", ("accuracy", "f1_macro")),
                                    ("multi-label-classification", "multi_label",
                                     ("f1_micro", "f1_macro", "subset_accuracy")),
                                    ("text-regression", "regression", ("pearson", "spearman")))
    ),
    # Rotten Tomatoes sentences (Pang & Lee 2005) as rated by Hutto & Gilbert; binary after dropping neutrals.
    Task(name="movie-reviews", kind="classification", format=RatedSnippetsFormat(),
         train_file="movieReviewSnippets_GroundTruth.txt#train",
         dev_files=("movieReviewSnippets_GroundTruth.txt#dev",),
         test_files=(TestFile("movieReviewSnippets_GroundTruth.txt#test"),),
         labels=("negative", "positive"), metrics=("accuracy", "f1"),
         hparams=HParams(learning_rate=1e-5, batch_size=32, max_seq_length=128, num_epochs=3.0,
                         warmup_proportion=0.1),
         test_labelled=True),
]

TASKS: dict[str, Task] = {task.name: task for task in _ROWS}


def with_labels_from(task: Task, tags: list[str], label_column: int | None = None) -> Task:
    """A generic row resolved for one dataset, from its training file's labels `tags`: for token
    classification its tag column and tag set ("O" first, then sorted); for text (and multi-label)
    classification its label set (sorted; as numbers when every label is an integer, so "2" comes before "10").
    Other rows as they are."""
    if task.kind == "token_classification" and label_column is not None:
        task = dataclasses.replace(task, format=ConllFormat(label_column=label_column))
    if task.labels or task.kind not in ("token_classification", "classification", "multi_label"):
        return task
    found = set(tags)
    if task.kind == "token_classification":
        rest = sorted(found - {"O"})
        return dataclasses.replace(task, labels=("O", *rest) if "O" in found else tuple(rest))
    numeric = all(t.lstrip("-").isdigit() for t in found)
    return dataclasses.replace(task, labels=tuple(sorted(found, key=int if numeric else None)))


def task_metrics(task: Task | str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric the task row lists, e.g. {"f1": ..., "accuracy": ...} for MRPC; span and entity tasks
    are scored from texts and tag sequences (`metrics.evaluate_squad`, `metrics.evaluate_entities`)."""
    task = get_task(task) if isinstance(task, str) else task
    if task.kind in ("span", "token_classification"):
        raise ValueError(f"{task.name} is scored from answer texts or tag sequences: use evaluate_squad or "
                         f"evaluate_entities")
    return metrics.compute_metrics(task.metrics, predictions, labels)


def get_task(name: str) -> Task:
    """The row for `name` (case-insensitive); ValueError listing the known names otherwise."""
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
