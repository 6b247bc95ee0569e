"""ALBERT: factorized embeddings, cross-layer parameter sharing, post-LN transformer layers, and every head.

The ladder reads top to bottom: embeddings → attention block → FFN block → encoder (which block serves which
layer) → AlbertModel (+ tanh pooler) → heads. The module knows nothing of training, data or files; loading
and saving checkpoints lives in `litebert.convert` (reached through `from_pretrained` / `save_pretrained`).

How the heavy operations run (attention, the projections, dropout, the GELU) is `litebert.kernels`' business,
with the CPU fast paths that `litebert.calibrate` switches per machine; the model only calls them. Three speed
choices are the model's own, each worth measured in benchmarks/levers.py: `AlbertAttention.fused_qkv` (one Q/K/V
matmul, built once per forward for a shared block), `extended_attention_mask` (no mask when nothing is padded)
and `AlbertEncoder.forward`'s last layer at the heads' positions only.

Shapes: B batch, T sequence length, H hidden size, E embedding size, V vocabulary, nh heads, hs head size,
P masked positions per sequence, C choices, k top-k candidates.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litebert import kernels
from litebert.config import AlbertConfig


ACT_FNS = {
    "gelu_new": kernels.gelu_tanh,
    "gelu_fast": kernels.gelu_tanh,
    "gelu_pytorch_tanh": kernels.gelu_pytorch_tanh,
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


# ---------------------------------------------------------------------------------------------- outputs
class ModelOutput:
    """Named outputs that also index like a tuple of their non-None fields, as Hugging Face's do."""

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def __getitem__(self, key: int | str) -> Any:
        return getattr(self, key) if isinstance(key, str) else self.to_tuple()[key]


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Tensor  # (B, T, H)
    pooler_output: Tensor | None = None  # (B, H)
    hidden_states: tuple[Tensor, ...] | None = None  # depth+1 x (B, T, H)


@dataclass
class PreTrainingOutput(ModelOutput):
    loss: Tensor | None = None
    prediction_logits: Tensor | None = None  # (B, T, V), or (B, P, V) when masked_lm_positions is given
    sop_logits: Tensor | None = None  # (B, 2)
    mlm_loss: Tensor | None = None
    sop_loss: Tensor | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # (B, T, V)


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # (B, num_labels); (B, T, num_labels) for tokens; (B, C) for choices


@dataclass
class QuestionAnsweringOutput(ModelOutput):
    loss: Tensor | None = None
    start_logits: Tensor | None = None  # (B, T)
    end_logits: Tensor | None = None  # (B, T); with answerability only when start_positions is given
    start_top_log_probs: Tensor | None = None  # (B, k_start)
    start_top_index: Tensor | None = None  # (B, k_start)
    end_top_log_probs: Tensor | None = None  # (B, k_start * k_end)
    end_top_index: Tensor | None = None  # (B, k_start * k_end)
    cls_logits: Tensor | None = None  # (B,): answerability logit, > 0 means "no answer"


