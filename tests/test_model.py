"""Model behaviour: exact parameter counts, real sharing, clear errors, BERT checkpoints as ALBERT layouts."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import litebert
from litebert import AlbertConfig, AlbertModel
from litebert.cli import main as cli
from litebert.params import report

COUNTS = {"albert-base-v2": 11_683_584, "albert-large-v2": 17_683_968, "albert-xlarge-v2": 58_724_864,
          "albert-xxlarge-v2": 222_595_584}
# The paper's sharing ablation on ALBERT-base (Table 4), V=30000.
ABLATION = {(768, "none"): 109_081_344, (768, "all"): 31_114_752, (768, "attention"): 83_078_400,
            (768, "ffn"): 57_117_696, (128, "none"): 89_650_176, (128, "attention"): 63_647_232,
            (128, "ffn"): 37_686_528, (128, "all"): 11_683_584}
TINY = dict(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
            intermediate_size=24, max_position_embeddings=32)


@pytest.mark.parametrize("preset,count", COUNTS.items())
def test_released_parameter_counts(preset, count):
    assert report(AlbertConfig.preset(preset)).model_params == count


@pytest.mark.parametrize("key,count", ABLATION.items())
def test_sharing_ablation_counts(key, count):
    E, share = key
    cfg = AlbertConfig.preset("albert-base-v2").replace(embedding_size=E, share=share)
    assert report(cfg).model_params == count


def test_params_cli_json(capsys):
    assert cli(["params", "--preset", "albert-base-v2", "--share", "attention", "--embedding-size", "768",
                "--batch", "8", "--seq", "128", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_params"] == 83_078_400 and out["activation_bytes"] > 0
    assert 0 < out["checkpointed_activation_bytes"] < 0.5 * out["activation_bytes"]
    assert out["total"] == out["model_params"] + out["heads"]


def test_params_list_names_every_preset(capsys):
    assert cli(["params", "--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(litebert.PRESETS)


def test_presets_as_released():
    v1, v2 = AlbertConfig.preset("albert-base-v1"), AlbertConfig.preset("albert-base-v2")
    assert v1.hidden_dropout_prob == 0.1 and v2.hidden_dropout_prob == 0.0
    assert AlbertConfig.preset("albert-xxlarge-v1").hidden_dropout_prob == 0.0
    bert = AlbertConfig.preset("bert-base")
    assert bert.embedding_size == bert.hidden_size and bert.share == "none" and not bert.project_embeddings


@pytest.mark.parametrize("share,attn,ffn", [("all", 1, 1), ("attention", 1, 4), ("ffn", 4, 1), ("none", 4, 4)])
def test_sharing_shares_tensor_objects(share, attn, ffn):
    model = AlbertModel(AlbertConfig(**TINY, share=share))
    enc = model.encoder
    assert (len(enc.attention), len(enc.ffn)) == (attn, ffn)
    used_attn = [enc.attention[a].query.weight for a, _ in enc.layout]
    assert len({id(w) for w in used_attn}) == attn  # the same Parameter object serves several layers


def test_groups_and_inner_layers_follow_hf_formula():
    cfg = AlbertConfig(**{**TINY, "num_hidden_layers": 6}, num_hidden_groups=3, inner_group_num=2)
    layout = AlbertModel(cfg).encoder.layout
    assert len(layout) == 12  # 6 layer applications x 2 inner layers
    assert [a for a, _ in layout] == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5]


def test_sharing_changes_the_function_not_just_the_count():
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (2, 7))
    outs = {}
    for share in ("all", "none"):
        torch.manual_seed(0)
        outs[share] = AlbertModel(AlbertConfig(**TINY, share=share)).eval()(ids).last_hidden_state
    assert not torch.allclose(outs["all"], outs["none"])


def test_init_is_truncated_normal():
    cfg = AlbertConfig(**{**TINY, "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4})
    w = AlbertModel(cfg).encoder.ffn[0].intermediate.weight
    std = cfg.initializer_range
    assert w.abs().max() <= 2 * std + 1e-7
    assert abs(w.std().item() - 0.88 * std) < 0.1 * std  # a normal cut at ±2σ has std 0.88σ


@pytest.mark.parametrize("fields,message", [
    (dict(hidden_size=30, num_attention_heads=4), "hidden_size"),
    (dict(share="some"), "share"),
    (dict(num_hidden_groups=5), "num_hidden_groups"),
    (dict(hidden_act="swishy"), "hidden_act"),
    (dict(vocab_size=0), "vocab_size"),
])
def test_bad_config_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        AlbertConfig(**{**TINY, **fields})


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'albert-huge'.*albert-base-v2"):
        AlbertConfig.preset("albert-huge")


def test_sequence_longer_than_positions():
    model = AlbertModel(AlbertConfig(**TINY))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        model(torch.ones(1, 33, dtype=torch.long))


def test_config_json_round_trip_keeps_unknown_keys(tmp_path):
    cfg = AlbertConfig(**TINY, share="ffn", num_labels=3, extra={"bos_token_id": 2})
    cfg.save(tmp_path / "config.json")
    back = AlbertConfig.load(tmp_path)
    assert back == cfg and json.loads((tmp_path / "config.json").read_text())["bos_token_id"] == 2


def _saved(tmp_path):
    model = litebert.AlbertForSequenceClassification(AlbertConfig(**TINY))
    model.save_pretrained(tmp_path)
    return load_file(str(tmp_path / "model.safetensors"))


def test_checkpoint_missing_key(tmp_path):
    state = _saved(tmp_path)
    del state["albert.pooler.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="lacks keys albert.pooler.weight"):
        litebert.AlbertForSequenceClassification.from_pretrained(tmp_path)


def test_checkpoint_unexpected_key(tmp_path):
    state = _saved(tmp_path)
    state["albert.encoder.mystery.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected keys albert.encoder.mystery.weight"):
        litebert.AlbertForSequenceClassification.from_pretrained(tmp_path)


def test_checkpoint_misshaped_key(tmp_path):
    state = _saved(tmp_path)
    state["classifier.weight"] = torch.zeros(3, 16)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"classifier.weight has shape \(3, 16\), expected \(2, 16\)"):
        litebert.AlbertForSequenceClassification.from_pretrained(tmp_path)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        AlbertModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        AlbertModel.from_pretrained(tmp_path)


def test_pytorch_bin_checkpoint_loads_with_weights_only(tmp_path):
    model = AlbertModel(AlbertConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    torch.save(load_file(str(tmp_path / "model.safetensors")), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    back = AlbertModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(5, 50, (2, 9))
    assert torch.equal(model(ids).last_hidden_state, back(ids).last_hidden_state)


@pytest.fixture(scope="module")
def minilm_dir():
    from litebert.fetch import fetch_minilm

    try:
        return fetch_minilm()
    except RuntimeError as err:
        pytest.skip(f"MiniLM not reachable: {err}")


def test_bert_checkpoint_parity_with_transformers(minilm_dir, tmp_path):
    """The real pretrained MiniLM BERT encoder, read into ALBERT's E = H, nothing-shared layout."""
    transformers = pytest.importorskip("transformers")
    ours = AlbertModel.from_pretrained(minilm_dir).eval()
    cfg = ours.config
    assert (cfg.share, cfg.embedding_size, cfg.project_embeddings) == ("none", cfg.hidden_size, False)
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    ids = torch.randint(1000, 30000, (3, 17), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1:, 12:] = 0
    types = torch.zeros_like(ids)
    types[:, 9:] = 1
    with torch.no_grad():
        a, b = ours(ids, mask, types), hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert (a.last_hidden_state - b.last_hidden_state).abs().max() <= 1e-5
    assert (a.pooler_output - b.pooler_output).abs().max() <= 1e-5
    # And out again as a Hugging Face ALBERT directory that transformers reads with the same outputs.
    assert ours.save_pretrained(tmp_path) == "huggingface"
    albert = transformers.AlbertModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        c = albert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert (a.last_hidden_state - c.last_hidden_state).abs().max() <= 1e-5


