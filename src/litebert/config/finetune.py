"""Fine-tuning's settings: one `FinetuneConfig` per run; None fields take the task row's value (`finetune.tasks`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Padding = Literal["bucket", "fixed"]
""""bucket": length-bucketed batches padded to their longest row; "fixed": every batch at max_seq_length."""
Squad2Head = Literal["null-score", "answerability"]
FinetuneOptimizer = Literal["adamweightdecay", "adamw"]


@dataclass
class FinetuneConfig:
    """Options of one fine-tuning run; None means "the task row's default" (see `finetune.tasks`)."""

    optimizer: FinetuneOptimizer = "adamweightdecay"
    """`adamweightdecay`: the official fine-tuning optimizer (BERT/ALBERT's AdamWeightDecayOptimizer: Adam
    without bias correction, decoupled decay added to the update); `adamw`: torch.optim.AdamW (bias-corrected).
    Without bias correction the first few hundred updates are up to ~5x Adam's at the same rate, which the
    official rates (1e-5..5e-5) and warmup absorb; a model trained from scratch at 1e-4..1e-3 needs a longer
    warmup (tests/test_finetune_sentiment.py: 3e-4 collapses to the majority class with 30 warmup steps of 502,
    reaches 76.6% with 100) or `adamw`."""
    learning_rate: float | None = None
    """Peak learning rate, reached at the end of warmup."""
    batch_size: int | None = None
    """Examples per optimizer step (the official train_batch_size); with `accumulate`, split into micro-batches."""
    accumulate: int = 1
    """Micro-batches per optimizer step (each batch_size / accumulate examples): the same global batch in less
    memory. Each micro-batch's mean loss is divided by `accumulate`, so the gradient is the global batch's."""
    max_seq_length: int | None = None
    """Pieces per sequence ([CLS] and [SEP]s included); longer inputs are cut (pairs from the longer side, SQuAD contexts into windows)."""
    max_steps: int | None = None
    """Optimizer steps; overrides the row's steps or epochs."""
    num_epochs: float | None = None
    """Epochs over the training set (used when max_steps is None)."""
    warmup_steps: int | None = None
    """Default: the row's warmup fraction (warmup_steps / train_steps, or warmup_proportion) of the steps."""
    weight_decay: float = 0.01
    """Decoupled weight decay, not on LayerNorms and biases (as the official optimizer)."""
    adam_eps: float = 1e-6
    """Adam's epsilon (the official 1e-6)."""
    clip_norm: float = 1.0
    """Global gradient-norm clipping threshold (the official 1.0); 0 turns clipping off."""
    max_consecutive_skips: int = 20
    """Give up after more than this many updates in a row skipped for a non-finite loss or gradient."""
    eval_every: int | None = None
    """Steps between evaluations of the selection split; default: 10 evaluations per run. The last step is
    always evaluated."""
    save_every: int | None = None
    """Steps between resumable checkpoints (model, optimizer, RNG, data position) in the seed's resume/
    directory; None: at every evaluation; 0: never. A rerun into the same output resumes from the newest, bit
    for bit, unless --overwrite."""
    eval_batch_size: int | None = None
    """Default: 2 x batch_size."""
    bf16: bool | None = None
    """bf16 autocast for forward passes (fp32 weights and optimizer state). None: on a GPU where it supports
    bf16; on a CPU where it measures faster than fp32 at the run's shape (`litebert.calibrate`)."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in backward instead of keeping them
    (`distributed.checkpoint_activations`): a step keeps about the blocks' inputs only, for a second forward
    through the blocks. The gradients are the same. For long sequences and large presets (`litebert params`
    estimates both)."""
    padding: Padding = "bucket"
    """"bucket": length-bucketed batches padded to their longest row; "fixed": every batch at max_seq_length."""
    selection_fraction: float = 0.1
    """Where test labels are hidden: the fraction of train held out to select the model (SQuAD: by paragraph)."""
    selection_seed: int = 12345
    """Seed of that held-out slice, fixed apart from the run seed so all seeds share the same data."""
    squad2_head: Squad2Head = "null-score"
    """SQuAD 2.0: BERT's null score from the plain start/end head (default), or ALBERT's answerability head."""
    # SQuAD windowing and decoding: the official run_squad flags (finetune.squad.SquadConfig takes these).
    doc_stride: int = 128
    """Tokens between the starts of consecutive windows."""
    max_query_length: int = 64
    """Question tokens kept (the first ones)."""
    n_best_size: int = 20
    """Start and end candidates taken from each window, and answers kept per question."""
    max_answer_length: int = 30
    """Longest answer, in sub-tokens."""
    label_column: int | None = None
    """Token classification: the column holding the tag (None: the row's; CoNLL-2003's last)."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """AlbertConfig fields changed when the model is built (e.g. dropout)."""
    device: str | None = None
    """"cpu", "cuda", ...; default cuda when available."""
    progress: bool = False
    """tqdm progress bar."""
    log_every: int = 10
    """Steps between training records in the JSONL log."""
