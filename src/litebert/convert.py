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
from dataclasses import dataclass
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


def _split_name(name: str) -> tuple[bool, str, int | None, str]:
    """litebert parameter name → (part of the base model?, its module's key in the maps (`{block}` for an
    encoder block), the block index or None, the parameter: weight / bias)."""
    body = name.removeprefix("albert.")  # AlbertModel's own names carry no prefix
    is_base = body.split(".")[0] in ("embeddings", "encoder", "pooler")
    module, _, param = body.rpartition(".")
    match = re.match(r"^(encoder\.(?:attention|ffn))\.(\d+)\.(.*)$", module)
    if match:
        return is_base, f"{match[1]}.{{block}}.{match[3]}", int(match[2]), param
    return is_base, module, None, param


def external_name(name: str, config: AlbertConfig, layout: str) -> str:
    """litebert parameter name → the same parameter's name in the `albert` or `bert` layout (base model names
    always with their prefix, see _normalise_prefix)."""
    is_base, module, block, param = _split_name(name)
    table = (ALBERT_MAP if layout == "albert" else BERT_MAP) if is_base else \
        (ALBERT_HEAD_MAP if layout == "albert" else BERT_HEAD_MAP)
    if module not in table:
        raise ValueError(f"no {layout} name for litebert parameter {name!r}")
    target = table[module].format(**_placeholders(config, block, layout)) if block is not None else table[module]
    base_prefix = "albert." if layout == "albert" else "bert."
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


def find_weights(directory: Path) -> Path:
    """The weights file (or shard index) of a checkpoint directory, the first of WEIGHT_FILES found. Given a
    litebert run directory instead of its model, the error says where the model is."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (nor a sharded index)"
                            f"{_run_directory_hint(directory)}")


def _run_directory_hint(directory: Path) -> str:
    if (directory / "final" / "config.json").is_file():
        return f"; it is a pretraining run, whose model is {directory / 'final'}"
    models = sorted(directory.glob("seed-*/model"))
    if models:
        return f"; it is a fine-tuning run, whose models are {', '.join(map(str, models))}"
    if (directory / "state.safetensors").is_file():
        return ("; it is a resumable training checkpoint, not a model directory: a pretraining run writes its model "
                "to final/ when it ends")
    return ""


def check_model_directory(directory: Path) -> None:
    """A FileNotFoundError unless `directory` holds a config.json and weights; given a litebert run directory or
    checkpoint instead, the error says where the model is."""
    read_config(directory)
    find_weights(directory)


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory, sharded or not; never executes code from the files."""
    path = find_weights(directory)
    return _read_sharded(path) if path.name.endswith(".index.json") else _read_weights_file(path)


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
        raise FileNotFoundError(f"{directory}: no config.json{_run_directory_hint(directory)}")
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


def _external_state(state: dict[str, torch.Tensor], config: AlbertConfig, layout: str,
                    architecture: str) -> dict[str, torch.Tensor]:
    """litebert-named tensors → the `albert` (HF ALBERT) or `bert` layout's names; a base model's (AlbertModel)
    without their prefix, as Hugging Face saves base models."""
    names_config = _hf_equivalent(config) if layout == "albert" else config
    out = {external_name(name, names_config, layout): t for name, t in state.items()}
    if layout == "albert" and not config.project_embeddings:  # HF always maps E→H: the identity changes nothing
        H = config.hidden_size
        out["albert.encoder.embedding_hidden_mapping_in.weight"] = torch.eye(H)
        out["albert.encoder.embedding_hidden_mapping_in.bias"] = torch.zeros(H)
    if architecture == "AlbertModel":
        out = {k.removeprefix(f"{layout}."): v for k, v in out.items()}
    return out


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