# ---------------------------------------------------------------------------------------------- blocks
class AlbertEmbeddings(nn.Module):
    """Word + position + token-type embeddings at width E, LayerNorm, dropout, then E→H when E != H."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        E = config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, E, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, E)
        self.layer_norm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dropout = kernels.Dropout(config.hidden_dropout_prob)
        self.projection = nn.Linear(E, config.hidden_size) if config.project_embeddings else None

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) \
            + self.token_type_embeddings(token_type_ids)  # (B, T, E)
        x = self.dropout(self.layer_norm(x))
        return self.projection(x) if self.projection is not None else x  # (B, T, H)


class AlbertAttention(nn.Module):
    """Multi-head self-attention with its output projection, residual and LayerNorm (after the residual sum,
    or on the block's input with `norm_position="pre"`)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        H = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.dense = nn.Linear(H, H)
        self.layer_norm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.attn_dropout = config.attention_probs_dropout_prob
        self.dropout = kernels.Dropout(config.hidden_dropout_prob)
        self.pre_norm = config.norm_position == "pre"
        self.qkv_projection: nn.Module | None = None
        """A module (B, T, H) -> (B, T, 3H) that replaces the fused Q/K/V projection: set only by
        `litebert.quantize` for int8 inference."""

    def fused_qkv(self) -> tuple[Tensor, Tensor]:
        """The Q, K and V projections as one (3H, H) weight and (3H,) bias, cast to the autocast dtype if on.

        One matmul three times as wide is faster than three narrow ones (1024 x 768 input, bf16, this CPU:
        2.2 TFLOP/s at width 2304 vs 1.1 at 768, benchmarks/cpu_kernels.py). The encoder builds it once per
        forward, so a block that L layers share is concatenated and cast once, not L times; its gradient flows
        back to the three separate parameters.
        """
        w = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        b = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        return kernels.autocast_cast(w, b)

    def projections(self, uses: int = 1) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
        """The (Q/K/V, output) projections as one forward of `uses` layers sharing this block applies them."""
        qkv = self.qkv_projection
        if qkv is None:
            qkv = kernels.packed_projection((self.query.weight, self.key.weight, self.value.weight),
                                    (self.query.bias, self.key.bias, self.value.bias), uses)
        if qkv is None:
            qkv = kernels.Projection(*self.fused_qkv(), uses)
        return qkv, kernels.projection(self.dense, uses)

    def forward(self, x: Tensor, mask: Tensor | None, projections: tuple[Callable, Callable] | None = None,
                rows: Tensor | None = None) -> Tensor:
        """x (B, T, H) → (B, T, H), or (B, R, H) at the positions `rows` (B, R) only (keys and values from all T)."""
        qkv, dense = projections or self.projections()
        projected = qkv(self.layer_norm(x) if self.pre_norm else x)  # (B, T, 3H)
        dropout_p = self.attn_dropout if self.training else 0.0
        if rows is None:
            ctx = kernels.attention(projected, self.num_heads, mask, dropout_p)  # (B, T, H)
        else:
            ctx = kernels.attention_at(projected, rows, self.num_heads, mask, dropout_p)  # (B, R, H)
            x = gather_positions(x, rows)  # (B, R, H)
        out = x + self.dropout(dense(ctx))
        return out if self.pre_norm else self.layer_norm(out)


class AlbertFFN(nn.Module):
    """Position-wise feed-forward block H→I→H with residual and LayerNorm (post, or pre as the attention's)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = ACT_FNS[config.hidden_act]
        self.dropout = kernels.Dropout(config.hidden_dropout_prob)
        self.pre_norm = config.norm_position == "pre"

    def projections(self, uses: int = 1) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
        """The (intermediate, output) projections as one forward of `uses` layers sharing this block applies them."""
        return kernels.projection(self.intermediate, uses), kernels.projection(self.output, uses)

    def forward(self, x: Tensor, projections: tuple[Callable, Callable] | None = None) -> Tensor:
        intermediate, output = projections or self.projections()
        if self.pre_norm:
            return x + self.dropout(output(kernels.activated(intermediate, self.act, self.layer_norm(x))))  # (B, T, H)
        h = output(kernels.activated(intermediate, self.act, x))  # (B, T, H)
        return self.layer_norm(x + self.dropout(h))


def sharing_layout(config: AlbertConfig) -> list[tuple[int, int]]:
    """For each of the `depth` transformer layers applied, the (attention block, FFN block) it uses.

    Layer application i runs the `inner_group_num` layers of group g = group_of_layer(i). A shared block is
    indexed by (g, j); an unshared one by (i, j).
    """
    inner = config.inner_group_num
    layout = []
    for i in range(config.num_hidden_layers):
        g = config.group_of_layer(i)
        for j in range(inner):
            shared, own = g * inner + j, i * inner + j
            attn = shared if config.share in ("all", "attention") else own
            ffn = shared if config.share in ("all", "ffn") else own
            layout.append((attn, ffn))
    return layout


class AlbertEncoder(nn.Module):
    """The stack of layers; `layout` says which parameter block serves each layer. Pre-LN stacks end with a
    LayerNorm of their own (the residual stream is otherwise never normalised)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.layout = sharing_layout(config)
        n_attn = 1 + max(a for a, _ in self.layout)
        n_ffn = 1 + max(f for _, f in self.layout)
        self.attention = nn.ModuleList(AlbertAttention(config) for _ in range(n_attn))
        self.ffn = nn.ModuleList(AlbertFFN(config) for _ in range(n_ffn))
        self.final_layer_norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
                                 if config.norm_position == "pre" else None)

    def forward(self, x: Tensor, mask: Tensor | None, output_hidden_states: bool = False,
                rows: Tensor | None = None):
        """x (B, T, H) → (B, T, H); with `rows` (B, R), the last layer computes those positions only → (B, R, H).

        Why rows: a head that reads R of T positions (pretraining's masked ones and [CLS]) needs nothing else
        from the last layer but its keys and values, so its queries, output projection and FFN run on R rows
        (R/T = 21/128 at ALBERT's 20 predictions): in ALBERT-base that work of the last of 12 layers shrinks
        to a sixth, 5-7% of a training step (benchmarks/levers.py).
        """
        states = [x] if output_hidden_states else None
        # once per forward, however many layers share a block
        uses_a, uses_f = Counter(a for a, _ in self.layout), Counter(f for _, f in self.layout)
        attn = [block.projections(uses_a[i]) for i, block in enumerate(self.attention)]
        ffn = [block.projections(uses_f[i]) for i, block in enumerate(self.ffn)]
        last = len(self.layout) - 1
        for i, (a, f) in enumerate(self.layout):
            x = self.ffn[f](self.attention[a](x, mask, attn[a], rows if i == last else None), ffn[f])  # (B, T, H)
            if states is not None:
                states.append(x)
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
            if states is not None:
                states[-1] = x
        return x, (tuple(states) if states is not None else None)