@pytest.mark.parametrize("head,overrides", [("AlbertForQuestionAnswering", {}),
                                            ("AlbertForQuestionAnswering", {"qa_answerability": True}),
                                            ("AlbertForTokenClassification", {"num_labels": 5}),
                                            ("AlbertForMaskedLM", {})])
def test_heads_without_pooler_start_from_a_pretraining_checkpoint(head, overrides, tmp_path):
    pre = litebert.AlbertForPreTraining(AlbertConfig(**TINY))
    pre.save_pretrained(tmp_path)
    model = getattr(litebert, head).from_pretrained(tmp_path, **overrides)
    for name, t in model.albert.state_dict().items():
        assert torch.equal(t, pre.albert.state_dict()[name]), name
    if head == "AlbertForMaskedLM":  # the MLM head itself is carried over, not re-initialised
        assert torch.equal(model.predictions.dense.weight, pre.predictions.dense.weight)


def test_encoder_alone_from_a_native_head_directory(tmp_path):
    """share="attention" saves in litebert's layout; the bare encoder still loads from the head's directory."""
    clf = litebert.AlbertForSequenceClassification(AlbertConfig(**TINY, share="attention")).eval()
    assert clf.save_pretrained(tmp_path) == "litebert"
    enc = AlbertModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(5, 50, (2, 9))
    assert torch.equal(enc(ids).pooler_output, clf.albert(ids).pooler_output)


def test_encoder_from_a_checkpoint_of_something_else_is_an_error(tmp_path):
    AlbertModel(AlbertConfig(**TINY)).save_pretrained(tmp_path)
    save_file({"unrelated.weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="lacks keys"):
        AlbertModel.from_pretrained(tmp_path)


def test_bert_directories_load_in_transformers(tmp_path):
    """A share=none, E=H model saves as a Hugging Face BERT directory: BertModel / BertForMaskedLM load it and
    compute the same; ALBERT's shared or factorised layouts are refused with the reason."""
    transformers = pytest.importorskip("transformers")
    from litebert import AlbertForMaskedLM

    config = AlbertConfig(vocab_size=90, embedding_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, share="none", hidden_act="gelu")
    ids = torch.randint(5, 90, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    for ours_cls, theirs, field in ((AlbertModel, "BertModel", "last_hidden_state"),
                                    (AlbertForMaskedLM, "BertForMaskedLM", "logits")):
        torch.manual_seed(0)
        ours = ours_cls(config).eval()
        ours.save_pretrained(tmp_path / theirs, layout="bert")
        hf = getattr(transformers, theirs).from_pretrained(tmp_path / theirs).eval()
        with torch.no_grad():
            a = getattr(ours(ids, mask), field)
            b = getattr(hf(input_ids=ids, attention_mask=mask), field)
        torch.testing.assert_close(a[mask.bool()], b[mask.bool()], atol=1e-5, rtol=1e-5)
        back = ours_cls.from_pretrained(tmp_path / theirs).eval()  # and litebert reads it back
        with torch.no_grad():
            torch.testing.assert_close(getattr(back(ids, mask), field), a, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="BERT cannot hold this model: share='all'"):
        AlbertModel(config.replace(share="all")).save_pretrained(tmp_path / "x", layout="bert")
    with pytest.raises(ValueError, match="factorized embeddings"):
        AlbertModel(config.replace(embedding_size=16)).save_pretrained(tmp_path / "y", layout="bert")
