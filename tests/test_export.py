"""ONNX export: onnxruntime reproduces PyTorch at any batch/sequence size, shared weights are stored once,
the CLI exports a saved fine-tuned directory (head from config.json) with int8 quantisation."""
import json

import numpy as np
import pytest
import torch

import litebert
from litebert import AlbertConfig
from litebert.cli import main as cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch's dynamo exporter needs it

from litebert.export import deduplicate_initializers, export_onnx, ort_session, probe_inputs  # noqa: E402

# Two groups of two inner layers applied over four layers: 8 layer applications, 4 distinct blocks.
SMALL = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=37, num_hidden_groups=2, inner_group_num=2, max_position_embeddings=64,
             num_labels=3)


def _random_model(cls, seed: int):
    """A model whose biases and LayerNorms are not their init constants (zeros and ones would let the
    exporter fold them away and hide what is really stored)."""
    torch.manual_seed(seed)
    model = cls(AlbertConfig(**SMALL)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _run(session, inputs):
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


@pytest.fixture(scope="module")
def base_export(tmp_path_factory):
    model = _random_model(litebert.AlbertModel, seed=0)
    path = tmp_path_factory.mktemp("onnx") / "albert.onnx"
    return model, path, export_onnx(model, path)


def test_session_without_spinning_threads_gives_the_same_outputs(base_export):
    """`spinning=False` (what the benchmarks use, so idle onnxruntime threads do not steal the cores) is set on
    the session and changes nothing but the waiting."""
    model, path, _ = base_export
    inputs = probe_inputs(model.config, 2, 9, seed=3)
    quiet, default = ort_session(path, 1, spinning=False), ort_session(path, 1)
    assert quiet.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # the default: onnxruntime's own
        default.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    for a, b in zip(_run(quiet, inputs), _run(default, inputs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch,seq", [(1, 5), (4, 33), (7, 64)])
def test_parity_at_any_batch_and_length(base_export, batch, seq):
    model, path, report = base_export
    assert report.outputs == ["last_hidden_state", "pooler_output"]
    assert report.max_abs_diff <= 1e-4
    inputs = probe_inputs(model.config, batch, seq, seed=batch)
    with torch.no_grad():
        ref = model(**inputs)
    hidden, pooled = _run(ort_session(path), inputs)
    assert hidden.shape == (batch, seq, 32) and pooled.shape == (batch, 32)
    assert np.abs(hidden - ref.last_hidden_state.numpy()).max() <= 1e-4
    assert np.abs(pooled - ref.pooler_output.numpy()).max() <= 1e-4


def test_shared_blocks_stored_once(base_export):
    model, path, report = base_export
    proto = onnx.load(str(path))
    stored = sum(onnx.numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
    # 8 layer applications over 4 blocks: one copy per layer application would double the encoder.
    assert stored <= 1.02 * report.parameter_bytes, (stored, report.parameter_bytes)
    assert report.parameter_bytes == 4 * model.num_parameters()
    assert {i.name for i in proto.graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in proto.graph.input)


def test_padding_changes_nothing_but_padding(base_export):
    """Appending padded positions must leave the real positions' outputs as they were."""
    model, path, _ = base_export
    short = probe_inputs(model.config, 2, 12, seed=5)
    short["attention_mask"][:] = 1
    padded = {k: torch.cat([v, torch.zeros(2, 9, dtype=v.dtype)], 1) for k, v in short.items()}
    session = ort_session(path)
    a, b = _run(session, short), _run(session, padded)
    assert np.abs(a[0] - b[0][:, :12]).max() <= 1e-4
    assert np.abs(a[1] - b[1]).max() <= 1e-4


def test_cli_exports_saved_classifier_with_int8(tmp_path, capsys):
    model = _random_model(litebert.AlbertForSequenceClassification, seed=1)
    model.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "clf.int8.onnx"
    assert cli(["export", "onnx", str(tmp_path / "ckpt"), str(out), "--head", "auto", "--quantize", "int8"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["head"] == "AlbertForSequenceClassification" and report["outputs"] == ["logits"]
    assert report["max_abs_diff"] <= 1e-4
    assert report["int8_bytes"] == out.stat().st_size < report["onnx_bytes"]
    # Every weight matrix is int8: a Linear left as MatMul(x, Transpose(W)) would have stayed fp32.
    proto = onnx.load(str(out))
    fp32_matrices = [i.name for i in proto.graph.initializer
                     if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2]
    assert not fp32_matrices, fp32_matrices
    inputs = probe_inputs(model.config, 5, 20, seed=3)
    with torch.no_grad():
        ref = model(**inputs).logits.numpy()
    (logits,) = _run(ort_session(out), inputs)
    change = np.abs(logits - ref).max()
    # int8 weights move the logits a little, never by as much as the logits themselves.
    assert 0 < change < 0.5 * np.abs(ref).max()
    # The default head is the encoder's: a fine-tuned model's head left out is said, a pretrained one's is not
    assert cli(["export", "onnx", str(tmp_path / "ckpt"), str(tmp_path / "encoder.onnx")]) == 0
    assert ("the graph leaves out the AlbertForSequenceClassification head saved with the model; --head auto "
            "exports it") in capsys.readouterr().err
    _random_model(litebert.AlbertForPreTraining, seed=1).save_pretrained(tmp_path / "pretrained")
    assert cli(["export", "onnx", str(tmp_path / "pretrained"), str(tmp_path / "encoder.onnx")]) == 0
    assert "note:" not in capsys.readouterr().err


def test_cli_rejects_unknown_head(tmp_path, capsys):
    _random_model(litebert.AlbertModel, seed=2).save_pretrained(tmp_path / "ckpt")
    assert cli(["export", "onnx", str(tmp_path / "ckpt"), str(tmp_path / "x.onnx"), "--head", "Nope"]) == 2
    assert "unknown head 'Nope'" in capsys.readouterr().err


def test_deduplicate_initializers_merges_identical_tensors():
    """Two bit-identical weights become one initializer; the graph computes the same thing."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    inits = [numpy_helper.from_array(w, "w_layer0"), numpy_helper.from_array(w.copy(), "w_layer1"),
             numpy_helper.from_array(w + 1, "w_other")]
    nodes = [helper.make_node("MatMul", ["x", "w_layer0"], ["h0"]),
             helper.make_node("MatMul", ["x", "w_layer1"], ["h1"]),
             helper.make_node("MatMul", ["x", "w_other"], ["h2"]),
             helper.make_node("Sum", ["h0", "h1", "h2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    import onnxruntime as ort

    def run(p):
        return ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = run(proto)
    assert deduplicate_initializers(proto) == 1
    assert [i.name for i in proto.graph.initializer] == ["w_layer0", "w_other"]
    assert list(proto.graph.node[1].input) == ["x", "w_layer0"]
    np.testing.assert_array_equal(run(proto), before)
