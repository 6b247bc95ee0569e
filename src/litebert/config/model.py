"""ALBERT's configuration: one typed dataclass, the released presets, and Hugging Face config.json in and out.

The sharing layout is data, not subclasses: `share` says which sub-blocks are tied across layers, and
`num_hidden_groups` / `inner_group_num` say how layers map onto parameter groups, exactly as the official
code and Hugging Face's port do (layer i is served by group int(i * num_hidden_groups / num_hidden_layers),
and every group applies its `inner_group_num` layers in turn).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litebert.files import write_json_atomic

SHARE_CHOICES = ("all", "attention", "ffn", "none")
NORM_POSITIONS = ("post", "pre")
ACTIVATIONS = ("gelu_new", "gelu", "relu", "silu", "swish", "gelu_fast", "gelu_pytorch_tanh", "tanh")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


@dataclass
class AlbertConfig:
    """Everything that fixes an ALBERT encoder and its heads.

    Field names follow Hugging Face's `AlbertConfig` so that config.json files read and write unchanged.
    """

    vocab_size: int = 30000
    """V: size of the token vocabulary."""
    embedding_size: int = 128
    """E: width of the token embeddings (the paper's factorisation, E << H)."""
    hidden_size: int = 768
    """H: width of the transformer layers."""
    num_hidden_layers: int = 12
    """L: number of layer applications (each applies `inner_group_num` transformer layers)."""
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    """Width of the feed-forward block (4H in the paper)."""
    hidden_act: str = "gelu_new"
    """`gelu_new` is the tanh approximation the official code uses (in bf16 on CPU litebert evaluates it in the
    erf form, see kernels.gelu_tanh; `gelu_pytorch_tanh` keeps tanh everywhere); `gelu` is the exact erf form."""
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    """Dropout before the classification / SOP heads."""
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    """Standard deviation of the truncated normal (cut at 2 std) every weight starts from."""
    layer_norm_eps: float = 1e-12
    share: str = "all"
    """Cross-layer sharing: `all`, `attention` (attention tied, FFN per layer), `ffn`, or `none`."""
    num_hidden_groups: int = 1
    """Number of parameter groups the L layers are spread over (1 = the paper's ALBERT)."""
    inner_group_num: int = 1
    """Transformer layers applied in turn inside each layer application."""
    norm_position: str = "post"
    """Where each block's LayerNorm sits: `post` (ALBERT and BERT: LN(x + f(x))) or `pre` (x + f(LN(x)), plus
    a final LayerNorm after the last layer). `pre` is not ALBERT: an option for short, high-learning-rate runs,
    which Hugging Face's ALBERT classes cannot hold (such models are saved in litebert's layout)."""
    project_embeddings: bool | None = None
    """Whether an E→H linear map follows the embeddings; None means "when E != H"."""
    pad_token_id: int = 0
    num_labels: int = 2
    """Outputs of the sequence/token classification heads; 1 means regression."""
    problem_type: str | None = None
    """`regression`, `single_label_classification`, `multi_label_classification` (each label a sigmoid, binary
    cross-entropy on multi-hot labels, as Hugging Face), or None to infer from num_labels."""
    qa_answerability: bool = False
    """Question answering with the official SQuAD 2.0 head (end conditioned on start, answer-class logit)."""
    start_n_top: int = 5
    end_n_top: int = 5
    id2label: dict[int, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Keys of a read config.json that litebert does not use, written back unchanged."""

    def __post_init__(self) -> None:
        if self.project_embeddings is None:
            self.project_embeddings = self.embedding_size != self.hidden_size
        if self.id2label is not None:
            self.id2label = {int(k): v for k, v in self.id2label.items()}
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range."""
        positive = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size", "num_hidden_groups",
                    "inner_group_num", "num_labels")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AlbertConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"AlbertConfig.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})")
        if self.share not in SHARE_CHOICES:
            raise ValueError(f"AlbertConfig.share must be one of {', '.join(SHARE_CHOICES)}, got {self.share!r}")
        if self.num_hidden_groups > self.num_hidden_layers:
            raise ValueError(
                f"AlbertConfig.num_hidden_groups ({self.num_hidden_groups}) cannot exceed num_hidden_layers "
                f"({self.num_hidden_layers})")
        if self.norm_position not in NORM_POSITIONS:
            raise ValueError(f"AlbertConfig.norm_position must be one of {', '.join(NORM_POSITIONS)}, "
                             f"got {self.norm_position!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"AlbertConfig.hidden_act must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}")
        if not self.project_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                f"AlbertConfig.project_embeddings=False needs embedding_size == hidden_size, got "
                f"{self.embedding_size} != {self.hidden_size}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"AlbertConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"AlbertConfig.problem_type must be one of {', '.join(map(str, PROBLEM_TYPES))}, "
                             f"got {self.problem_type!r}")

    # ------------------------------------------------------------------ derived
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def depth(self) -> int:
        """Transformer layers applied in one forward pass: L x inner_group_num."""
        return self.num_hidden_layers * self.inner_group_num

    @property
    def is_regression(self) -> bool:
        return self.problem_type == "regression" or (self.problem_type is None and self.num_labels == 1)

    @property
    def is_multi_label(self) -> bool:
        return self.problem_type == "multi_label_classification"

    def group_of_layer(self, layer: int) -> int:
        """The parameter group that serves layer application `layer` (official and HF formula)."""
        return int(layer / (self.num_hidden_layers / self.num_hidden_groups))

    def replace(self, **changes: Any) -> "AlbertConfig":
        """A copy with some fields changed (validated); `project_embeddings` is re-derived unless given."""
        if "project_embeddings" not in changes and ("embedding_size" in changes or "hidden_size" in changes):
            changes["project_embeddings"] = None
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "AlbertConfig":
        """A released or named configuration, e.g. `albert-base-v2`, `bert-base`, `albert-tiny`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ json
    def to_dict(self) -> dict[str, Any]:
        """Hugging Face's config.json keys (model_type albert) plus litebert's sharing fields."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        if out["id2label"] is None:
            del out["id2label"]
        else:
            out["id2label"] = {str(k): v for k, v in out["id2label"].items()}
            out["label2id"] = {v: int(k) for k, v in out["id2label"].items()}
        if self.problem_type is None:
            del out["problem_type"]
        return {**self.extra, "model_type": "albert", **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AlbertConfig":
        """Read Hugging Face's ALBERT or BERT config.json (BERT = ALBERT with E = H, nothing shared)."""
        data = dict(data)
        model_type = data.get("model_type", "albert")
        if model_type == "bert":
            data = _bert_to_albert_fields(data)
        elif model_type != "albert":
            raise ValueError(f"config.json: model_type must be 'albert' or 'bert', got {model_type!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        ignored = {"label2id", "model_type"}
        extra = {k: v for k, v in data.items() if k not in names and k not in ignored}
        if "num_labels" not in known and isinstance(data.get("id2label"), dict):
            known["num_labels"] = len(data["id2label"])
        return cls(**known, extra=extra)

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict(), sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> "AlbertConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no config.json")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data)


