"""Fine-tuning end to end on the small fixtures in their official formats, through the CLI.

The fixtures hold dev/test files only for most tasks (and RACE only dev): `data_root` copies the fixture tree
to a temporary directory and fills each missing training file with a copy of the task's dev file (RACE's
missing test split too). The numbers are meaningless (a 1-layer model, 3 steps); what is checked is that
every task trains, selects, reports, writes its files in the official formats, and that those files score
back to the same numbers through the offline `evaluate`.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from litebert.cli import main
from litebert.config import AlbertConfig
from litebert.finetune import batching
from litebert.finetune.readers import read_examples, read_squad
from litebert.pipelines import pipeline
from litebert.finetune.run import predict_files
from litebert.finetune.squad import SquadConfig, build_features, decode_beam_predictions
from litebert.finetune.tasks import TASKS, TsvFormat
from litebert.finetune.train import FinetuneConfig, build_model, encode_split, held_out_slice, load_task_data, \
    predict
from litebert.model import AlbertForPreTraining
from litebert.quantize import activation_levels
from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

FIXTURES = Path(__file__).parent / "fixtures"
GLUE = [name for name, task in TASKS.items() if isinstance(task.format, TsvFormat)]
TINY = dict(embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128)
FAST = ["--max-steps", "3", "--batch-size", "2", "--max-seq-length", "64", "--eval-every", "2",
        "--max-query-length", "16", "--doc-stride", "16", "--no-progress"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(FIXTURES / "glue", root / "glue")
    for name in GLUE:
        task = TASKS[name]
        train = root / "glue" / task.train_file
        if not train.exists():
            shutil.copy(root / "glue" / task.dev_files[0], train)
    shutil.copytree(FIXTURES / "squad", root / "squad")
    for version in ("v1.1", "v2.0"):
        shutil.copy(root / "squad" / f"dev-{version}.json", root / "squad" / f"train-{version}.json")
    shutil.copytree(FIXTURES / "race" / "dev", root / "race" / "dev")
    shutil.copytree(FIXTURES / "race" / "dev", root / "race" / "train")
    shutil.copytree(FIXTURES / "race" / "dev", root / "race" / "test")
    return root


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A small SentencePiece model trained on the text of every fixture."""
    out = tmp_path_factory.mktemp("tok")
    task_files = [p for folder in ("glue", "squad", "race", "tokenizer")  # not tf/: binary checkpoints
                  for p in sorted((FIXTURES / folder).rglob("*"))]
    text = [p.read_text(encoding="utf-8") for p in task_files if p.is_file()]
    (out / "corpus.txt").write_text("\n".join(text), encoding="utf-8")
    train_sentencepiece([out / "corpus.txt"], out / "spm", vocab_size=300, num_threads=2)
    return out / "spm"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A 'pretraining checkpoint' of a tiny ALBERT: every task starts from it with a new head."""
    out = tmp_path_factory.mktemp("pretrained")
    vocab = AlbertTokenizer.from_pretrained(tokenizer_dir).vocab_size
    torch.manual_seed(0)
    AlbertForPreTraining(AlbertConfig(vocab_size=vocab, **TINY)).save_pretrained(out)
    return out


def data_dir_of(root: Path, name: str) -> Path:
    return root / ("squad" if name.startswith("squad") else "race" if name.startswith("race") else "glue")


def run_finetune(name, root, model_dir, tokenizer_dir, out, *extra) -> dict:
    rc = main(["finetune", "--task", name, "--data-dir", str(data_dir_of(root, name)), "--model", str(model_dir),
               "--tokenizer", str(tokenizer_dir), "--output", str(out), *FAST, *extra])
    assert rc == 0
    return json.loads((out / "metrics.json").read_text())


def offline_scores(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *args]) == 0
    return json.loads(capsys.readouterr().out)


def tsv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("name", GLUE)
def test_glue_task_end_to_end(name, data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    task = TASKS[name]
    summary = run_finetune(name, data_root, model_dir, tokenizer_dir, tmp_path)
    seed = summary["seeds"]["1"]
    assert set(seed["selection"]) == set(task.metrics) and seed["best_step"] in (2, 3)
    assert summary["selection_split"] == "train-heldout"
    assert (tmp_path / "seed-1" / "model" / "config.json").is_file()
    assert (tmp_path / "seed-1" / "model" / "spiece.model").is_file()
    assert any('"selection"' in line for line in (tmp_path / "seed-1" / "log.jsonl").read_text().splitlines())
    glue = data_root / "glue"
    for dev in task.dev_files:
        split = Path(dev).stem
        predictions = tmp_path / "seed-1" / "predictions" / f"{split}.tsv"
        # The written dev predictions score back, offline, to exactly the reported numbers.
        scores = offline_scores(capsys, "--task", name, "--data-file", str(glue / dev), "--predictions",
                                str(predictions))
        assert scores == pytest.approx(seed["reported"][split], nan_ok=True)
        assert summary["median"]["reported"][split] == pytest.approx(seed["reported"][split], nan_ok=True)
    for test in task.test_files:
        submission = tmp_path / "submission" / test.submission
        rows = tsv_rows(submission)
        expected = [r[0] for r in tsv_rows(glue / test.path)[1:]]
        assert rows[0] == ["index", "prediction"] and [r[0] for r in rows[1:]] == expected
        for _, value in rows[1:]:
            if task.kind == "regression":
                float(value)
            else:
                assert value in task.labels


def test_two_seeds_report_median(data_root, model_dir, tokenizer_dir, tmp_path):
    summary = run_finetune("sts-b", data_root, model_dir, tokenizer_dir, tmp_path, "--seeds", "1,2", "--bf16")
    values = [summary["seeds"][s]["reported"]["dev"]["spearman"] for s in ("1", "2")]
    assert summary["median"]["reported"]["dev"]["spearman"] == pytest.approx(np.median(values), nan_ok=True)
    assert (tmp_path / "seed-2" / "model" / "finetune.json").is_file()
    # Different seeds give different models (new head init and batch order are seeded).
    a = (tmp_path / "seed-1" / "predictions" / "dev.tsv").read_text()
    b = (tmp_path / "seed-2" / "predictions" / "dev.tsv").read_text()
    assert a != b


@pytest.mark.parametrize("name,head", [("squad1.1", "null-score"), ("squad2.0", "null-score"),
                                       ("squad2.0", "answerability")])
def test_squad_end_to_end(name, head, data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    version = name[-3:]
    summary = run_finetune(name, data_root, model_dir, tokenizer_dir, tmp_path, "--squad2-head", head)
    seed = summary["seeds"]["1"]
    out = tmp_path / "seed-1"
    dev = data_root / "squad" / f"dev-v{version}.json"
    predictions = json.loads((out / "predictions.json").read_text())
    qids = {e.qid for e in read_squad(str(dev))[0]}
    assert set(predictions) == qids
    scores = offline_scores(capsys, "--task", name, "--data-file", str(dev), "--predictions",
                            str(out / "predictions.json"))
    keys = ("exact_match", "f1") if version == "1.1" else ("exact", "f1")
    assert {k: scores[k] for k in keys} == pytest.approx({k: seed["reported"][f"dev-v{version}"][k] for k in keys})
    if version == "2.0":
        null_odds = json.loads((out / "null_odds.json").read_text())
        assert set(null_odds) == qids
        threshold = seed["null_threshold"]
        # The predictions abstain exactly where the odds exceed the threshold chosen on the selection slice.
        assert all((predictions[q] == "") >= (null_odds[q] > threshold) for q in qids)
        scores = offline_scores(capsys, "--task", name, "--data-file", str(dev), "--predictions",
                                str(out / "predictions.json"), "--na-probs", str(out / "null_odds.json"))
        assert "best_f1" in scores and "NoAns_f1" in scores
        settings = json.loads((out / "model" / "finetune.json").read_text())
        assert settings["squad2_head"] == head and settings["null_threshold"] == threshold
    # The saved model alone reproduces the reported scores.
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "model"), "--data-dir", str(data_root / "squad")]) == 0
    again = json.loads(capsys.readouterr().out)[f"dev-v{version}"]
    assert again["f1"] == pytest.approx(seed["reported"][f"dev-v{version}"]["f1"])
    # how it runs is the caller's choice: other batches give the same answers; bf16 and decoding flags run
    assert main(["evaluate", "--model", str(out / "model"), "--data-dir", str(data_root / "squad"),
                 "--batch-size", "3"]) == 0
    assert json.loads(capsys.readouterr().out)[f"dev-v{version}"]["f1"] == pytest.approx(again["f1"])
    assert main(["evaluate", "--model", str(out / "model"), "--data-dir", str(data_root / "squad"), "--bf16",
                 "--n-best-size", "2", "--max-answer-length", "1"]) == 0
    short = json.loads(capsys.readouterr().out)[f"dev-v{version}"]
    assert 0 <= short["f1"] <= 100
    answers_as_predicted(out / "model", data_root / "squad", dev, version, tmp_path / "pred", capsys)


def answers_as_predicted(model: Path, data_dir: Path, dev: Path, version: str, pred: Path, capsys) -> None:
    """`litebert answer` (the question-answering pipeline) on a model fine-tuned on SQuAD gives the answers
    `litebert predict` gives, abstaining where it abstains after SQuAD 2.0 (it crashed on the answerability head,
    and never abstained); --null-threshold moves the abstentions."""
    assert main(["predict", "--model", str(model), "--data-dir", str(data_dir), "--output", str(pred),
                 "--split", f"dev-v{version}", "--no-bf16"]) == 0
    predicted = json.loads((pred / "predictions.json").read_text())
    examples = read_squad(str(dev))[0]
    qa = pipeline("question-answering", model, device="cpu", bf16=False, batch_size=3)
    got = qa([e.question for e in examples], [e.context for e in examples])
    assert [g["answer"] for g in got] == [predicted[e.qid] for e in examples]
    for g, e in zip(got, examples):
        assert e.context[g["start"]:g["end"]] == g["answer"] if g["answer"] else (g["start"], g["end"]) == (-1, -1)
        assert 0 <= g["score"] <= 1
    if version == "1.1":
        assert all("null_odds" not in g for g in got)
        return
    odds = json.loads((pred / "null_odds.json").read_text())
    assert [g["null_odds"] for g in got] == pytest.approx([odds[e.qid] for e in examples], rel=1e-4, abs=1e-4)
    always = qa([e.question for e in examples], [e.context for e in examples], null_threshold=float("inf"))
    assert all(g["answer"] for g in always)
    capsys.readouterr()
    e = examples[0]
    assert main(["answer", str(model), "--question", e.question, "--context", e.context, "--no-bf16",
                 "--null-threshold=-1e9"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == ""
    assert main(["answer", str(model), "--question", e.question, "--context", e.context, "--no-bf16",
                 "--null-threshold", "1e9"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"]


def test_race_end_to_end(data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    summary = run_finetune("race", data_root, model_dir, tokenizer_dir, tmp_path)
    assert summary["selection_split"] == "dev" and summary["reported_splits"] == ["test"]
    path = tmp_path / "seed-1" / "predictions_test.json"
    predictions = json.loads(path.read_text())
    assert set(predictions.values()) <= set("ABCD")
    assert set(predictions) == {"middle1.txt-0", "middle1.txt-1", "high3.txt-0"}
    scores = offline_scores(capsys, "--task", "race", "--data-file", str(data_root / "race" / "test"),
                            "--predictions", str(path))
    assert scores == pytest.approx(summary["seeds"]["1"]["reported"]["test"])


def test_predict_command_writes_mnli_submission(data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    run_finetune("mnli", data_root, model_dir, tokenizer_dir, tmp_path / "run")
    out = tmp_path / "predicted"
    assert main(["predict", "--model", str(tmp_path / "run" / "seed-1" / "model"),
                 "--data-dir", str(data_root / "glue"), "--output", str(out), "--batch-size", "5"]) == 0
    for name in ("MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"):
        assert (out / "submission" / name).read_text() == (tmp_path / "run" / "submission" / name).read_text()
    assert (out / "predictions" / "dev_matched.tsv").is_file()


def test_predict_in_int8_stays_close_to_fp32(data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    run_finetune("sts-b", data_root, model_dir, tokenizer_dir, tmp_path / "run")
    model = tmp_path / "run" / "seed-1" / "model"
    # fp32 asked for: calibration would pick bf16 on a CPU where it pays (an AMX Xeon), and bf16 rounding alone
    # moves these scores by more than int8 does
    _, fp32 = predict_files(model, data_root / "glue", "dev", config_overrides={"bf16": False})
    _, int8 = predict_files(model, data_root / "glue", "dev", backend="torch-int8")
    a, b = (np.array(list(r["dev"].predictions.values())) for r in (fp32, int8))
    assert list(fp32["dev"].predictions) == list(int8["dev"].predictions)
    assert not np.array_equal(a, b)  # the int8 kernels ran
    # a 3-step model's scores barely vary (spread ~1e-5); int8 keeps their differences to a tenth of it, a fifth
    # where the kernel takes 7-bit activations (their steps twice as coarse: quantize.activation_levels)
    assert np.abs(a - b).max() < 0.1 * np.ptp(a) * 255 / activation_levels()
    args = ["predict", "--model", str(model), "--data-dir", str(data_root / "glue"), "--output", str(tmp_path / "p"),
            "--backend", "torch-int8"]
    assert main(args) == 0 and (tmp_path / "p" / "submission" / "STS-B.tsv").is_file()
    capsys.readouterr()
    assert main([*args, "--bf16"]) == 2
    assert "backend 'torch-int8' runs on the CPU without bf16" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mrpc", "race", "squad1.1"])
def test_evaluate_the_onnx_export(name, data_root, model_dir, tokenizer_dir, tmp_path, capsys, monkeypatch):
    """A deployment's check: the saved model's ONNX export, run by onnxruntime, scores what PyTorch scores (fp32),
    and its int8 export runs too (pairs, multiple choice with its (B, C, T) inputs, spans)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("LITEBERT_ONNX_DIR", str(tmp_path / "onnx"))  # this test's exports only
    run_finetune(name, data_root, model_dir, tokenizer_dir, tmp_path / "run")
    model = tmp_path / "run" / "seed-1" / "model"
    data = data_dir_of(data_root, name)
    _, torch_scores = predict_files(model, data, config_overrides={"bf16": False})  # not calibrated: fp32 anywhere
    _, ort_scores = predict_files(model, data, backend="onnxruntime")
    assert {k: v.metrics for k, v in ort_scores.items()} == {k: v.metrics for k, v in torch_scores.items()}
    for split, scored in torch_scores.items():
        assert ort_scores[split].predictions == scored.predictions
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data-dir", str(data), "--backend", "onnxruntime-int8"]) == 0
    int8 = json.loads(capsys.readouterr().out)
    for split, metrics in int8.items():
        assert metrics.keys() == torch_scores[split].metrics.keys()


