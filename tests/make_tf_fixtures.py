"""Write the TensorFlow checkpoints of tests/fixtures/tf/ and what TensorFlow and Hugging Face read from them.

Needs TensorFlow (the `tf-fixtures` extra), in a virtual environment of its own:

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install torch==2.13.0 tensorflow-cpu==2.21.0 'transformers<5' safetensors sentencepiece numpy
    /tmp/tfvenv/bin/python tests/make_tf_fixtures.py [OUT_DIR]   # default tests/fixtures/tf

Every checkpoint is written by TF1's `tf.compat.v1.train.Saver` (the V2 tensor-bundle format Google's ALBERT and
BERT releases are in), with the official variable names and seeded random values:

    albert_1group/   model.ckpt-best.{index,data-00000-of-00001}, checkpoint, albert_config.json, 30k-clean.model
    albert_2groups/  4 layers over 2 groups of 2 inner layers, saved sharded over two devices (2 data shards)
    albert_slots/    a pretraining checkpoint: adam_m / adam_v for every variable, and global_step
    hub/             a TF-Hub module's layout: variables/variables.*, assets/albert_config.json, assets/30k-clean.model
    bert/            a BERT checkpoint (bert/encoder/layer_N/...), bert_config.json, vocab.txt
    albert_encoder/  the encoder and pooler alone, E = H (so no embedding_hidden_mapping_in), no tokenizer

Next to each, the references litebert is tested against (none computed by litebert):
    tf_reads.json        every variable as `tf.train.load_variable` reads it (dtype, shape, sha256 of the bytes);
    outputs.safetensors  input_ids / attention_mask / token_type_ids, and the outputs of Hugging Face's
                         AlbertForPreTraining (BertForPreTraining) after `load_tf_weights_in_albert` (`_bert`):
                         last_hidden_state, pooler_output, and prediction / sentence-order logits.

The official "gelu" is the tanh form (google-research/albert and /bert modeling.py), which Hugging Face calls
gelu_new: the Hugging Face reference is built with hidden_act="gelu_new", as litebert converts it.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

V, E, H, I, P, HEADS = 64, 16, 32, 64, 32, 2  # vocab, embedding, hidden, intermediate, positions, heads
SEED = 13


def albert_config(layers: int, groups: int, inner: int, embedding: int = E) -> dict:
    """albert_config.json as the official releases write it (their keys, their "gelu")."""
    return {"attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
            "embedding_size": embedding, "hidden_size": H, "initializer_range": 0.02, "intermediate_size": I,
            "max_position_embeddings": P, "num_attention_heads": HEADS, "num_hidden_layers": layers,
            "num_hidden_groups": groups, "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
            "inner_group_num": inner, "down_scale_factor": 1, "type_vocab_size": 2, "vocab_size": V}


def bert_config(layers: int) -> dict:
    return {"attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "hidden_size": H, "initializer_range": 0.02, "intermediate_size": I, "max_position_embeddings": P,
            "num_attention_heads": HEADS, "num_hidden_layers": layers, "type_vocab_size": 2, "vocab_size": V}


# ---------------------------------------------------------------------------------------------- values
def _dense(out: dict, scope: str, n_in: int, n_out: int, rng: np.random.Generator) -> None:
    out[f"{scope}/kernel"] = rng.normal(0, 0.15, (n_in, n_out))  # TF's [in, out]
    out[f"{scope}/bias"] = rng.normal(0, 0.1, (n_out,))


def _norm(out: dict, scope: str, n: int, rng: np.random.Generator) -> None:
    out[f"{scope}/gamma"] = 1 + rng.normal(0, 0.1, (n,))
    out[f"{scope}/beta"] = rng.normal(0, 0.1, (n,))


def _embeddings_and_heads(out: dict, width: int, rng: np.random.Generator, heads: bool = True) -> None:
    for name, rows in (("word_embeddings", V), ("position_embeddings", P), ("token_type_embeddings", 2)):
        out[f"bert/embeddings/{name}"] = rng.normal(0, 0.5, (rows, width))
    _norm(out, "bert/embeddings/LayerNorm", width, rng)
    _dense(out, "bert/pooler/dense", H, H, rng)
    if not heads:
        return
    _dense(out, "cls/predictions/transform/dense", H, width, rng)
    _norm(out, "cls/predictions/transform/LayerNorm", width, rng)
    out["cls/predictions/output_bias"] = rng.normal(0, 0.1, (V,))
    out["cls/seq_relationship/output_weights"] = rng.normal(0, 0.15, (2, H))  # [2, H]: no transpose in TF either
    out["cls/seq_relationship/output_bias"] = rng.normal(0, 0.1, (2,))


# The variables of one encoder block: (scope in ALBERT's inner layer, scope in BERT's layer, inputs, outputs of
# a dense layer; None for a LayerNorm).
BLOCK = [("attention_1/self/query", "attention/self/query", H, H),
         ("attention_1/self/key", "attention/self/key", H, H),
         ("attention_1/self/value", "attention/self/value", H, H),
         ("attention_1/output/dense", "attention/output/dense", H, H),
         ("LayerNorm", "attention/output/LayerNorm", H, None),
         ("ffn_1/intermediate/dense", "intermediate/dense", H, I),
         ("ffn_1/intermediate/output/dense", "output/dense", I, H),
         ("LayerNorm_1", "output/LayerNorm", H, None)]


def _block(out: dict, scope: str, family: str, rng: np.random.Generator) -> None:
    for albert, bert, n_in, n_out in BLOCK:
        name = f"{scope}/{albert if family == 'albert' else bert}"
        if n_out:
            _dense(out, name, n_in, n_out, rng)
        else:
            _norm(out, name, n_in, rng)


def albert_values(groups: int, inner: int, rng: np.random.Generator, embedding: int = E,
                  heads: bool = True) -> dict[str, np.ndarray]:
    """Official ALBERT variable names (google-research/albert modeling.py, run_pretraining.py) → float32.
    The official model maps E→H only when E != H; without `heads`, the encoder and pooler alone."""
    out: dict[str, np.ndarray] = {}
    _embeddings_and_heads(out, embedding, rng, heads)
    if embedding != H:
        _dense(out, "bert/encoder/embedding_hidden_mapping_in", embedding, H, rng)
    for g in range(groups):
        for i in range(inner):
            _block(out, f"bert/encoder/transformer/group_{g}/inner_group_{i}", "albert", rng)
    return {k: v.astype(np.float32) for k, v in sorted(out.items())}


def bert_values(layers: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Official BERT variable names (google-research/bert modeling.py, run_pretraining.py) → float32."""
    out: dict[str, np.ndarray] = {}
    _embeddings_and_heads(out, H, rng)
    for layer in range(layers):
        _block(out, f"bert/encoder/layer_{layer}", "bert", rng)
    return {k: v.astype(np.float32) for k, v in sorted(out.items())}


