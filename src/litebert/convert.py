"""Checkpoint directories in and out: Hugging Face ALBERT and BERT layouts, and litebert's own.

A directory holds `config.json` and `model.safetensors` (or a `pytorch_model.bin`, read with weights_only).
Names are translated by declarative module maps: a litebert module path on the left, the other layout's on
the right, with `{block}` (litebert's attention/FFN block), `{group}`/`{inner}` (HF ALBERT's group and layer
within it) or `{layer}` (BERT) placeholders. Parameter names (`weight`, `bias`) follow unchanged.
"""
from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from litebert.config import AlbertConfig
from litebert.files import write_atomic, write_json_atomic

log = logging.getLogger("litebert")

NATIVE = "litebert"
"""Value of config.json's `litebert_layout` key in directories written in litebert's own layout."""

_EMBEDDINGS = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.layer_norm": "embeddings.LayerNorm",
}

ALBERT_MAP = {
    **_EMBEDDINGS,
    "embeddings.projection": "encoder.embedding_hidden_mapping_in",
    "encoder.attention.{block}.query": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention.query",
    "encoder.attention.{block}.key": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention.key",
    "encoder.attention.{block}.value": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention.value",
    "encoder.attention.{block}.dense": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention.dense",
    "encoder.attention.{block}.layer_norm":
        "encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention.LayerNorm",
    "encoder.ffn.{block}.intermediate": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.ffn",
    "encoder.ffn.{block}.output": "encoder.albert_layer_groups.{group}.albert_layers.{inner}.ffn_output",
    "encoder.ffn.{block}.layer_norm":
        "encoder.albert_layer_groups.{group}.albert_layers.{inner}.full_layer_layer_norm",
    "pooler": "pooler",
}
ALBERT_HEAD_MAP = {
    "predictions.dense": "predictions.dense",
    "predictions.layer_norm": "predictions.LayerNorm",
    "predictions": "predictions",  # the output bias
    "sop_classifier": "sop_classifier.classifier",
    "classifier": "classifier",
    "qa_outputs": "qa_outputs",
}
BERT_MAP = {
    **_EMBEDDINGS,
    "encoder.attention.{block}.query": "encoder.layer.{layer}.attention.self.query",
    "encoder.attention.{block}.key": "encoder.layer.{layer}.attention.self.key",
    "encoder.attention.{block}.value": "encoder.layer.{layer}.attention.self.value",
    "encoder.attention.{block}.dense": "encoder.layer.{layer}.attention.output.dense",
    "encoder.attention.{block}.layer_norm": "encoder.layer.{layer}.attention.output.LayerNorm",
    "encoder.ffn.{block}.intermediate": "encoder.layer.{layer}.intermediate.dense",
    "encoder.ffn.{block}.output": "encoder.layer.{layer}.output.dense",
    "encoder.ffn.{block}.layer_norm": "encoder.layer.{layer}.output.LayerNorm",
    "pooler": "pooler.dense",
}
BERT_HEAD_MAP = {
    "predictions.dense": "cls.predictions.transform.dense",
    "predictions.layer_norm": "cls.predictions.transform.LayerNorm",
    "predictions": "cls.predictions",
    "sop_classifier": "cls.seq_relationship",
    "classifier": "classifier",
    "qa_outputs": "qa_outputs",
}
# Keys other layouts carry that hold nothing of their own: tied copies and constant buffers.
_DERIVED = re.compile(r"(^|\.)(predictions\.decoder\.(weight|bias)|position_ids|cls\.predictions\.decoder\.\w+)$")