def test_activation_checkpointing_changes_memory_not_results(data_root, model_dir, tokenizer_dir, tmp_path):
    plain = run_finetune("mrpc", data_root, model_dir, tokenizer_dir, tmp_path / "plain")
    ac = run_finetune("mrpc", data_root, model_dir, tokenizer_dir, tmp_path / "ac", "--activation-checkpointing")
    assert ac["seeds"]["1"]["reported"] == plain["seeds"]["1"]["reported"]
    assert [r["loss"] for r in map(json.loads, (tmp_path / "ac/seed-1/log.jsonl").read_text().splitlines())
            if "loss" in r] == \
        [r["loss"] for r in map(json.loads, (tmp_path / "plain/seed-1/log.jsonl").read_text().splitlines())
         if "loss" in r]


def test_the_answerability_head_is_refused_by_onnx(data_root, model_dir, tokenizer_dir, tmp_path, capsys,
                                                  monkeypatch):
    """Its decoding needs p_mask, which the exported graph does not take: a clear error, not other answers."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("LITEBERT_ONNX_DIR", str(tmp_path / "onnx"))
    run_finetune("squad2.0", data_root, model_dir, tokenizer_dir, tmp_path / "run", "--squad2-head", "answerability")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(tmp_path / "run/seed-1/model"), "--data-dir", str(data_root / "squad"),
                 "--backend", "onnxruntime"]) == 2
    assert "the ONNX graph takes attention_mask, input_ids, token_type_ids, not p_mask" in capsys.readouterr().err


def test_bad_input_errors(data_root, model_dir, tokenizer_dir, tmp_path, capsys):
    args = ["--model", str(model_dir), "--tokenizer", str(tokenizer_dir), "--output", str(tmp_path / "o"), *FAST]
    assert main(["finetune", "--task", "nosuchtask", "--data-dir", str(data_root), *args]) == 2
    assert "unknown task 'nosuchtask'" in capsys.readouterr().err
    assert main(["finetune", "--task", "rte", "--data-dir", str(tmp_path), *args]) == 2
    assert f"{tmp_path}/RTE/train.tsv: rte file not found" in capsys.readouterr().err
    assert main(["finetune", "--task", "rte", "--data-dir", str(data_root / "glue"), "--model", "albert-tiny",
                 "--output", str(tmp_path / "o")]) == 2
    assert "needs --tokenizer" in capsys.readouterr().err
    assert main(["evaluate", "--task", "squad2.0", "--data-file", str(tmp_path / "nope.json"),
                 "--predictions", str(tmp_path / "p.json")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- offline evaluate
@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_offline_evaluate_on_squad_fixtures(version, tmp_path, capsys):
    dev = FIXTURES / "squad" / f"dev-v{version}.json"
    gold = read_squad(str(dev))[0]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({e.qid: (e.answers[0][0] if e.answers else "") for e in gold}))
    args = ["--task", f"squad{version}", "--data-file", str(dev), "--predictions", str(pred)]
    scores = offline_scores(capsys, *args)
    assert scores["f1"] == 100.0 and scores["exact_match" if version == "1.1" else "exact"] == 100.0
    pred.write_text(json.dumps({e.qid: "zebra" for e in gold}))
    assert offline_scores(capsys, *args)["f1"] == 0.0


# ---------------------------------------------------------------------------------------------- pieces
def test_bucketed_batches_cover_every_example_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=10_000)
    batches = batching.bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(lengths)))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in batching.random_batches(len(lengths), 32, rng)])
    assert spread < 0.1 * random_spread  # chunks of 50 batches sorted: near-uniform lengths per batch
    again = batching.bucketed_batches(lengths, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    # Batch order is shuffled: not sorted by length across the epoch.
    firsts = [lengths[b].min() for b in batches]
    assert firsts != sorted(firsts)


def test_collate_pads_or_trims_to_the_batch(tokenizer_dir):
    tensors = {"input_ids": torch.tensor([[2, 5, 3, 0, 0, 0], [2, 6, 7, 8, 3, 0]]),
               "attention_mask": torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]]),
               "token_type_ids": torch.zeros(2, 6, dtype=torch.int64), "labels": torch.tensor([0, 1])}
    batch = batching.collate(tensors, np.array([0]), "bucket", 16, 0, multiple=2)
    assert batch["input_ids"].tolist() == [[2, 5, 3, 0]] and batch["labels"].tolist() == [0]
    batch = batching.collate(tensors, np.array([1, 0]), "fixed", 8, 0)
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][0].tolist() == [1] * 5 + [0] * 3


def test_bucketed_eval_equals_fixed_padding(data_root, tokenizer_dir):
    """Trimming padding changes nothing: logits with bucketing equal those at the full length."""
    task = TASKS["mrpc"]
    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    config = FinetuneConfig(max_seq_length=64, bf16=False)
    torch.manual_seed(0)
    model = build_model(task, AlbertConfig(vocab_size=tokenizer.vocab_size, **TINY), tokenizer, config)
    data = load_task_data(task, data_root / "glue", config)
    split = encode_split(task, data.reported["dev"] + data.train, tokenizer, 64, config)
    fixed = predict(model, split, 2, "fixed", torch.device("cpu"), torch.autocast("cpu", enabled=False))
    bucket = predict(model, split, 2, "bucket", torch.device("cpu"), torch.autocast("cpu", enabled=False))
    np.testing.assert_allclose(bucket["logits"], fixed["logits"], atol=1e-5)


def test_selection_roles_never_touch_the_reported_split(data_root):
    rte = load_task_data("rte", data_root / "glue")
    train_file, _ = read_examples(TASKS["rte"], str(data_root / "glue" / "RTE" / "train.tsv"))
    assert sorted(e.guid for e in rte.train + rte.selection) == sorted(e.guid for e in train_file)
    assert rte.selection and not {e.guid for e in rte.train} & {e.guid for e in rte.selection}
    assert list(rte.reported) == ["dev"] and list(rte.unlabelled) == ["RTE/test.tsv"]
    race = load_task_data("race", data_root / "race")
    assert race.selection_name == "dev" and list(race.reported) == ["test"]
    squad = load_task_data("squad2.0", data_root / "squad")
    # SQuAD holds out whole paragraphs: no context is in both.
    assert not {e.context for e in squad.train} & {e.context for e in squad.selection}


def test_held_out_slice_is_seeded_and_grouped():
    examples = list(range(100))
    rest, held = held_out_slice(examples, 0.1, seed=3)
    assert len(held) == 10 and sorted(rest + held) == examples
    assert held_out_slice(examples, 0.1, seed=3) == (rest, held)
    assert held_out_slice(examples, 0.1, seed=4)[1] != held
    rest, held = held_out_slice(examples, 0.2, seed=3, group=lambda e: e // 10)
    assert len(held) == 20 and len({e // 10 for e in held}) == 2
    with pytest.raises(ValueError, match="cannot hold out"):
        held_out_slice([1], 0.1, seed=0)


def test_answerability_decoding_maps_beam_back_to_text(tokenizer_dir):
    examples = read_squad(str(FIXTURES / "squad" / "dev-v2.0.json"))[0][:2]
    tokenizer = AlbertTokenizer.from_pretrained(tokenizer_dir)
    config = SquadConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    features = build_features(examples, tokenizer, config)
    F, k = len(features), 2
    start_index = np.zeros((F, k), dtype=np.int64)
    end_index = np.zeros((F, k * k), dtype=np.int64)
    start_lp = np.full((F, k), -5.0)
    end_lp = np.full((F, k * k), -5.0)
    cls = np.array([1.0 + i for i in range(F)])
    for row, f in enumerate(features):  # point the first beam entry at the gold span where a window has it
        if f.start_position:
            start_index[row, 0], end_index[row, 0] = f.start_position, f.end_position
            start_lp[row, 0], end_lp[row, 0] = -0.1, -0.1
    decoded = decode_beam_predictions(examples, features, start_lp, start_index, end_lp, end_index, cls, config,
                                      null_threshold=100.0)
    gold = examples[0].answers[0][0]
    assert decoded.predictions[examples[0].qid].lower() == gold.lower()
    rows0 = [r for r, f in enumerate(features) if f.example_index == 0]
    assert decoded.null_odds[examples[0].qid] == pytest.approx(min(cls[r] for r in rows0))
    assert decoded.with_threshold(-100.0)[examples[0].qid] == ""