def with_slots(values: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The optimizer state the official LAMB / AdamWeightDecay leave in a pretraining checkpoint."""
    out = dict(values)
    for name, v in values.items():
        out[f"{name}/adam_m"] = rng.normal(0, 1e-3, v.shape).astype(np.float32)
        out[f"{name}/adam_v"] = np.abs(rng.normal(0, 1e-6, v.shape)).astype(np.float32)
    out["global_step"] = np.array(125000, dtype=np.int64)
    return out


# ---------------------------------------------------------------------------------------------- TensorFlow
def save_checkpoint(values: dict[str, np.ndarray], prefix: Path, shards: int = 1, state_file: bool = False) -> None:
    """Variables with these names and values, saved by tf.compat.v1.train.Saver at `prefix` (V2 bundle).
    shards=2 puts alternate variables on two CPU devices and saves sharded: one data file per device."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        variables = []
        for k, (name, value) in enumerate(values.items()):
            with tf.device(f"/cpu:{k % shards}"):
                variables.append(tf1.get_variable(name, initializer=tf.constant(value)))
        saver = tf1.train.Saver(variables, sharded=shards > 1, save_relative_paths=True)
        config = tf1.ConfigProto(device_count={"CPU": shards})
        with tf1.Session(config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False, write_state=state_file)


def tf_reads(prefix: Path) -> dict[str, dict]:
    """Every variable of the checkpoint as TensorFlow itself reads it: numpy dtype, shape and the sha256 of its
    bytes (bit-for-bit evidence without storing every tensor twice)."""
    import tensorflow as tf

    out = {}
    for name, _ in tf.train.list_variables(str(prefix)):
        value = np.asarray(tf.train.load_variable(str(prefix), name))
        out[name] = {"dtype": value.dtype.str, "shape": list(value.shape),
                     "sha256": hashlib.sha256(value.tobytes()).hexdigest()}
    return out


# ---------------------------------------------------------------------------------------------- Hugging Face
def fixed_inputs() -> dict[str, np.ndarray]:
    """Two rows of 12, the second padded after 9, two segments: what every reference output is computed on."""
    rng = np.random.default_rng(SEED + 1)
    ids = rng.integers(5, V, (2, 12))
    ids[:, 0], ids[:, 5], ids[0, 11], ids[1, 8] = 2, 3, 3, 3  # [CLS] a [SEP] b [SEP]
    mask = np.ones((2, 12), dtype=np.int64)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    types = np.zeros((2, 12), dtype=np.int64)
    types[:, 6:] = 1
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask, "token_type_ids": types}