def save_pretrained(model, directory: Path, layout: str = "auto") -> str:
    """Write config.json + model.safetensors atomically: `auto` writes HF ALBERT's layout when it can express
    the model and litebert's otherwise (with a warning); `huggingface` refuses, with the reason, a model HF
    cannot hold; `litebert` always writes litebert's own. Returns the layout written."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    from litebert.quantize import Int8Linear

    if any(isinstance(m, Int8Linear) for m in model.modules()):
        raise ValueError(f"{directory}: this model was quantised to int8 for inference (litebert.quantize) and "
                         f"cannot be saved as a checkpoint; save the fp32 model before quantising it")
    if layout == "bert":  # Hugging Face BERT classes (share=none, E = H)
        reason = bert_expressible(model)
        if reason is not None:
            raise ValueError(f"{directory}: Hugging Face's BERT cannot hold this model: {reason}")
        state = _external_state(model.state_dict(), model.config, "bert", type(model).__name__)
        return _write_model(directory, _bert_config(model), state, "bert")
    layout_asked = layout
    reason = hf_expressible(model) if layout != "litebert" else "litebert's layout was asked for"
    if reason is not None and layout == "huggingface":
        raise ValueError(f"{directory}: Hugging Face's ALBERT cannot hold this model: {reason}")
    if reason is None:
        data, layout = _hf_config(model), "huggingface"
        state = _external_state(model.state_dict(), model.config, "albert", type(model).__name__)
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


# ---------------------------------------------------------------------------------------------- TF in
# Google's TensorFlow checkpoints (google-research/albert and /bert, and their TF-Hub modules): litebert module →
# (variable scope, kind). The kind names the parameters: a dense layer's weight is the scope's `kernel`, stored
# [in, out] where torch's Linear is [out, in]; a LayerNorm's weight and bias are `gamma` and `beta`; an
# embedding table is the scope itself; the heads' output layers are `output_weights` ([out, in] already) and
# `output_bias`.
DENSE = {"weight": "kernel", "bias": "bias"}
NORM = {"weight": "gamma", "bias": "beta"}
TABLE = {"weight": ""}
OUTPUT = {"weight": "output_weights", "bias": "output_bias"}
_TF_COMMON = {
    "embeddings.word_embeddings": ("bert/embeddings/word_embeddings", TABLE),
    "embeddings.position_embeddings": ("bert/embeddings/position_embeddings", TABLE),
    "embeddings.token_type_embeddings": ("bert/embeddings/token_type_embeddings", TABLE),
    "embeddings.layer_norm": ("bert/embeddings/LayerNorm", NORM),
    "pooler": ("bert/pooler/dense", DENSE),
    "predictions.dense": ("cls/predictions/transform/dense", DENSE),
    "predictions.layer_norm": ("cls/predictions/transform/LayerNorm", NORM),
    "predictions": ("cls/predictions", OUTPUT),  # the output bias; the decoder is the word embeddings
    "sop_classifier": ("cls/seq_relationship", OUTPUT),
}
# An encoder block's modules: ALBERT's scope inside group g's inner layer i, BERT's inside layer l, and the kind.
_TF_BLOCK = {
    "encoder.attention.{block}.query": ("attention_1/self/query", "attention/self/query", DENSE),
    "encoder.attention.{block}.key": ("attention_1/self/key", "attention/self/key", DENSE),
    "encoder.attention.{block}.value": ("attention_1/self/value", "attention/self/value", DENSE),
    "encoder.attention.{block}.dense": ("attention_1/output/dense", "attention/output/dense", DENSE),
    "encoder.attention.{block}.layer_norm": ("LayerNorm", "attention/output/LayerNorm", NORM),
    "encoder.ffn.{block}.intermediate": ("ffn_1/intermediate/dense", "intermediate/dense", DENSE),
    "encoder.ffn.{block}.output": ("ffn_1/intermediate/output/dense", "output/dense", DENSE),
    "encoder.ffn.{block}.layer_norm": ("LayerNorm_1", "output/LayerNorm", NORM),
}
TF_ALBERT_MAP = {
    **_TF_COMMON,
    "embeddings.projection": ("bert/encoder/embedding_hidden_mapping_in", DENSE),  # only when E != H
    **{k: (f"bert/encoder/transformer/group_{{group}}/inner_group_{{inner}}/{albert}", kind)
       for k, (albert, _, kind) in _TF_BLOCK.items()},
}
TF_BERT_MAP = {**_TF_COMMON, **{k: (f"bert/encoder/layer_{{layer}}/{bert}", kind)
                                for k, (_, bert, kind) in _TF_BLOCK.items()}}
# Optimizer slots (Adam / LAMB moments, EMA shadows) and bookkeeping: skipped, and counted by kind.
TF_SKIPPED = re.compile(r"(?:/|^)(adam_m|adam_v|lamb_m|lamb_v|Adam|Adam_1|LAMB|LAMB_1|Momentum|"
                        r"AdamWeightDecayOptimizer|AdamWeightDecayOptimizer_1|ExponentialMovingAverage)$"
                        r"|^(global_step|beta1_power|beta2_power|good_steps|current_loss_scale|"
                        r"_CHECKPOINTABLE_OBJECT_GRAPH)$")
# Keys of the official albert_config.json for experiments litebert does not build, with their neutral values.
_TF_CONFIG_ONLY = {"net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0, "down_scale_factor": 1,
                   "layers_to_keep": []}
TF_CONFIG_NAMES = {"albert": ("albert_config.json", "config.json"), "bert": ("bert_config.json", "config.json")}
TF_TOKENIZER_NAMES = {"albert": ("spiece.model", "30k-clean.model"), "bert": ("vocab.txt",)}


def tf_name(name: str, config: AlbertConfig, family: str) -> tuple[str, bool]:
    """litebert parameter name → (its variable in Google's `albert` or `bert` TF checkpoint, stored transposed?)."""
    _, module, block, param = _split_name(name)
    table = TF_ALBERT_MAP if family == "albert" else TF_BERT_MAP
    if module not in table or param not in table[module][1]:
        raise ValueError(f"no TensorFlow {family} name for litebert parameter {name!r}")
    scope, kind = table[module]
    if block is not None:
        scope = scope.format(**_placeholders(config, block, family))
    leaf = kind[param]
    return (f"{scope}/{leaf}" if leaf else scope), leaf == "kernel"


@dataclass
class TFConversion:
    """What `convert_tf` read and wrote."""

    directory: Path
    architecture: str  # the class config.json names, e.g. AlbertForPreTraining or BertForPreTraining
    family: str  # "albert" or "bert"
    tensors: int  # variables converted
    skipped: dict[str, int]  # optimizer slots and bookkeeping variables left out, by kind
    config: Path
    tokenizer: Path | None


def convert_tf(source: str | Path, out: str | Path, config_file: str | Path | None = None,
               tokenizer_file: str | Path | None = None, do_lower_case: bool = True) -> TFConversion:
    """Google's TF ALBERT or BERT checkpoint → a Hugging Face directory (config.json, model.safetensors, the
    tokenizer), without TensorFlow.

    source: a checkpoint prefix, its .index, a directory with a `checkpoint` file or one .index, or a TF-Hub
    module directory. The config (albert_config.json / bert_config.json) and tokenizer (spiece.model,
    30k-clean.model / vocab.txt) are found beside the checkpoint (and in a module's assets/) unless given.
    Everything is checked before anything is written.
    """
    from litebert.tfbundle import find_prefix, open_bundle

    prefix, hub = find_prefix(source)
    bundle = open_bundle(prefix)
    index = Path(f"{prefix}.index")
    # A checkpoint fine-tuned through a TF-Hub module has the module's variables under `module/`.
    names = {name.removeprefix("module/"): name for name in bundle.entries}
    family = _tf_family(names, index)
    search = [prefix.parent] + ([hub, hub / "assets"] if hub is not None else [])
    config_path = Path(config_file) if config_file else _first_file(search, TF_CONFIG_NAMES[family])
    if config_path is None:
        raise FileNotFoundError(f"{index}: no {' or '.join(TF_CONFIG_NAMES[family])} beside the checkpoint; "
                                f"pass --config FILE")
    config = tf_config(config_path, family, index)
    state, skipped = _read_tf_state(bundle, names, config, family, config_path)
    tok_path = Path(tokenizer_file) if tokenizer_file else _first_file(search, TF_TOKENIZER_NAMES[family])
    tokenizer = _tf_tokenizer(tok_path, config.vocab_size, do_lower_case)
    architecture = _write_converted(Path(out), state, config, family)
    if tokenizer is not None:
        tokenizer.save_pretrained(Path(out))
    else:
        log.warning("%s: no tokenizer beside the checkpoint (%s); none written", index,
                    " or ".join(TF_TOKENIZER_NAMES[family]))
    if skipped:
        log.info("%s: skipped %d optimizer and bookkeeping variables (%s)", index, sum(skipped.values()),
                 ", ".join(f"{k} {v}" for k, v in skipped.items()))
    return TFConversion(Path(out), architecture, family, len(state), skipped, config_path, tok_path)


def _first_file(directories: list[Path], names: tuple[str, ...]) -> Path | None:
    return next((d / n for d in directories for n in names if (d / n).is_file()), None)


def _tf_family(names: dict[str, str], index: Path) -> str:
    """"albert" (shared groups) or "bert" (one scope per layer), from the encoder's variable names."""
    if any(n.startswith("bert/encoder/transformer/") for n in names):
        return "albert"
    if any(re.match(r"bert/encoder/layer_\d+/", n) for n in names):
        return "bert"
    sample = ", ".join(sorted(names)[:3]) or "no variables"
    raise ValueError(f"{index}: not an ALBERT or BERT checkpoint (no bert/encoder/transformer/ or "
                     f"bert/encoder/layer_N/ variables; it holds {sample} ...)")


def tf_config(path: Path, family: str, index: Path) -> AlbertConfig:
    """AlbertConfig from an official albert_config.json / bert_config.json, or a Hugging Face config.json.

    The official files say "gelu" for the tanh approximation (their modeling.py), which is gelu_new here.
    """
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    is_albert_config = "embedding_size" in data or data.get("model_type") == "albert"
    if family == "bert" and is_albert_config and data.get("embedding_size") != data.get("hidden_size"):
        raise ValueError(f"{index} is a BERT checkpoint (bert/encoder/layer_N/ variables) but {path} describes "
                         f"ALBERT (embedding_size {data['embedding_size']})")
    if family == "albert" and not is_albert_config:
        raise ValueError(f"{index} is an ALBERT checkpoint (bert/encoder/transformer/ variables) but {path} has no "
                         f"embedding_size: a BERT config? Pass the checkpoint's albert_config.json")
    if "model_type" not in data:
        for key, neutral in _TF_CONFIG_ONLY.items():
            value = data.pop(key, neutral)
            if value != neutral:
                raise ValueError(f"{path}: {key}={value!r} is an experimental ALBERT variant litebert does not "
                                 f"build (expected {neutral!r})")
        if data.get("hidden_act") == "gelu":
            data["hidden_act"] = "gelu_new"
        data["model_type"] = family
    return AlbertConfig.from_dict(data)


def _read_tf_state(bundle, names: dict[str, str], config: AlbertConfig, family: str,
                   config_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(litebert-named float32 tensors of every module present, skipped variables by kind); raises on
    variables it cannot place, shapes the config contradicts, and modules present in part or missing."""
    from litebert.model import AlbertForPreTraining

    index = Path(f"{bundle.prefix}.index")
    with torch.device("meta"):
        expected = {n: tuple(t.shape) for n, t in AlbertForPreTraining(config).state_dict().items()}
    wanted = {n: tf_name(n, config, family) for n in expected}
    used = {tf for tf, _ in wanted.values()}
    skipped: dict[str, int] = {}
    unmapped = []
    for name in sorted(names):
        if name in used:
            continue
        match = TF_SKIPPED.search(name)
        if match:
            kind = match[1] or match[2]
            skipped[kind] = skipped.get(kind, 0) + 1
        else:
            unmapped.append(name)
    if unmapped:
        raise ValueError(f"{index}: {len(unmapped)} variables have no place in the {family} model {config_path.name} "
                         f"describes: {', '.join(unmapped[:3])}{' ...' if len(unmapped) > 3 else ''}")
    present = [n for n, (tf, _) in wanted.items() if tf in names]
    _check_complete(set(present), wanted, index, config_path)
    state = {n: _read_tf_tensor(bundle, names[wanted[n][0]], expected[n], wanted[n][1], config_path) for n in present}
    return state, skipped


def _read_tf_tensor(bundle, name: str, shape: tuple[int, ...], transposed: bool, config_path: Path) -> torch.Tensor:
    """One variable as float32 in torch's orientation, after checking its shape against the config's."""
    entry = bundle.entries[name]
    want = shape[::-1] if transposed else shape
    if entry.shape != want:
        raise ValueError(f"{bundle.prefix}.index: {name} has shape {list(entry.shape)} but {config_path.name} "
                         f"implies {list(want)}")
    t = bundle.read(name)
    if not t.is_floating_point():
        raise ValueError(f"{bundle.prefix}.index: {name} holds {entry.dtype_name}, expected floating point")
    return (t.T if transposed else t).float().contiguous()


def _check_complete(present: set[str], wanted: dict[str, tuple[str, bool]], index: Path, config_path: Path) -> None:
    """The encoder must be whole; the pooler and each head are all there or all absent."""
    parts: dict[str, list[str]] = {}
    for name in wanted:
        parts.setdefault(_module_of(name), []).append(name)
    part_names = {"albert": "encoder", "albert.pooler": "pooler", "predictions": "MLM head",
                  "sop_classifier": "sentence-order head"}
    for part, members in parts.items():
        missing = [wanted[n][0] for n in members if n not in present]
        if missing and (part == "albert" or len(missing) < len(members)):
            raise ValueError(f"{index}: missing variables {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
                             f" ({len(missing)} of {len(members)} in the {part_names[part]} {config_path.name} "
                             f"describes)")




def _tf_tokenizer(path: Path | None, vocab_size: int, do_lower_case: bool):
    """The checkpoint's tokenizer (SentencePiece .model or WordPiece vocab.txt), its size checked, or None."""
    from litebert.tokenizer import AlbertTokenizer, WordPieceTokenizer

    if path is None:
        return None
    if path.suffix == ".model":
        tokenizer = AlbertTokenizer(path, do_lower_case=do_lower_case, keep_accents=not do_lower_case)
    else:
        tokenizer = WordPieceTokenizer(path, do_lower_case=do_lower_case)
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the checkpoint's word "
                         f"embeddings have {vocab_size} rows")
    return tokenizer


def _write_converted(out: Path, state: dict[str, torch.Tensor], config: AlbertConfig, family: str) -> str:
    """config.json + model.safetensors in Hugging Face's ALBERT or BERT layout; returns the class it names.

    The heads present choose the class: pretraining (MLM + sentence order), masked LM, or the encoder alone.
    Every module read is written, also a pooler or head that class has no use for (other classes will).
    """
    from litebert.model import HEADS

    heads = {_module_of(name) for name in state}
    architecture = ("AlbertForPreTraining" if {"predictions", "sop_classifier"} <= heads
                    else "AlbertForMaskedLM" if "predictions" in heads else "AlbertModel")
    with torch.device("meta"):
        model = HEADS[architecture](config)
    data = _bert_config(model) if family == "bert" else _hf_config(model)
    _write_model(out, data, _external_state(state, config, family, architecture),
                 "bert" if family == "bert" else "huggingface")
    return data["architectures"][0]


# ---------------------------------------------------------------------------------------------- cli
def add_commands(subparsers) -> None:
    """Add `litebert convert tf`."""
    convert = subparsers.add_parser("convert", help="convert other frameworks' checkpoints to Hugging Face's")
    formats = convert.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = formats.add_parser("tf", help="Google's TensorFlow ALBERT / BERT checkpoint or TF-Hub module (TensorFlow "
                                      "not needed)")
    p.add_argument("source", metavar="CKPT_OR_HUB_DIR",
                   help="checkpoint prefix (model.ckpt-best), its .index, its directory, or a TF-Hub module")
    p.add_argument("out", metavar="OUT_DIR", help="the Hugging Face directory to write")
    p.add_argument("--config", help="albert_config.json / bert_config.json (default: the one beside the checkpoint)")
    p.add_argument("--tokenizer", help="spiece.model / 30k-clean.model / vocab.txt (default: beside the checkpoint)")
    p.add_argument("--cased", action="store_true", help="the tokenizer keeps case and accents (default: uncased)")
    p.set_defaults(func=_cmd_convert_tf)


def _cmd_convert_tf(args) -> int:
    result = convert_tf(args.source, args.out, args.config, args.tokenizer, do_lower_case=not args.cased)
    skipped = ", ".join(f"{k} {v}" for k, v in result.skipped.items()) or "none"
    print(f"{result.architecture} ({result.tensors} tensors) -> {result.directory}; config {result.config}; "
          f"tokenizer {result.tokenizer or 'none found'}; optimizer/bookkeeping variables skipped: {skipped}")
    return 0