def _bert_to_albert_fields(data: dict[str, Any]) -> dict[str, Any]:
    """BERT's config keys in ALBERT's terms: E = H, every layer its own parameters, no projection."""
    out = {k: v for k, v in data.items() if k not in ("model_type", "classifier_dropout")}
    out["embedding_size"] = data["hidden_size"]
    out["share"] = "none"
    out["num_hidden_groups"] = 1
    out["inner_group_num"] = 1
    out["project_embeddings"] = False
    out["classifier_dropout_prob"] = data.get("classifier_dropout") or data.get("hidden_dropout_prob", 0.1)
    out.setdefault("hidden_act", "gelu")
    return out


def _albert(hidden: int, layers: int, heads: int, intermediate: int, dropout: float, **kw: Any) -> dict[str, Any]:
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=intermediate, hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout, **kw)


# The released configurations (config.json of google-research/albert's TF-Hub modules). v1 used dropout 0.1
# except xxlarge; v2 turned dropout off everywhere. All use V=30000, E=128, gelu_new, everything shared.
PRESETS: dict[str, dict[str, Any]] = {
    "albert-base-v1": _albert(768, 12, 12, 3072, 0.1),
    "albert-large-v1": _albert(1024, 24, 16, 4096, 0.1),
    "albert-xlarge-v1": _albert(2048, 24, 16, 8192, 0.1),
    "albert-xxlarge-v1": _albert(4096, 12, 64, 16384, 0.0),
    "albert-base-v2": _albert(768, 12, 12, 3072, 0.0),
    "albert-large-v2": _albert(1024, 24, 16, 4096, 0.0),
    "albert-xlarge-v2": _albert(2048, 24, 16, 8192, 0.0),
    "albert-xxlarge-v2": _albert(4096, 12, 64, 16384, 0.0),
    # BERT of the paper's Table 1: E = H, nothing shared, exact gelu, dropout 0.1.
    "bert-base": _albert(768, 12, 12, 3072, 0.1, embedding_size=768, share="none", hidden_act="gelu"),
    "bert-large": _albert(1024, 24, 16, 4096, 0.1, embedding_size=1024, share="none", hidden_act="gelu"),
    # Small presets for CPU work and tests (not released models).
    "albert-tiny": _albert(312, 4, 12, 1248, 0.0),
    "albert-mini": _albert(256, 6, 4, 1024, 0.0),
    "albert-small": _albert(384, 6, 6, 1536, 0.0),
}