def hf_outputs(prefix: Path, config: dict, family: str, heads: bool = True) -> dict[str, np.ndarray]:
    """The encoder's outputs and (with `heads`) the logits of Hugging Face's pretraining model after its own TF
    loader read the checkpoint."""
    import torch
    import transformers
    from transformers.models.albert.modeling_albert import load_tf_weights_in_albert
    from transformers.models.bert.modeling_bert import load_tf_weights_in_bert

    if family == "albert":
        hf_config = transformers.AlbertConfig(**{**config, "hidden_act": "gelu_new"})
        model = load_tf_weights_in_albert(transformers.AlbertForPreTraining(hf_config), hf_config, str(prefix))
        if hf_config.embedding_size == hf_config.hidden_size:
            # The official model has no E→H map when E == H; HF's always has one, which its loader leaves at
            # its random init: the official computation is the identity.
            mapping = model.albert.encoder.embedding_hidden_mapping_in
            torch.nn.init.eye_(mapping.weight.data)
            torch.nn.init.zeros_(mapping.bias.data)
    else:
        hf_config = transformers.BertConfig(**{**config, "hidden_act": "gelu_new"})
        model = load_tf_weights_in_bert(transformers.BertForPreTraining(hf_config), hf_config, str(prefix))
    inputs = fixed_inputs()
    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
    with torch.no_grad():
        out, base = model.eval()(**tensors), model.base_model(**tensors)
    refs = {**inputs, "last_hidden_state": base.last_hidden_state.numpy(), "pooler_output": base.pooler_output.numpy()}
    if heads:
        second = out.sop_logits if family == "albert" else out.seq_relationship_logits
        refs.update(prediction_logits=out.prediction_logits.numpy(), sentence_logits=second.numpy())
    return refs


# ---------------------------------------------------------------------------------------------- tokenizers
TEXT = ("the film was good and the music was great . a dull story , sadly told , with poor acting . "
        "she walked to the river and watched the boats . the old house by the bridge had a red door . "
        "nobody expected the ending , which was lovely . the market opens at nine every morning . "
        "quick brown foxes jump over lazy dogs . my zebra quietly vexed jovial wizards").split(" . ")


def sentencepiece_model(work: Path) -> Path:
    """A 64-piece SentencePiece unigram model with ALBERT's special pieces (<pad> 0, <unk> 1, [CLS], [SEP],
    [MASK]); identity normalisation keeps the file a few KB (NFKC's tables would be 240 KB)."""
    import sentencepiece as spm

    rng = np.random.default_rng(SEED)
    words = " ".join(TEXT).split()
    lines = TEXT * 20 + [" ".join(rng.choice(words, 10)) for _ in range(300)]
    spm.set_random_generator_seed(SEED)
    model = io.BytesIO()  # not model_prefix, which would record the temporary path in the model's bytes
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=V,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        normalization_rule_name="identity", num_threads=1, minloglevel=2)
    (work / "30k-clean.model").write_bytes(model.getvalue())
    return work / "30k-clean.model"


def bert_vocab() -> str:
    """64 WordPiece entries: BERT's specials, then words and pieces."""
    words = sorted(set(" ".join(TEXT).replace(",", "").split()))
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "##s", "##ed", "##ing"] + words
    pieces += [f"[unused{k}]" for k in range(V - len(pieces))]
    assert len(pieces) == V, len(pieces)
    return "\n".join(pieces) + "\n"


# ---------------------------------------------------------------------------------------------- main
def write_fixture(directory: Path, prefix_name: str, values: dict, config: dict, config_name: str,
                  family: str, shards: int = 1, state_file: bool = False) -> None:
    """The checkpoint, its config and the two references in `directory`."""
    prefix = directory / prefix_name
    prefix.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(values, prefix, shards, state_file)
    (directory / config_name).parent.mkdir(parents=True, exist_ok=True)
    (directory / config_name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    from safetensors.numpy import save_file

    (directory / "tf_reads.json").write_text(json.dumps(tf_reads(prefix), indent=1, sort_keys=True) + "\n")
    heads = "cls/predictions/output_bias" in values
    save_file(hf_outputs(prefix, config, family, heads), str(directory / "outputs.safetensors"))


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        spm_model = sentencepiece_model(Path(work))
        specs = [
            ("albert_1group", "model.ckpt-best", albert_values(1, 1, rng), albert_config(3, 1, 1), 1, True),
            ("albert_2groups", "model.ckpt-best", albert_values(2, 2, rng), albert_config(4, 2, 2), 2, False),
            ("albert_slots", "model.ckpt-125000", with_slots(albert_values(1, 1, rng), rng),
             albert_config(2, 1, 1), 1, False),
        ]
        for name, prefix, values, config, shards, state in specs:
            shutil.rmtree(out / name, ignore_errors=True)
            write_fixture(out / name, prefix, values, config, "albert_config.json", "albert", shards, state)
            shutil.copyfile(spm_model, out / name / "30k-clean.model")
        shutil.rmtree(out / "hub", ignore_errors=True)
        write_fixture(out / "hub", "variables/variables", albert_values(1, 1, rng), albert_config(2, 1, 1),
                      "assets/albert_config.json", "albert")
        shutil.copyfile(spm_model, out / "hub" / "assets" / "30k-clean.model")
    shutil.rmtree(out / "bert", ignore_errors=True)
    write_fixture(out / "bert", "model.ckpt", bert_values(2, rng), bert_config(2), "bert_config.json", "bert")
    (out / "bert" / "vocab.txt").write_text(bert_vocab(), encoding="utf-8")
    shutil.rmtree(out / "albert_encoder", ignore_errors=True)
    write_fixture(out / "albert_encoder", "model.ckpt", albert_values(1, 1, rng, embedding=H, heads=False),
                  albert_config(2, 1, 1, embedding=H), "albert_config.json", "albert")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "fixtures" / "tf")