# ---------------------------------------------------------------------------------------------- names
def _placeholders(config: AlbertConfig, block: int, layout: str) -> dict[str, int]:
    if layout == "bert":
        return {"layer": block}
    return {"group": block // config.inner_group_num, "inner": block % config.inner_group_num}


def external_name(name: str, config: AlbertConfig, layout: str) -> str:
    """litebert parameter name → the same parameter's name in the `albert` or `bert` layout."""
    base_prefix = "albert." if layout == "albert" else "bert."
    body = name.removeprefix("albert.")
    # AlbertModel's own names carry no prefix; the result always does (see _normalise_prefix).
    is_base = body.split(".")[0] in ("embeddings", "encoder", "pooler")
    module, _, param = body.rpartition(".")
    table = (ALBERT_MAP if layout == "albert" else BERT_MAP) if is_base else \
        (ALBERT_HEAD_MAP if layout == "albert" else BERT_HEAD_MAP)
    block = None
    match = re.match(r"^(encoder\.(?:attention|ffn))\.(\d+)\.(.*)$", module)
    if match:
        module, block = f"{match[1]}.{{block}}.{match[3]}", int(match[2])
    if module not in table:
        raise ValueError(f"no {layout} name for litebert parameter {name!r}")
    target = table[module].format(**_placeholders(config, block, layout)) if block is not None else table[module]
    return f"{base_prefix if is_base else ''}{target}.{param}"


def _external_or_none(name: str, config: AlbertConfig, layout: str) -> str | None:
    """The other layout's name, or None for head parameters it has no name for (the answerability head)."""
    try:
        return external_name(name, config, layout)
    except ValueError:
        if name.startswith("albert."):
            raise
        return None


# ---------------------------------------------------------------------------------------------- reading
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
"""The weights of a checkpoint directory, first found wins (Hugging Face's order): one file, or the index of a
sharded checkpoint (`weight_map`: tensor name → shard file)."""


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory, sharded or not; never executes code from the files."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            return _read_sharded(path) if name.endswith(".index.json") else _read_weights_file(path)
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (nor a sharded index)")


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """One safetensors file, or a PyTorch one read with weights_only."""
    is_st = path.name.endswith(".safetensors")
    try:
        return load_file(str(path)) if is_st else torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable {'safetensors' if is_st else 'PyTorch'} weights file "
                         f"({str(err).splitlines()[0]})") from None


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    """The tensors a sharded checkpoint's index lists, each taken from the shard the index names."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards: dict[str, list[str]] = {}
        for key, shard in weight_map.items():
            shards.setdefault(shard, []).append(key)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{index}: not a sharded-checkpoint index (expected JSON with a weight_map object)") \
            from None
    state = {}
    for shard, keys in shards.items():
        path = index.parent / shard
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in {index.name} is missing")
        tensors = _read_weights_file(path)
        absent = [k for k in keys if k not in tensors]
        if absent:
            raise ValueError(f"{path}: lacks {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}, which "
                             f"{index.name} places in it")
        state.update((k, tensors[k]) for k in keys)
    return state


def _layout_of(data: dict[str, Any]) -> str:
    if data.get("litebert_layout") == NATIVE:
        return NATIVE
    return "bert" if data.get("model_type") == "bert" else "albert"


def _normalise_prefix(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Base models saved alone (HF `AlbertModel`/`BertModel`) carry no `albert.`/`bert.` prefix; add it."""
    prefix = "albert." if layout == NATIVE or layout == "albert" else "bert."
    if any(k.startswith(prefix) for k in state):
        return state
    return {(prefix + k if k.split(".")[0] in ("embeddings", "encoder", "pooler") else k): v
            for k, v in state.items()}


def _drop_identity_projection(state: dict, layout: str, config: AlbertConfig) -> None:
    """An E = H model without projection is written to HF ALBERT with an identity map; take it out again."""
    if layout != "albert" or config.project_embeddings:
        return
    w = state.pop("albert.encoder.embedding_hidden_mapping_in.weight", None)
    b = state.pop("albert.encoder.embedding_hidden_mapping_in.bias", None)
    if w is not None and not (torch.equal(w, torch.eye(w.shape[0], dtype=w.dtype)) and not b.any()):
        raise ValueError("config.json says project_embeddings=false but embedding_hidden_mapping_in is not the "
                         "identity; remove project_embeddings from config.json to keep the projection")


