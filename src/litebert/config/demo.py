"""`litebert demo`'s settings: the small-budget pretraining recipe and the comparison it runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litebert.fetch import DEFAULT_CACHE

SOURCES = ("wikipedia", "snippets", "shakespeare")
"""Unlabelled text the demo can fetch: Wikipedia lead paragraphs (modern encyclopedic English), the other
rated-snippet sets of the movie-review archive (tweets, Amazon reviews, NYT editorials; their text only),
Shakespeare + Milton (17th-century verse and prose)."""


@dataclass
class DemoConfig:
    """Settings of `litebert demo`. The recipe fields' defaults are the small-budget pretraining recipe chosen
    by benchmarks/pretrain_sweep.py on held-out MLM and dev accuracy (see docs/demo/recipe.md); the defaults
    finish within 20 minutes on 2 CPU cores: the pretraining budget is sized to the machine (`total_budget_s`)."""

    output: Path = Path("runs/demo")
    """Run directory: stages/, report.md, figures."""
    cache: Path = DEFAULT_CACHE
    """Where fetched corpora and MiniLM are kept between runs."""
    corpus: Path | None = None
    """The user's own pretraining text (a file or a directory of .txt files, a blank line between documents) instead
    of `sources`; a document over 200 lines is cut into 20-line ones, so that some can be held out."""
    labelled: Path | None = None
    """The user's own labelled file in the movie-review format (`id<TAB>rating<TAB>sentence`)."""
    sources: tuple[str, ...] = ("wikipedia",)
    """Fetched unlabelled text pretrained on besides the task's train sentences (names from SOURCES)."""
    task_repeats: int = 1
    """Copies of the task's train sentences in the pretraining text (each grouped into documents differently):
    weights task-adaptive pretraining against the other sources."""
    budget_s: float | None = None
    """Wall-clock pretraining budget; None: what `total_budget_s` leaves once every other stage's time is known
    on this machine (the demo runs the arms that need no pretraining first; see `demo.pretraining_budget`)."""
    total_budget_s: float = 1140.0
    """The whole run's wall-clock target when `budget_s` is None: 19 minutes, one under the 20 the demo
    promises, for start-up, the precision measurement and the report."""
    min_budget_s: float = 120.0
    """The least pretraining the demo runs when the machine is too slow for `total_budget_s` (it says so)."""

    # ---- the model
    preset: str = "albert-mini"
    """The model preset (`litebert params --list`) that `model_overrides` changes."""
    model_overrides: dict[str, Any] = field(default_factory=lambda: dict(
        hidden_size=128, num_attention_heads=2, intermediate_size=512, num_hidden_layers=4, embedding_size=128))
    """AlbertConfig fields changed from the preset (vocab_size and positions are set from the data)."""
    # ---- the pretraining data
    vocab_size: int = 8000
    """SentencePiece pieces, trained on the pretraining text and the task's train sentences."""
    seq_length: int = 64
    """Pieces per pretraining example."""
    masked_lm_prob: float = 0.15
    """Fraction of pieces predicted."""
    max_predictions: int = 10
    """Cap on predictions per example."""
    ngram: int = 3
    """Longest masked span, in words."""
    whole_word: bool = True
    """Mask whole words (false: single pieces)."""
    masking: str = "dynamic"
    """`static` (masks drawn once, `dupe_factor` copies) or `dynamic` (new masks every epoch)."""
    dupe_factor: int = 1
    """Copies of the data with different masks (static masking)."""
    sentence_task: str = "sop"
    """"sop", "nsp" or "none" (as `litebert data create`)."""
    # ---- pretraining
    micro_batch: int = 64
    """Sequences per step (no accumulation: in a 10-minute budget the number of steps is what limits)."""
    optimizer: str = "adamw"
    """Pretraining optimizer: "adamw", "lamb" or "adamweightdecay"."""
    lr: float = 0.001
    """Peak pretraining learning rate."""
    warmup_fraction: float = 0.05
    """Share of the pretraining budget spent warming up; then linear decay to 0 at the budget's end."""
    mlm_bias_init: str = "unigram"
    """MLM output bias at step 0: "unigram" (log piece frequencies) or "zero" (official)."""
    # ---- fine-tuning
    finetune_lrs: tuple[float, ...] = (1e-3, 3e-4)
    """The learning rates tried for each ALBERT arm; each arm reports the one with the best median dev accuracy
    (the same search for the pretrained and the random-init model, so the comparison stays fair)."""
    finetune_search_seeds: int = 1
    """Seeds each learning rate of `finetune_lrs` runs with in an arm's dev search; the chosen rate then runs the
    remaining `seeds`, so a search of n rates costs n - 1 runs more than no search, not n times as many."""
    finetune_optimizer: str = "adamw"
    """torch's AdamW: the optimizer the fine-tuning protocol above was searched with on dev (docs/demo/recipe.md).
    The library's fine-tuning default is the official `adamweightdecay`."""
    finetune_epochs: float = 3.0
    """Epochs of every ALBERT arm's fine-tuning."""
    finetune_batch: int = 32
    """Examples per fine-tuning step."""
    finetune_max_length: int = 64
    """Review sentences average 27 pieces (p95 46): 64 truncates almost none."""
    seeds: tuple[int, ...] = (1, 2, 3)
    """Fine-tuning seeds of each ALBERT arm; the report gives medians and paired differences."""
    minilm: bool = True
    """Fine-tune the real pretrained MiniLM BERT encoder as the ceiling arm."""
    minilm_lr: float = 5e-5
    """MiniLM's fine-tuning learning rate."""
    minilm_epochs: float = 1.0
    """MiniLM's fine-tuning epochs."""
    minilm_seeds: tuple[int, ...] = (1,)
    """One seed by default: a MiniLM run costs as much as three ALBERT ones here, and the ceiling arm is not
    what the comparison is about (its seeds agreed within 0.5 points when three ran)."""
    workers: int = 2
    """Processes that build the pretraining data."""
    bf16: bool | None = None
    """None: bf16 autocast where the GPU supports it, or where it measures faster than fp32 on this CPU at the
    pretraining shape (`litebert.calibrate`; it is slower on a Xeon with AVX512-BF16 and no AMX)."""
    device: str | None = None
    """`cpu` or `cuda`; None: cuda when available (with GPU_RECIPE's larger model unless the model was set)."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f"budget_s must be positive (or None to size it to total_budget_s), got {self.budget_s}")
        if self.min_budget_s <= 0 or self.total_budget_s < 0:
            raise ValueError(f"min_budget_s must be positive and total_budget_s not negative, got "
                             f"{self.min_budget_s} and {self.total_budget_s}")
        if self.finetune_search_seeds < 1:
            raise ValueError(f"finetune_search_seeds must be at least 1, got {self.finetune_search_seeds}")


GPU_RECIPE: dict[str, Any] = dict(preset="albert-base-v2", model_overrides={}, micro_batch=128, lr=0.0005)
"""What `litebert demo` changes on a CUDA device (where the user left the model as it is): ALBERT-base's
shape and a batch sized for a GPU. The AdamW rate is BERT/RoBERTa's range for batches of a few hundred
(1e-4..6e-4); it has not been swept on a GPU yet (no GPU was at hand; docs/demo/recipe.md)."""