# ---------------------------------------------------------------------------------------------- base
class AlbertPreTrainedModel(nn.Module):
    """Shared behaviour of every class: init as the official code, checkpoint loading and saving."""

    base_model_prefix = "albert"

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config

    def init_weights(self, *parts: nn.Module) -> None:
        """Truncated normal (±2 std) for weight matrices and embeddings, zero biases, unit LayerNorms.

        Heads pass only the parts they add; the encoder initialised itself when it was built.
        """
        std = self.config.initializer_range
        for module in (m for part in (parts or (self,)) for m in part.modules()):
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, AlbertMLMHead):
                nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides: Any):
        """Load a Hugging Face ALBERT/BERT directory or litebert's own (config.json + safetensors/bin)."""
        from litebert.convert import load_pretrained  # files live outside the model module

        return load_pretrained(cls, Path(path), **config_overrides)

    def save_pretrained(self, path: str | Path, layout: str = "auto") -> str:
        """Write config.json + model.safetensors; Hugging Face's layout whenever it can express this model
        (`layout="huggingface"`: refuse, naming the reason, when it cannot; `"litebert"`: litebert's own;
        `"bert"`: Hugging Face's BERT classes, for share="none" models with E = H).

        Returns the format written: "huggingface", "litebert" or "bert".
        """
        from litebert.convert import save_pretrained

        return save_pretrained(self, Path(path), layout)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def extended_attention_mask(attention_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(B, T) 1/0 padding mask → additive (B, 1, 1, T) mask for SDPA: 0 where attended, -inf-like where not.

    None when nothing is padded: SDPA's unmasked kernel computes the same sums, faster (albert-base bf16
    8x512 inference on CPU: 3%, benchmarks/levers.py). Only decided here for CPU tensors: on a GPU reading the
    mask back would stall the stream every forward, so callers pass None themselves when they know (pretraining
    decides on the CPU batch). Not decided while tracing (compile/export) either, where it would specialise.
    """
    if attention_mask is None:
        return None
    on_cpu = attention_mask.device.type == "cpu"
    if on_cpu and not torch.compiler.is_compiling() and bool(attention_mask.all()):
        return None
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


class AlbertModel(AlbertPreTrainedModel):
    """The encoder: embeddings, shared transformer layers, tanh pooler over the first ([CLS]) token."""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertEncoder(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_hidden_states: bool = False,
                output_positions: Tensor | None = None) -> BaseModelOutput:
        """With `output_positions` (B, P), last_hidden_state is (B, P, H), the states at those positions, and the
        last layer computes only them and [CLS] for the pooler (see AlbertEncoder.forward)."""
        B, T = input_ids.shape
        if output_positions is not None and output_hidden_states:
            raise ValueError("output_hidden_states needs every position's states; pass no output_positions")
        if T > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {T} exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings})")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        # Autocast runs the attention in the matmul dtype; the mask must match it.
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        mask = extended_attention_mask(attention_mask, dtype)
        rows = output_positions
        if rows is not None and self.pooler is not None:
            rows = torch.cat([rows.new_zeros(B, 1), rows], 1)  # (B, 1 + P): [CLS] first
        x, states = self.encoder(x, mask, output_hidden_states, rows)  # (B, T or R, H)
        cls = x[:, 0]  # (B, H)
        if rows is not None and self.pooler is not None:
            x = x[:, 1:]  # (B, P, H)
        pooled = torch.tanh(self.pooler(cls)) if self.pooler is not None else None  # (B, H)
        return BaseModelOutput(last_hidden_state=x, pooler_output=pooled, hidden_states=states)


# ---------------------------------------------------------------------------------------------- heads
class AlbertMLMHead(nn.Module):
    """H → E transform, activation, LayerNorm, then the decoder E → V tied to the word embeddings.

    The tied table is passed to `forward` rather than held, so each weight has exactly one name.
    """

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.layer_norm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.act = ACT_FNS[config.hidden_act]
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: Tensor, word_embeddings: Tensor) -> Tensor:
        h = self.layer_norm(self.act(self.dense(h)))  # (..., E)
        return F.linear(h, word_embeddings, self.bias)  # (..., V)


def gather_positions(x: Tensor, positions: Tensor) -> Tensor:
    """x (B, T, H), positions (B, P) → (B, P, H): the hidden states at the masked positions only."""
    return torch.gather(x, 1, positions.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def classification_loss(config: AlbertConfig, logits: Tensor, labels: Tensor) -> Tensor:
    """MSE for regression (num_labels == 1); binary cross-entropy per label for multi-label classification
    (labels (B, num_labels) multi-hot); cross-entropy otherwise, -100 labels ignored."""
    if config.is_regression:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    if config.is_multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.reshape(-1, config.num_labels).float(), labels.reshape(-1), ignore_index=-100)


class AlbertForPreTraining(AlbertPreTrainedModel):
    """Masked LM + sentence-order prediction.

    With `masked_lm_positions` (B, P) the MLM head runs only at those positions, and `labels` is (B, P) with
    -100 for padding predictions: the loss never builds the (B, T, V) logits.
    """

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_dropout = kernels.Dropout(config.classifier_dropout_prob)
        self.sop_classifier = nn.Linear(config.hidden_size, 2)
        self.init_weights(self.predictions, self.sop_classifier)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None,
                sentence_order_label: Tensor | None = None,
                masked_lm_positions: Tensor | None = None) -> PreTrainingOutput:
        out = self.albert(input_ids, attention_mask, token_type_ids, output_positions=masked_lm_positions)
        h = out.last_hidden_state  # (B, P or T, H)
        mlm_logits = self.predictions(h, self.albert.embeddings.word_embeddings.weight)  # (B, P or T, V)
        sop_logits = self.sop_classifier(self.sop_dropout(out.pooler_output))  # (B, 2)
        mlm_loss = sop_loss = loss = None
        if labels is not None:
            mlm_loss = F.cross_entropy(mlm_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
            loss = mlm_loss
        if sentence_order_label is not None:
            sop_loss = F.cross_entropy(sop_logits.float(), sentence_order_label.reshape(-1))
            loss = sop_loss if loss is None else loss + sop_loss
        return PreTrainingOutput(loss, mlm_logits, sop_logits, mlm_loss, sop_loss)


class AlbertForMaskedLM(AlbertPreTrainedModel):
    """Masked LM alone (no pooler, as Hugging Face's); labels (B, T) with -100 where nothing is predicted.

    With `masked_lm_positions` (B, P) the head runs only at those positions (logits (B, P, V), labels (B, P)),
    as in `AlbertForPreTraining`: fill-mask then never builds the (B, T, V) logits.
    """

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.init_weights(self.predictions)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None,
                masked_lm_positions: Tensor | None = None) -> MaskedLMOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids,
                        output_positions=masked_lm_positions).last_hidden_state  # (B, P or T, H)
        logits = self.predictions(h, self.albert.embeddings.word_embeddings.weight)  # (B, P or T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return MaskedLMOutput(loss, logits)


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    """Dropout + linear on the pooled [CLS]; regression (MSE) when num_labels == 1."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.dropout = kernels.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None) -> SequenceClassifierOutput:
        no_positions = input_ids.new_zeros(input_ids.shape[0], 0)  # the last layer at [CLS] only
        pooled = self.albert(input_ids, attention_mask, token_type_ids, output_positions=no_positions).pooler_output
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = classification_loss(self.config, logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class AlbertForTokenClassification(AlbertPreTrainedModel):
    """Dropout + linear on every token; labels (B, T) with -100 on positions that carry none."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = kernels.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None) -> SequenceClassifierOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(h))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return SequenceClassifierOutput(loss, logits)


class AlbertForMultipleChoice(AlbertPreTrainedModel):
    """Each (context, choice) pair scored by a linear map of its pooled [CLS]; softmax over the C choices."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.dropout = kernels.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights(self.classifier)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None) -> SequenceClassifierOutput:
        B, C, T = input_ids.shape
        flat = lambda t: t.reshape(B * C, T) if t is not None else None  # noqa: E731
        no_positions = input_ids.new_zeros(B * C, 0)  # the last layer at [CLS] only
        pooled = self.albert(flat(input_ids), flat(attention_mask), flat(token_type_ids),
                             output_positions=no_positions).pooler_output  # (B * C, H)
        logits = self.classifier(self.dropout(pooled)).view(B, C)  # (B, C)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class AnswerabilityHead(nn.Module):
    """The official ALBERT SQuAD 2.0 head (after XLNet): end logits conditioned on the start token, and an
    answer-class logit from [CLS] and the start-probability-weighted hidden state."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        H = config.hidden_size
        self.start = nn.Linear(H, 1)
        self.end_dense = nn.Linear(2 * H, H)
        self.end_layer_norm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.end = nn.Linear(H, 1)
        self.answer_dense = nn.Linear(2 * H, H)
        self.answer_dropout = kernels.Dropout(config.classifier_dropout_prob)
        self.answer = nn.Linear(H, 1, bias=False)
        self.start_n_top, self.end_n_top = config.start_n_top, config.end_n_top

    def end_logits(self, h: Tensor, start_h: Tensor) -> Tensor:
        """h (B, T, H), start_h (B, K, H) → (B, K, T): end scores given each candidate start."""
        B, T, H = h.shape
        K = start_h.shape[1]
        pair = torch.cat([h[:, None].expand(B, K, T, H), start_h[:, :, None].expand(B, K, T, H)], -1)
        return self.end(self.end_layer_norm(torch.tanh(self.end_dense(pair)))).squeeze(-1)

    def forward(self, h: Tensor, p_mask: Tensor, start_positions: Tensor | None = None,
                end_positions: Tensor | None = None, is_impossible: Tensor | None = None) -> QuestionAnsweringOutput:
        invalid = p_mask.bool()  # (B, T): positions that cannot start or end an answer
        start_logits = self.start(h).squeeze(-1).float().masked_fill(invalid, -1e30)  # (B, T)
        start_log_probs = F.log_softmax(start_logits, -1)
        start_p = start_log_probs.exp().to(h.dtype)
        cls_h = h[:, 0]  # (B, H)
        start_feature = torch.einsum("bth,bt->bh", h, start_p)
        ans = torch.tanh(self.answer_dense(torch.cat([start_feature, cls_h], -1)))
        cls_logits = self.answer(self.answer_dropout(ans)).squeeze(-1).float()  # (B,)
        if start_positions is not None:
            # Training: condition the end on the gold start, as the official code does.
            start_h = gather_positions(h, start_positions.view(-1, 1))  # (B, 1, H)
            end_logits = self.end_logits(h, start_h).squeeze(1).float().masked_fill(invalid, -1e30)  # (B, T)
            end_log_probs = F.log_softmax(end_logits, -1)
            pick = lambda lp, pos: lp.gather(1, pos.view(-1, 1)).squeeze(1)  # noqa: E731
            span_loss = -(pick(start_log_probs, start_positions) + pick(end_log_probs, end_positions)).mean() / 2
            loss = span_loss
            if is_impossible is not None:
                loss = loss + 0.5 * F.binary_cross_entropy_with_logits(cls_logits, is_impossible.float())
            return QuestionAnsweringOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                           cls_logits=cls_logits)
        # Inference: beam over the top starts, then the top ends for each of them.
        B, T, _ = h.shape
        top_lp, top_idx = start_log_probs.topk(min(self.start_n_top, T), -1)  # (B, k)
        start_h = gather_positions(h, top_idx)  # (B, k, H)
        end_logits = self.end_logits(h, start_h).float().masked_fill(invalid[:, None], -1e30)  # (B, k, T)
        end_lp, end_idx = F.log_softmax(end_logits, -1).topk(min(self.end_n_top, T), -1)  # (B, k, k_end)
        return QuestionAnsweringOutput(start_logits=start_logits, start_top_log_probs=top_lp,
                                       start_top_index=top_idx, end_top_log_probs=end_lp.flatten(1),
                                       end_top_index=end_idx.flatten(1), cls_logits=cls_logits)


class AlbertForQuestionAnswering(AlbertPreTrainedModel):
    """Span extraction: start/end logits per token (Hugging Face's head), or, with
    `config.qa_answerability`, the official SQuAD 2.0 head with an answerability logit."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        if config.qa_answerability:
            self.answerability = AnswerabilityHead(config)
            self.init_weights(self.answerability)
        else:
            self.qa_outputs = nn.Linear(config.hidden_size, 2)
            self.init_weights(self.qa_outputs)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, start_positions: Tensor | None = None,
                end_positions: Tensor | None = None, is_impossible: Tensor | None = None,
                p_mask: Tensor | None = None) -> QuestionAnsweringOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, T, H)
        if self.config.qa_answerability:
            if p_mask is None:  # without a question mask, only padding is ruled out
                p_mask = (1 - attention_mask) if attention_mask is not None else torch.zeros_like(input_ids)
            return self.answerability(h, p_mask, start_positions, end_positions, is_impossible)
        start_logits, end_logits = self.qa_outputs(h).unbind(-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start_logits.shape[1]
            # Positions outside the window are clamped to T and ignored, as Hugging Face does.
            ce = lambda lg, pos: F.cross_entropy(lg.float(), pos.clamp(0, T), ignore_index=T)  # noqa: E731
            loss = (ce(start_logits, start_positions) + ce(end_logits, end_positions)) / 2
        return QuestionAnsweringOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


HEADS = {
    cls.__name__: cls
    for cls in (AlbertModel, AlbertForPreTraining, AlbertForMaskedLM, AlbertForSequenceClassification,
                AlbertForTokenClassification, AlbertForQuestionAnswering, AlbertForMultipleChoice)
}
"""Every model class by its Hugging Face name (config.json `architectures` refers to these)."""