def read_config(directory: Path) -> tuple[AlbertConfig, str]:
    """(the AlbertConfig, the weights' layout: "albert", "bert" or litebert's) of a checkpoint directory."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a checkpoint directory")
    cfg_path = directory / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{directory}: no config.json")
    data = json.loads(cfg_path.read_text())
    layout = _layout_of(data)
    if layout == "albert" and "project_embeddings" not in data:
        data["project_embeddings"] = True  # Hugging Face's ALBERT always has the E→H map
    data.pop("litebert_layout", None)
    return AlbertConfig.from_dict(data), layout


def load_pretrained(cls, directory: Path, **overrides: Any):
    """Build `cls` from a checkpoint directory (see module docstring), checking every key and shape."""
    config, layout = read_config(directory)
    if overrides:
        config = config.replace(**overrides)
    state = _normalise_prefix(read_state_dict(directory), layout)
    _drop_identity_projection(state, layout, config)
    with torch.device("meta"):
        model = cls(config)
    base_prefix = "" if hasattr(model, "albert") else "albert."  # AlbertModel's own names carry no prefix
    wanted = {name: (base_prefix + name if layout == NATIVE else _external_or_none(name, config, layout))
              for name in model.state_dict()}
    loaded, fresh = _match_keys(model, wanted, state, directory)
    model = model.to_empty(device="cpu")
    model.load_state_dict(loaded, strict=False, assign=True)
    if fresh:
        _initialise_fresh_head(model, fresh)
    return model


def _match_keys(model, wanted: dict[str, str], state: dict, directory: Path):
    """Pick the tensors `model` needs from `state`; returns (tensors by litebert name, names left fresh).

    The encoder must be complete. Each head module (e.g. the MLM head and the SOP classifier of pretraining)
    may be absent altogether, and is then initialised fresh (fine-tuning starts from a pretraining checkpoint;
    continued pretraining from an MLM-only one); keys of other heads are ignored, both logged; anything else,
    a head present in part included, is an error.
    """
    own = model.state_dict()
    # The pooler counts as a head: MLM-only and token-level models are saved without one.
    is_base = lambda n: (n.startswith("albert.") or not hasattr(model, "albert")) and ".pooler." not in f".{n}"  # noqa: E731
    missing = [n for n, ext in wanted.items() if ext is None or ext not in state]
    missing_base = [n for n in missing if is_base(n)]
    missing_head = [n for n in missing if not is_base(n)]
    partial = [n for n in missing_head
               if any(_module_of(m) == _module_of(n) and m not in missing_head for m in wanted if not is_base(m))]
    if missing_base or partial:
        names = ", ".join(wanted[n] if wanted[n] is not None else n for n in (missing_base or partial))
        raise ValueError(f"{directory}: checkpoint lacks keys {names}")
    used = set(wanted.values())
    extra = [k for k in state if k not in used and not _DERIVED.search(k)]
    # Weights a head does not use: other heads, and the pooler of heads built without one (MLM, tokens, QA).
    head_names = {"predictions", "sop_classifier", "classifier", "qa_outputs", "answerability", "cls"}
    no_pooler = getattr(getattr(model, "albert", model), "pooler", None) is None
    unexpected = [k for k in extra if k.split(".")[0] not in head_names
                  and not (no_pooler and re.match(r"^(albert|bert)\.pooler\.", k))]
    if unexpected:
        raise ValueError(f"{directory}: unexpected keys {', '.join(unexpected)}")
    loaded = {}
    for name, ext in wanted.items():
        if ext is None or ext not in state:
            continue
        if tuple(state[ext].shape) != tuple(own[name].shape):
            raise ValueError(f"{directory}: key {ext} has shape {tuple(state[ext].shape)}, "
                             f"expected {tuple(own[name].shape)}")
        loaded[name] = state[ext].to(own[name].dtype)
    if missing_head:
        log.warning("%s: newly initialised head weights: %s", directory, ", ".join(missing_head))
    if extra:
        log.info("%s: weights this model does not use: %s", directory, ", ".join(extra))
    return loaded, missing_head


def _module_of(name: str) -> str:
    """The module a parameter belongs to for loading purposes: a head ("predictions"), or the pooler."""
    dotted = f".{name}"
    return (dotted.rpartition(".pooler.")[0] + ".pooler").lstrip(".") if ".pooler." in dotted else name.split(".")[0]


def _initialise_fresh_head(model, fresh: list[str]) -> None:
    """Initialise the head modules (and pooler) that the checkpoint did not have, as a new model would."""
    modules = sorted({_module_of(name) for name in fresh})
    model.init_weights(*(model.get_submodule(m) for m in modules))


# ---------------------------------------------------------------------------------------------- writing
def hf_expressible(model) -> str | None:
    """None when Hugging Face's ALBERT classes can hold this model, else the reason they cannot."""
    config = model.config
    if config.share in ("attention", "ffn"):
        return f"share={config.share!r} (HF ALBERT shares whole layers or nothing)"
    if config.qa_answerability:
        return "the SQuAD 2.0 answerability head"
    if config.norm_position != "post":
        return f"norm_position={config.norm_position!r} (HF ALBERT's LayerNorms follow each block)"
    return None


def _hf_equivalent(config: AlbertConfig) -> AlbertConfig:
    """The same function in HF ALBERT's terms: nothing shared = one group per applied layer.

    Inner layers are flattened into plain layers (L x inner layers of one each), which computes the same and
    avoids Hugging Face 4.x's head-mask indexing fault for groups of several inner layers.
    """
    if config.share != "none":
        return config
    depth = config.depth
    return config.replace(share="all", num_hidden_layers=depth, num_hidden_groups=depth, inner_group_num=1)


def _hf_config(model) -> dict[str, Any]:
    return {**_hf_equivalent(model.config).to_dict(), "architectures": [type(model).__name__]}


