"""Numerical parity with Hugging Face's ALBERT, both directions, for every head (fp32, eval mode)."""
import logging

import pytest
import torch

import litebert
from litebert import AlbertConfig

transformers = pytest.importorskip("transformers")

HEADS = ["AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM", "AlbertForSequenceClassification",
         "AlbertForTokenClassification", "AlbertForQuestionAnswering", "AlbertForMultipleChoice"]
SMALL = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=37, num_hidden_groups=2, inner_group_num=2, max_position_embeddings=64,
             hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=3)


def _small(head: str) -> dict:
    # HF sizes its SOP and span heads by num_labels; both have two outputs.
    two = head in ("AlbertForPreTraining", "AlbertForQuestionAnswering")
    return {**SMALL, "num_labels": 2} if two else SMALL


def _inputs(choices: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3, 11) if choices else (3, 11)
    ids = torch.randint(5, 99, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., -4:] = 0  # padding in every row but the first
    mask[0, ...] = 1
    ids = ids.masked_fill(mask == 0, 0)
    types = torch.zeros(shape, dtype=torch.long)
    types[..., 5:] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


def _outputs(out) -> dict:
    names = ["last_hidden_state", "pooler_output", "prediction_logits", "sop_logits", "logits",
             "start_logits", "end_logits", "seq_relationship_logits"]
    return {n: getattr(out, n) for n in names if getattr(out, n, None) is not None}


def _compare(ours, theirs):
    a, b = _outputs(ours), _outputs(theirs)
    if "seq_relationship_logits" in b:
        b["sop_logits"] = b.pop("seq_relationship_logits")
    assert a.keys() == b.keys()
    for name in a:
        diff = (a[name] - b[name]).abs().max().item()
        assert diff <= 1e-5, f"{name}: max abs diff {diff}"


def _hf_and_ours(head: str, seed: int, directory):
    """A randomly initialised HF model of class `head` and litebert's load of its saved directory (both eval)."""
    torch.manual_seed(seed)
    hf = getattr(transformers, head)(transformers.AlbertConfig(**_small(head))).eval()
    hf.save_pretrained(directory)
    return hf, getattr(litebert, head).from_pretrained(directory).eval()


@pytest.mark.parametrize("head", HEADS)
def test_hf_to_litebert(head, tmp_path):
    hf, ours = _hf_and_ours(head, 0, tmp_path)
    inputs = _inputs(head == "AlbertForMultipleChoice")
    with torch.no_grad():
        _compare(ours(**inputs), hf(**inputs))


@pytest.mark.parametrize("head", HEADS)
def test_litebert_to_hf(head, tmp_path):
    torch.manual_seed(1)
    ours = getattr(litebert, head)(AlbertConfig(**_small(head))).eval()
    assert ours.save_pretrained(tmp_path) == "huggingface"
    hf, info = getattr(transformers, head).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    inputs = _inputs(head == "AlbertForMultipleChoice")
    with torch.no_grad():
        _compare(ours(**inputs), hf.eval()(**inputs))


def test_loss_parity_with_labels(tmp_path):
    hf, ours = _hf_and_ours("AlbertForPreTraining", 2, tmp_path)
    inputs = _inputs(False)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, 2] = 7
    labels[:, 4] = 9
    sop = torch.tensor([0, 1, 1])
    with torch.no_grad():
        theirs = hf(**inputs, labels=labels, sentence_order_label=sop).loss
        full = ours(**inputs, labels=labels, sentence_order_label=sop).loss
        # Scoring only the masked positions gives the same loss without the (B, T, V) logits.
        positions = torch.tensor([[2, 4]] * 3)
        sparse = ours(**inputs, labels=torch.tensor([[7, 9]] * 3), sentence_order_label=sop,
                      masked_lm_positions=positions)
    assert abs(full - theirs) < 1e-5 and abs(sparse.loss - theirs) < 1e-5
    assert sparse.prediction_logits.shape == (3, 2, 99)


@pytest.mark.parametrize("problem_type,labels", [
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])),
    ("single_label_classification", torch.tensor([2, 0, 1])),
    ("regression", torch.tensor([0.5, -1.0, 2.0])),
])
def test_classification_losses_match_hf(problem_type, labels, tmp_path):
    """Each problem type's loss (multi-label: binary cross-entropy per label) as transformers computes it, and
    the problem type survives the round trip through its config.json."""
    torch.manual_seed(3)
    num_labels = 1 if problem_type == "regression" else 3
    hf = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(
        **{**SMALL, "num_labels": num_labels}, problem_type=problem_type)).eval()
    hf.save_pretrained(tmp_path)
    ours = litebert.AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert ours.config.problem_type == problem_type
    with torch.no_grad():
        a, b = ours(**_inputs(False), labels=labels), hf(**_inputs(False), labels=labels)
    assert (a.logits - b.logits).abs().max() < 1e-5 and abs(a.loss - b.loss) < 1e-5