def _hf_state(model) -> dict[str, torch.Tensor]:
    config = model.config
    hf_cfg = _hf_equivalent(config)
    state = {external_name(name, hf_cfg, "albert"): t for name, t in model.state_dict().items()}
    if not config.project_embeddings:  # HF always maps E→H: write the identity, which changes nothing
        H = config.hidden_size
        state["albert.encoder.embedding_hidden_mapping_in.weight"] = torch.eye(H)
        state["albert.encoder.embedding_hidden_mapping_in.bias"] = torch.zeros(H)
    if type(model).__name__ == "AlbertModel":
        state = {k.removeprefix("albert."): v for k, v in state.items()}
    return state


LAYOUTS = ("auto", "huggingface", "litebert", "bert")
BERT_ARCHITECTURES = {"AlbertModel": "BertModel", "AlbertForPreTraining": "BertForPreTraining",
                      "AlbertForMaskedLM": "BertForMaskedLM",
                      "AlbertForSequenceClassification": "BertForSequenceClassification",
                      "AlbertForTokenClassification": "BertForTokenClassification",
                      "AlbertForQuestionAnswering": "BertForQuestionAnswering"}


def bert_expressible(model) -> str | None:
    """None when Hugging Face's BERT classes can hold this model (nothing shared, E = H), else why not."""
    config = model.config
    if config.share != "none":
        return f"share={config.share!r} (BERT shares no weights between layers)"
    if config.project_embeddings or config.embedding_size != config.hidden_size:
        return "factorized embeddings (BERT has no E→H projection)"
    if config.norm_position != "post":
        return f"norm_position={config.norm_position!r}"
    if config.qa_answerability:
        return "the SQuAD 2.0 answerability head"
    if type(model).__name__ not in BERT_ARCHITECTURES:
        return f"{type(model).__name__} (BERT has no such head class)"
    return None


def _bert_config(model) -> dict[str, Any]:
    c = model.config
    data = {"model_type": "bert", "architectures": [BERT_ARCHITECTURES[type(model).__name__]],
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.depth,
            "num_attention_heads": c.num_attention_heads, "intermediate_size": c.intermediate_size,
            "hidden_act": c.hidden_act, "hidden_dropout_prob": c.hidden_dropout_prob,
            "attention_probs_dropout_prob": c.attention_probs_dropout_prob,
            "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
            "initializer_range": c.initializer_range, "layer_norm_eps": c.layer_norm_eps,
            "pad_token_id": c.pad_token_id, "classifier_dropout": c.classifier_dropout_prob}
    full = c.to_dict()
    for key in ("num_labels", "id2label", "label2id", "problem_type"):
        if key in full:
            data[key] = full[key]
    return data


def _bert_state(model) -> dict[str, torch.Tensor]:
    state = {external_name(name, model.config, "bert"): t for name, t in model.state_dict().items()}
    if type(model).__name__ == "AlbertModel":
        state = {k.removeprefix("bert."): v for k, v in state.items()}
    return state


def save_pretrained(model, directory: Path, layout: str = "auto") -> str:
    """Write config.json + model.safetensors atomically: `auto` writes HF ALBERT's layout when it can express
    the model and litebert's otherwise (with a warning); `huggingface` refuses, with the reason, a model HF
    cannot hold; `litebert` always writes litebert's own. Returns the layout written."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "bert":  # Hugging Face BERT classes (share=none, E = H)
        reason = bert_expressible(model)
        if reason is not None:
            raise ValueError(f"{directory}: Hugging Face's BERT cannot hold this model: {reason}")
        return _write_model(directory, _bert_config(model), _bert_state(model), "bert")
    layout_asked = layout
    reason = hf_expressible(model) if layout != "litebert" else "litebert's layout was asked for"
    if reason is not None and layout == "huggingface":
        raise ValueError(f"{directory}: Hugging Face's ALBERT cannot hold this model: {reason}")
    if reason is None:
        data, state, layout = _hf_config(model), _hf_state(model), "huggingface"
    else:
        data = {**model.config.to_dict(), "architectures": [type(model).__name__], "litebert_layout": NATIVE}
        state, layout = dict(model.state_dict()), NATIVE
        if layout_asked == "auto":
            log.warning("%s: saved in litebert's layout: Hugging Face cannot express %s", directory, reason)
    return _write_model(directory, data, state, layout)


def _write_model(directory: Path, data: dict[str, Any], state: dict[str, torch.Tensor], layout: str) -> str:
    """config.json + model.safetensors, each atomically; returns `layout`."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    write_json_atomic(directory / "config.json", data, sort_keys=True)
    return layout