def test_masked_lm_at_positions_matches_hf(tmp_path):
    """AlbertForMaskedLM with masked_lm_positions (what fill-mask runs) gives HF's logits and loss there."""
    hf, ours = _hf_and_ours("AlbertForMaskedLM", 3, tmp_path)
    inputs = _inputs(False)
    positions = torch.tensor([[1], [4], [2]])
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[torch.arange(3), positions[:, 0]] = torch.tensor([5, 7, 9])
    with torch.no_grad():
        theirs = hf(**inputs, labels=labels)
        sparse = ours(**inputs, labels=torch.tensor([[5], [7], [9]]), masked_lm_positions=positions)
    assert sparse.logits.shape == (3, 1, 99)
    torch.testing.assert_close(sparse.logits[:, 0], theirs.logits[torch.arange(3), positions[:, 0]],
                               atol=1e-5, rtol=0)
    assert abs(sparse.loss - theirs.loss) < 1e-5


@pytest.mark.parametrize("share", ["none", "all"])
def test_e_equals_h_round_trip_through_hf(share, tmp_path):
    """E = H has no projection in litebert; HF gets an identity map and the model comes back unchanged."""
    cfg = AlbertConfig(**{**SMALL, "embedding_size": 32, "share": share})
    ours = litebert.AlbertModel(cfg).eval()
    assert ours.embeddings.projection is None
    assert ours.save_pretrained(tmp_path) == "huggingface"
    hf = transformers.AlbertModel.from_pretrained(tmp_path).eval()
    back = litebert.AlbertModel.from_pretrained(tmp_path).eval()
    assert back.embeddings.projection is None
    # "none" is written as HF's "one group per applied layer": it reads back as share="all" with L x inner
    # layers of one inner layer each, which computes the same function.
    if share == "none":
        assert (back.config.share, back.config.num_hidden_groups, back.config.inner_group_num) == ("all", 8, 1)
    inputs = _inputs(False)
    with torch.no_grad():
        _compare(ours(**inputs), hf(**inputs))
        _compare(ours(**inputs), back(**inputs))


@pytest.mark.parametrize("share", ["attention", "ffn"])
def test_layouts_hf_cannot_express_round_trip_natively(share, tmp_path, caplog):
    ours = litebert.AlbertForSequenceClassification(AlbertConfig(**{**SMALL, "share": share})).eval()
    with caplog.at_level(logging.WARNING, logger="litebert"):
        assert ours.save_pretrained(tmp_path) == "litebert"
    assert "Hugging Face cannot express" in caplog.text
    back = litebert.AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = _inputs(False)
    with torch.no_grad():
        assert torch.equal(ours(**inputs).logits, back(**inputs).logits)


def test_answerability_head_round_trip(tmp_path):
    cfg = AlbertConfig(**{**SMALL, "qa_answerability": True, "start_n_top": 3, "end_n_top": 2})
    ours = litebert.AlbertForQuestionAnswering(cfg).eval()
    assert ours.save_pretrained(tmp_path) == "litebert"
    back = litebert.AlbertForQuestionAnswering.from_pretrained(tmp_path).eval()
    inputs = _inputs(False)
    with torch.no_grad():
        a, b = ours(**inputs), back(**inputs)
    assert torch.equal(a.cls_logits, b.cls_logits) and torch.equal(a.end_top_index, b.end_top_index)
    assert a.start_top_index.shape == (3, 3) and a.end_top_log_probs.shape == (3, 6)


def test_head_from_pretraining_checkpoint_initialises_new_head(tmp_path, caplog):
    """Fine-tuning starts from a pretraining checkpoint: encoder loaded exactly, classifier fresh."""
    torch.manual_seed(3)
    pre = litebert.AlbertForPreTraining(AlbertConfig(**_small("AlbertForPreTraining")))
    pre.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="litebert"):
        clf = litebert.AlbertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert "newly initialised" in caplog.text
    for name, t in pre.albert.state_dict().items():
        assert torch.equal(t, clf.albert.state_dict()[name]), name
    w = clf.classifier.weight
    assert w.shape == (2, 32) and 0.005 < w.std().item() < 0.03 and not clf.classifier.bias.any()


def test_gradient_parity_with_labels(tmp_path):
    """Every parameter's gradient equals HF's: the fused Q/K/V projection hands each of query, key and value
    its own share, and shared blocks sum over the layers that use them."""
    torch.manual_seed(3)
    config = {**_small("AlbertForPreTraining"), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
              "classifier_dropout_prob": 0.0}
    hf = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config)).train()
    hf.save_pretrained(tmp_path)
    ours = litebert.AlbertForPreTraining.from_pretrained(tmp_path).train()
    inputs = _inputs(False)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, 3] = 11
    sop = torch.tensor([1, 0, 1])
    hf(**inputs, labels=labels, sentence_order_label=sop).loss.backward()
    ours(**inputs, labels=labels, sentence_order_label=sop).loss.backward()
    theirs = dict(hf.named_parameters())
    from litebert.convert import external_name

    for name, p in ours.named_parameters():
        q = theirs[external_name(name, ours.config, "albert")]
        assert (p.grad - q.grad).abs().max() <= 1e-5 * max(1.0, q.grad.abs().max().item()), name
