"""Task table, readers of the official formats, GLUE/RACE encoders, SQuAD windows/decoding, offline scoring."""
import csv
import json
import os
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from litebert import metrics
from litebert.finetune import evaluate, readers, squad, tasks
from litebert.finetune.tasks import TASKS, HParams, TsvFormat, get_task

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GLUE, SQUAD, RACE = (os.path.join(FIXTURES, name) for name in ("glue", "squad", "race"))


class ChunkTokenizer:
    """Stand-in for the SentencePiece tokenizer: lower-cases, splits punctuation off, cuts letter/digit
    runs into pieces of at most 3 characters and marks word starts with "▁"; the vocabulary grows on demand."""

    pad_token_id, cls_token_id, sep_token_id = 0, 2, 3

    def __init__(self):
        self.vocab = {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3}

    def tokenize(self, text):
        pieces = []
        for word in text.lower().split():
            runs = re.findall(r"[a-z0-9]+|[^a-z0-9]", word)
            chunks = [run[i:i + 3] for run in runs for i in range(0, len(run), 3)]
            pieces += ["▁" + chunks[0], *chunks[1:]]
        return pieces

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab.setdefault(token, len(self.vocab)) for token in tokens]

    def decode(self, ids):
        inverse = {i: t for t, i in self.vocab.items()}
        return "".join(inverse[i] for i in ids).replace("▁", " ").strip()


# ----------------------------------------------------------------------------------------------------------
# Task table


def test_task_table_rows():
    assert set(TASKS) == {"cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte", "wnli",
                          "squad1.1", "squad2.0", "race-middle", "race-high", "race", "movie-reviews",
                          "conll2003-ner", "token-classification", "text-classification", "text-regression",
                          "multi-label-classification"}
    assert TASKS["conll2003-ner"].num_labels == 9 and TASKS["conll2003-ner"].labels[0] == "O"
    submissions = [t.submission for task in TASKS.values() for t in task.test_files if t.submission]
    assert sorted(submissions) == sorted(["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv",
                                          "MNLI-mm.tsv", "QNLI.tsv", "RTE.tsv", "WNLI.tsv", "AX.tsv"])
    mnli = TASKS["mnli"]
    assert mnli.dev_files == ("MNLI/dev_matched.tsv", "MNLI/dev_mismatched.tsv")
    assert mnli.hparams == HParams(learning_rate=3e-5, batch_size=128, max_seq_length=512,
                                   train_steps=10000, warmup_steps=1000)
    assert TASKS["sts-b"].kind == "regression" and TASKS["sts-b"].num_labels == 1
    assert TASKS["squad1.1"].hparams.schedule(steps_per_epoch=100) == (200, 20)  # 2 epochs, 10% warmup
    assert get_task("MNLI") is mnli
    with pytest.raises(ValueError, match="unknown task 'mnlii'"):
        get_task("mnlii")
    with pytest.raises(ValueError, match="exactly one of train_steps"):
        HParams(learning_rate=1e-5, batch_size=8, max_seq_length=128, warmup_steps=1)


# ----------------------------------------------------------------------------------------------------------
# GLUE readers


GLUE_TASKS = [name for name, task in TASKS.items() if isinstance(task.format, TsvFormat)]


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_every_glue_dev_and_test_file_reads(name):
    task = TASKS[name]
    for dev in task.dev_files:
        examples, report = readers.read_glue_tsv(os.path.join(GLUE, dev), task)
        assert examples and report.examples == len(examples) and not report.skipped
        assert all(e.label is not None for e in examples)
        assert all((e.text_b is None) == (task.format.text_b is None) for e in examples)
    for test in task.test_files:
        examples, _ = readers.read_glue_tsv(os.path.join(GLUE, test.path), task)
        # Test sets carry no labels, and their id column becomes the guid the submission must repeat.
        assert examples and all(e.label is None for e in examples)
        assert [e.guid for e in examples] == [str(i) for i in range(len(examples))]


def test_cola_headerless_train_dev_and_headed_test():
    cola = TASKS["cola"]
    dev, _ = readers.read_glue_tsv(os.path.join(GLUE, "CoLA/dev.tsv"), cola)
    assert [(e.guid, e.label) for e in dev] == [("0", "1"), ("1", "0"), ("2", "1")]
    assert dev[1].text_a == "They drank the pub."
    assert dev[2].text_a == '"Mary, " he said, "come here."'  # quotes kept verbatim (QUOTE_NONE)
    test, _ = readers.read_glue_tsv(os.path.join(GLUE, "CoLA/test.tsv"), cola)
    assert test[0].text_a == "Bill whistled past the house."


def test_unbalanced_quote_does_not_swallow_rows():
    examples, _ = readers.read_glue_tsv(os.path.join(GLUE, "SST-2/dev.tsv"), TASKS["sst-2"])
    assert len(examples) == 3
    assert examples[1].text_a == '" unflinchingly bleak and desperate ' and examples[1].label == "0"


def test_qqp_short_rows_are_skipped_and_counted():
    qqp = TASKS["qqp"]
    path = os.path.join(GLUE, "QQP/train.tsv")
    examples, report = readers.read_glue_tsv(path, qqp)
    assert [e.guid for e in examples] == ["133273", "360472", "150662"]
    assert report.skipped == {"wrong_field_count": 1}
    assert report.first_skipped_at["wrong_field_count"] == f"{path}:3"
    assert "skipped 1 wrong_field_count" in report.summary()


def test_malformed_rows_raise_with_file_and_line(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(ValueError, match=r"dev.tsv:3: expected 4 tab-separated fields .* found 2"):
        readers.read_glue_tsv(str(path), TASKS["rte"])
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"dev.tsv:2: expected a label in \['entailment', .*\], found 'maybe'"):
        readers.read_glue_tsv(str(path), TASKS["rte"])
    path.write_text("index\tquestion\tlabel\n")
    with pytest.raises(ValueError, match=r"dev.tsv:1: header .* lacks column\(s\) \['sentence'\]"):
        readers.read_glue_tsv(str(path), TASKS["qnli"])


def test_stsb_float_labels_and_mnli_gold_label():
    stsb, _ = readers.read_glue_tsv(os.path.join(GLUE, "STS-B/dev.tsv"), TASKS["sts-b"])
    assert [e.label for e in stsb] == [5.0, 4.75, 5.0, 2.4]
    assert stsb[0].text_b == "A man wearing a hard hat is dancing."
    mnli, _ = readers.read_glue_tsv(os.path.join(GLUE, "MNLI/dev_matched.tsv"), TASKS["mnli"])
    assert [e.label for e in mnli] == ["neutral", "contradiction"]


# ----------------------------------------------------------------------------------------------------------
# SQuAD and RACE readers


def test_read_squad_v1_and_v2():
    v1, report = readers.read_squad(os.path.join(SQUAD, "dev-v1.1.json"))
    assert report.examples == len(v1) == 7 and not any(e.is_impossible for e in v1)
    assert v1[1].answers[1] == ("Levi's Stadium", v1[1].context.index("Levi's"))
    v2, _ = readers.read_squad(os.path.join(SQUAD, "dev-v2.0.json"))
    impossible = [e for e in v2 if e.is_impossible]
    assert len(impossible) == 3 and all(not e.answers and e.plausible_answers for e in impossible)


def test_squad_answer_offset_mismatch_is_an_error(tmp_path):
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "abc def", "qas": [
        {"id": "q7", "question": "?", "answers": [{"text": "def", "answer_start": 3}]}]}]}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"id q7\): answer 'def' is not at character 3"):
        readers.read_squad(str(path))


def test_read_race_levels_and_labels(tmp_path):
    examples, report = readers.read_race(os.path.join(RACE, "dev"), TASKS["race"].format)
    assert [(e.guid, e.label) for e in examples] == [("middle1.txt-0", 1), ("middle1.txt-1", 3), ("high3.txt-0", 2)]
    assert examples[2].options[2] == "In 1969." and report.examples == 3
    high, _ = readers.read_race(os.path.join(RACE, "dev"), TASKS["race-high"].format)
    assert [e.guid for e in high] == ["high3.txt-0"]
    # A stray file is counted, not silently ignored; a wrong answer letter is an error.
    shutil.copytree(os.path.join(RACE, "dev"), tmp_path / "dev")
    (tmp_path / "dev/high/.DS_Store").write_text("")
    _, report = readers.read_race(str(tmp_path / "dev"), TASKS["race"].format)
    assert report.skipped == {"not_a_txt_file": 1}
    passage = json.loads((tmp_path / "dev/high/3.txt").read_text())
    passage["answers"] = ["E"]
    (tmp_path / "dev/high/3.txt").write_text(json.dumps(passage))
    with pytest.raises(ValueError, match=r"3.txt: question 0: expected 4 options and an answer in"):
        readers.read_race(str(tmp_path / "dev"), TASKS["race"].format)


# ----------------------------------------------------------------------------------------------------------
# GLUE / RACE encoders


def test_encode_pairs_layout_truncation_and_labels():
    tok = ChunkTokenizer()
    mrpc = TASKS["mrpc"]
    examples = [readers.TextExample("0", "aaa bbb", "ccc", "1"),
                readers.TextExample("1", "aaa bbb ccc ddd eee fff", "ggg", "0")]
    batch = readers.encode_pair_examples(examples, mrpc, tok, max_seq_length=8)
    ids = batch["input_ids"].tolist()
    a, b, c = tok.convert_tokens_to_ids(["▁aaa", "▁bbb", "▁ccc"])
    assert ids[0] == [2, a, b, 3, c, 3, 0, 0]
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    # 6 + 1 tokens for a budget of 5: the longer side loses its tail, the short one is kept.
    assert tok.decode(ids[1]) == "[CLS] aaa bbb ccc ddd[SEP] ggg[SEP]"
    assert batch["labels"].tolist() == [1, 0]
    stsb = readers.encode_pair_examples([readers.TextExample("0", "x", "y", 3.2)], TASKS["sts-b"], tok, 8)
    assert stsb["labels"].dtype.is_floating_point and stsb["labels"].tolist() == [pytest.approx(3.2)]
    unlabelled = readers.encode_pair_examples([readers.TextExample("0", "x", None, None)], TASKS["sst-2"], tok, 8)
    assert "labels" not in unlabelled and unlabelled["input_ids"][0, :3].tolist()[::2] == [2, 3]


def test_encode_choices_fills_blanks_and_keeps_question_tail():
    tok = ChunkTokenizer()
    race = TASKS["race"]
    examples, _ = readers.read_race(os.path.join(RACE, "dev"), race.format)
    batch = readers.encode_choice_examples(examples, race, tok, max_seq_length=48)
    assert batch["input_ids"].shape == (3, 4, 48) and batch["labels"].tolist() == [1, 3, 2]
    # "Tom's father is _ ." with option "a farmer": the option goes into the blank.
    second = tok.decode(batch["input_ids"][0, 1][batch["attention_mask"][0, 1].bool()].tolist())
    assert second.endswith("[SEP] tom's father is a farmer .[SEP]")
    two_piece_qa = replace(race, format=replace(race.format, max_qa_length=2))
    short = readers.encode_choice_examples(examples[:1], two_piece_qa, tok, 48)
    row = short["input_ids"][0, 1][short["attention_mask"][0, 1].bool()].tolist()
    # Only the last 2 pieces of "... a farmer ." ("▁far", "mer", "▁.") follow the article.
    assert tok.decode(row[-4:]) == "[SEP]mer .[SEP]"


# ----------------------------------------------------------------------------------------------------------
# SQuAD windows, labels and decoding


def _answer_rotations(examples):
    """One copy of each example per gold answer, that answer first (features label the first answer)."""
    return [replace(e, answers=[a]) for e in examples for a in e.answers]


@pytest.mark.parametrize("file", ["dev-v1.1.json", "dev-v2.0.json"])
def test_label_positions_give_back_every_gold_answer(file):
    examples, _ = readers.read_squad(os.path.join(SQUAD, file))
    # Windows of 64 - 12 - 3 = 49+ tokens: the longest answer fits, the longest context does not.
    config = squad.SquadConfig(max_seq_length=64, doc_stride=8, max_query_length=12)
    rotated = _answer_rotations(examples)
    features = squad.build_features(rotated, ChunkTokenizer(), config)
    for index, example in enumerate(rotated):
        mine = [f for f in features if f.example_index == index]
        assert len(mine) > 1 or len(example.context) < 200
        labelled = [f for f in mine if f.start_position > 0]
        assert labelled, example.answers
        for f in labelled:
            text = example.context[f.token_offsets[f.start_position][0]:f.token_offsets[f.end_position][1]]
            assert text == example.answers[0][0]
    impossible = [i for i, e in enumerate(examples) if e.is_impossible]
    for f in squad.build_features([examples[i] for i in impossible], ChunkTokenizer(), config):
        assert (f.start_position, f.end_position) == (0, 0)


def test_tighter_span_inside_a_word():
    # "(1990)," is one whitespace word; its pieces "▁(", "199", "0", ")", "," let the label cover "1990" only.
    tokens, offsets = squad.tokenize_context("It began in (1990), then", ChunkTokenizer())
    assert tokens[4:9] == ["▁(", "199", "0", ")", ","]
    start, end = squad.answer_token_span(offsets, 13, 17)
    assert (start, end) == (5, 6)
    # Pieces match left to right, so a repeated piece text maps to its own occurrence.
    assert squad.align_pieces("AAAAA", ["▁aaa", "aa"]) == [(0, 3), (3, 5)]
    assert squad.align_pieces("(x", ["▁", "(", "x"]) == [(0, 0), (0, 1), (1, 2)]
    # Accents and case are folded as ALBERT's normaliser does; "İ" lower-cases to 2 characters.
    assert squad.align_pieces("Café", ["▁ca", "fe"]) == [(0, 2), (2, 4)]
    assert squad.align_pieces("İx", ["▁i", "x"]) == [(0, 1), (1, 2)]
    # Pieces that do not spell the word (here an unknown token) fall back to the whole word.
    assert squad.align_pieces("Café", ["▁caf", "<unk>"]) == [(0, 4), (0, 4)]


def _long_example():
    words = [f"w{i}" for i in range(120)]
    words[70:72] = ["golden", "gate"]
    answer_start = len(" ".join(words[:70])) + 1
    return readers.SquadExample("long", "which bridge ?", " ".join(words), [("golden gate", answer_start)])


def test_windows_cover_every_token_and_max_context_is_unique():
    tok = ChunkTokenizer()
    example = _long_example()
    config = squad.SquadConfig(max_seq_length=32, doc_stride=10, max_query_length=8)
    features = squad.build_features([example], tok, config)
    _, offsets = squad.tokenize_context(example.context, tok)
    seen, max_context = {}, {}
    for f in features:
        for pos, span in enumerate(f.token_offsets):
            if span is not None:
                seen[span] = seen.get(span, 0) + 1
                max_context[span] = max_context.get(span, 0) + f.token_is_max_context[pos]
    assert set(seen) == set(offsets)  # every context token is in some window
    assert all(count == 1 for count in max_context.values())  # and scored in exactly one
    assert max(seen.values()) > 1  # windows overlap
    # BERT's rule on windows (0,5), (3,5), (6,5): token 4 has min(4,0)+.05 in the first, min(1,3)+.05 in the second.
    windows = squad.doc_windows(11, 5, 3)
    assert windows == [(0, 5), (3, 5), (6, 5)]
    assert [squad.is_max_context(windows, w, 4) for w in range(3)] == [False, True, False]
    # A tie (token 2 of windows (0,4), (1,4): min(2,1) = min(1,2)) goes to the first window.
    assert [squad.is_max_context([(0, 4), (1, 4)], w, 2) for w in range(2)] == [True, False]


def _logits_for(features, peaks):
    """Logits (F, L) at -10 everywhere, with bumps {(row, "start" | "end", position): value}."""
    length = len(features[0].input_ids)
    start, end = np.full((len(features), length), -10.0), np.full((len(features), length), -10.0)
    for (row, kind, pos), value in peaks.items():
        (start if kind == "start" else end)[row, pos] = value
    return start, end


def test_decoding_returns_the_exact_substring_and_respects_max_context():
    tok = ChunkTokenizer()
    example = _long_example()
    config = squad.SquadConfig(max_seq_length=32, doc_stride=10, max_query_length=8, n_best_size=5)
    features = squad.build_features([example], tok, config)
    labelled = [(r, f) for r, f in enumerate(features) if f.start_position > 0]
    row, gold = next((r, f) for r, f in labelled if f.token_is_max_context[f.start_position])
    peaks = {(row, "start", gold.start_position): 5.0, (row, "end", gold.end_position): 5.0}
    # A stronger peak on a token this other window does not own must be ignored.
    other = next(r for r, f in enumerate(features) if r != row and any(
        o is not None and not m for o, m in zip(f.token_offsets, f.token_is_max_context)))
    stray = next(p for p, (o, m) in enumerate(zip(features[other].token_offsets, features[other].token_is_max_context))
                 if o is not None and not m)
    peaks[(other, "start", stray)] = 9.0
    peaks[(other, "end", stray)] = 9.0
    start, end = _logits_for(features, peaks)
    decoded = squad.decode_predictions([example], features, start, end, config, version_2=False)
    assert decoded.predictions == {"long": "golden gate"}
    assert decoded.nbest["long"][0].text == "golden gate" and decoded.null_odds == {}
    assert sum(c.probability for c in decoded.nbest["long"]) == pytest.approx(1.0)


def test_version_2_null_odds_threshold_and_choice():
    tok = ChunkTokenizer()
    examples, _ = readers.read_squad(os.path.join(SQUAD, "dev-v2.0.json"))
    config = squad.SquadConfig(max_seq_length=64, doc_stride=16, max_query_length=16)
    features = squad.build_features(examples, tok, config)
    peaks = {}
    for row, f in enumerate(features):
        example = examples[f.example_index]
        target = f.start_position, f.end_position
        if example.is_impossible:  # point at the plausible answer, with a stronger null
            text, char = example.plausible_answers[0]
            span = squad.answer_token_span([o or (0, 0) for o in f.token_offsets], char, char + len(text))
            target = span if span and f.token_is_max_context[span[0]] else (0, 0)
            peaks[(row, "start", 0)] = peaks[(row, "end", 0)] = 2.0  # null score 4 in each window
        if target != (0, 0):
            peaks[(row, "start", target[0])], peaks[(row, "end", target[1])] = 1.0, 1.0  # span score 2
    start, end = _logits_for(features, peaks)
    decoded = squad.decode_predictions(examples, features, start, end, config, version_2=True)
    for example in examples:
        odds = decoded.null_odds[example.qid]
        if example.is_impossible:
            # null 4 - span 2 = 2 > 0: abstain; the best span is still the plausible answer.
            assert odds == pytest.approx(2.0) and decoded.predictions[example.qid] == ""
            assert decoded.best_non_null[example.qid] == example.plausible_answers[0][0]
        else:
            # null = -20 (no bump at [CLS]) - 2 = -22: answer.
            assert odds == pytest.approx(-22.0) and decoded.predictions[example.qid] == example.answers[0][0]
    assert all(c.text == "" for c in decoded.nbest[examples[2].qid][:1])
    # The chosen threshold separates the two groups, so it reproduces these perfect predictions ...
    threshold = squad.choose_null_threshold(examples, decoded)
    assert -22.0 <= threshold < 2.0
    dataset = json.load(open(os.path.join(SQUAD, "dev-v2.0.json")))
    assert metrics.evaluate_squad(dataset, decoded.with_threshold(threshold))["f1"] == 100.0
    # ... while a threshold above every odds answers everything and loses the 3 unanswerable questions.
    assert metrics.evaluate_squad(dataset, decoded.with_threshold(5.0))["exact"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------------------------------------
# Offline scoring


def test_score_squad_prediction_files(tmp_path):
    data = os.path.join(SQUAD, "dev-v2.0.json")
    examples, _ = readers.read_squad(data)
    preds = {e.qid: (e.answers[0][0] if e.answers else "") for e in examples}
    preds[examples[0].qid] = "in France"  # "france" vs "in france": P 1/2, R 1 -> F1 2/3, EM 0
    na = {e.qid: 0.9 if e.is_impossible else 0.1 for e in examples}
    (tmp_path / "p.json").write_text(json.dumps(preds))
    (tmp_path / "na.json").write_text(json.dumps(na))
    result = evaluate.score_predictions("squad2.0", data, str(tmp_path / "p.json"), str(tmp_path / "na.json"))
    assert result["exact"] == pytest.approx(100 * 5 / 6) and result["f1"] == pytest.approx(100 * (5 + 2 / 3) / 6)
    assert result["HasAns_total"] == 3 and result["NoAns_total"] == 3 and "best_f1_thresh" in result
    v1_data = os.path.join(SQUAD, "dev-v1.1.json")
    (tmp_path / "v1.json").write_text(json.dumps({e.qid: e.answers[-1][0] for e in readers.read_squad(v1_data)[0]}))
    v1 = evaluate.score_predictions("squad1.1", v1_data, str(tmp_path / "v1.json"))
    assert v1 == {"exact_match": 100.0, "f1": 100.0}
    del preds[examples[3].qid]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    with pytest.raises(ValueError, match=examples[3].qid):
        evaluate.score_predictions("squad2.0", data, str(tmp_path / "p.json"))


def test_score_glue_prediction_files(tmp_path):
    mrpc = TASKS["mrpc"]
    path = tmp_path / "MRPC.tsv"
    evaluate.write_glue_predictions(str(path), mrpc, ["0", "1"], np.array([1, 1]))
    assert path.read_text() == "index\tprediction\n0\t1\n1\t1\n"
    # Gold 1, 0; predicted 1, 1: accuracy 1/2, F1 = 2*1 / (2*1 + 1 + 0) = 2/3.
    result = evaluate.score_predictions("mrpc", os.path.join(GLUE, "MRPC/dev.tsv"), str(path))
    assert result == {"f1": pytest.approx(2 / 3), "accuracy": 0.5}
    stsb = tmp_path / "STS-B.tsv"
    evaluate.write_glue_predictions(str(stsb), TASKS["sts-b"], ["0", "1", "2", "3"], np.array([4.9, 4.0, 4.5, 1.0]))
    scores = evaluate.score_predictions("sts-b", os.path.join(GLUE, "STS-B/dev.tsv"), str(stsb))
    gold = np.array([5.0, 4.75, 5.0, 2.4])
    assert scores["pearson"] == pytest.approx(metrics.pearson(np.array([4.9, 4.0, 4.5, 1.0]), gold), abs=1e-6)
    mnli = tmp_path / "MNLI-mm.tsv"
    mnli.write_text("index\tprediction\n0\tcontradiction\n")
    with pytest.raises(ValueError, match="no prediction for example id '1'"):
        evaluate.score_predictions("mnli", os.path.join(GLUE, "MNLI/dev_mismatched.tsv"), str(mnli))
    mnli.write_text("index\tprediction\n0\tcontradiction\n1\tyes\n")
    with pytest.raises(ValueError, match=r"id '1'.*label 'yes' is not one of"):
        evaluate.score_predictions("mnli", os.path.join(GLUE, "MNLI/dev_mismatched.tsv"), str(mnli))
    with pytest.raises(ValueError, match="has no label"):
        evaluate.score_predictions("rte", os.path.join(GLUE, "RTE/test.tsv"), str(mnli))


# ----------------------------------------------------------------------------------------------------------
# A user's own texts (text-classification / text-regression)

TABLE_ROWS = [("d1", 'He said "fine, thanks"', "so-so", "pos"), ("d2", "tab-free text", "another", "neg")]


def _write_tables(root, labels=True):
    """The same pairs as CSV (quoted as spreadsheets write it), TSV and JSON lines."""
    import csv
    root.mkdir(parents=True, exist_ok=True)
    header = ["id", "sentence1", "sentence2"] + (["label"] if labels else [])
    rows = [list(r) if labels else list(r[:3]) for r in TABLE_ROWS]
    with open(root / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    (root / "dev.tsv").write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n\n", encoding="utf-8")
    (root / "test.jsonl").write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows),
                                     encoding="utf-8")


def test_own_texts_read_alike_from_csv_tsv_and_jsonl(tmp_path):
    _write_tables(tmp_path)
    task = readers.locate_files(TASKS["text-classification"], tmp_path)
    assert (task.train_file, task.dev_files, [t.path for t in task.test_files]) == ("train.csv", ("dev.tsv",),
                                                                                    ["test.jsonl"])
    assert task.test_labelled  # a labelled test file is reported; dev selects
    read = {name: readers.read_examples(task, str(tmp_path / name)) for name in ("train.csv", "dev.tsv", "test.jsonl")}
    expected = [readers.TextExample(guid, a, b, label) for guid, a, b, label in TABLE_ROWS]
    assert all(examples == expected for examples, _ in read.values())
    assert read["dev.tsv"][1].skipped == {"blank_line": 1}  # counted, not silently dropped
    # the label set is the training file's, sorted (as numbers when they all are)
    assert TASKS["text-classification"].labels == ()
    assert tasks.with_labels_from(task, ["pos", "neg", "pos"]).labels == ("neg", "pos")
    assert tasks.with_labels_from(task, ["10", "2", "1", "2"]).labels == ("1", "2", "10")
    # an unlabelled test file is predicted, not reported: a slice of train selects and dev is reported
    _write_tables(tmp_path / "unlabelled", labels=False)
    (tmp_path / "unlabelled/test.jsonl").rename(tmp_path / "unlabelled/test.csv")
    for name in ("train.csv", "dev.tsv"):
        shutil.copy(tmp_path / name, tmp_path / "unlabelled" / name)
    assert not readers.locate_files(TASKS["text-classification"], tmp_path / "unlabelled").test_labelled
    (tmp_path / "unlabelled/test.csv").unlink()
    assert readers.locate_files(TASKS["text-classification"], tmp_path / "unlabelled").test_files == ()


def test_own_texts_jsonl_numbers_and_regression(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0.25}\n')
    classification = readers.read_examples(TASKS["text-classification"], str(tmp_path / "train.jsonl"))[0]
    assert [e.label for e in classification] == ["1", "0.25"] and [e.guid for e in classification] == ["0", "1"]
    regression = readers.read_examples(TASKS["text-regression"], str(tmp_path / "train.jsonl"))[0]
    assert [e.label for e in regression] == [1.0, 0.25] and [e.text_b for e in regression] == [None, None]
    # .json: JSON lines as above, or one array of the same objects
    (tmp_path / "lines.json").write_text((tmp_path / "train.jsonl").read_text())
    (tmp_path / "array.json").write_text(' [{"text": "a", "label": 1},\n {"text": "b", "label": 0.25}]')
    for name in ("lines.json", "array.json"):
        assert readers.read_examples(TASKS["text-classification"], str(tmp_path / name))[0] == classification
    (tmp_path / "array.json").write_text('[{"text": "a", "label": 1}, "b"]')
    with pytest.raises(ValueError, match=r"array.json: item 1: expected a JSON object"):
        readers.read_examples(TASKS["text-classification"], str(tmp_path / "array.json"))


@pytest.mark.parametrize("name,content,task,message", [
    ("train.csv", "text,label\na,x\nb\n", "text-classification", r"train.csv:3: expected 2 fields"),
    ("train.csv", "text,label\na,x\nb,\n", "text-classification", r"train.csv:3: no 'label' in a labelled file"),
    ("train.csv", "text,label\na,x\n ,y\n", "text-classification", r"train.csv:3: expected text in column 'text'"),
    ("train.csv", "txt,label\na,x\n", "text-classification", r"train.csv:1: columns \['txt', 'label'\] have no text"),
    ("train.tsv", "text\tlabel\na\tmany\n", "text-regression", r"train.tsv:2: expected a number"),
    ("train.jsonl", '{"text": "a", "label": "x"}\n[1]\n', "text-classification", r"train.jsonl:2: expected a JSON obj"),
    ("train.jsonl", '{"text": "a", "label": "x"}\n{"text":\n', "text-classification", r"train.jsonl:2: not a JSON"),
    ("train.csv", "id,text,label\n7,a,x\n7,b,y\n", "text-classification", r"train.csv: id '7' occurs more than once"),
    ("train.txt", "text,label\na,x\n", "text-classification", r"train.txt: expected a .csv, .tsv, .jsonl, .json file"),
])
def test_own_texts_bad_rows_name_file_and_line(tmp_path, name, content, task, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        readers.read_examples(TASKS[task], str(tmp_path / name))


def test_own_texts_saved_by_windows_tools_read_alike_and_other_encodings_are_named(tmp_path):
    """Excel's "CSV UTF-8" and Windows editors start a file with a byte-order mark (and end lines with CRLF): the
    same examples as without. A file in another encoding is refused naming its first undecodable line and byte."""
    _write_tables(tmp_path / "plain")
    for name in ("train.csv", "dev.tsv", "test.jsonl"):
        text = (tmp_path / "plain" / name).read_text(encoding="utf-8")
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    (tmp_path / "array.json").write_text(json.dumps([{"text": "a", "label": "x"}]), encoding="utf-8-sig")
    task = TASKS["text-classification"]
    for name in ("train.csv", "dev.tsv", "test.jsonl"):
        got, expected = (readers.read_examples(task, str(d / name))[0] for d in (tmp_path, tmp_path / "plain"))
        assert got == expected and got[0].text_a == TABLE_ROWS[0][1], name
    assert readers.read_examples(task, str(tmp_path / "array.json"))[0][0].text_a == "a"
    # Excel where the comma is the decimal mark separates with ';'
    with open(tmp_path / "semicolons.csv", "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, delimiter=";").writerows([["id", "sentence1", "sentence2", "label"], *TABLE_ROWS])
    semicolons = readers.read_examples(task, str(tmp_path / "semicolons.csv"))[0]
    assert semicolons == [readers.TextExample(*row) for row in TABLE_ROWS]
    # ... and writes its numbers with a decimal comma: regression labels read as numbers there, and only there
    (tmp_path / "scores.csv").write_text("text;label\na fine film;0,25\na dull film;-1,5\nok;3\n", encoding="utf-8")
    scores = readers.read_examples(TASKS["text-regression"], str(tmp_path / "scores.csv"))[0]
    assert [e.label for e in scores] == [0.25, -1.5, 3.0]
    (tmp_path / "quoted.csv").write_text('text,label\na fine film,"0,25"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"quoted.csv:2: expected a number as text-regression's label, found '0,25'"):
        readers.read_examples(TASKS["text-regression"], str(tmp_path / "quoted.csv"))
    # written by hand, with a space after each comma: the header and the labels read as meant
    (tmp_path / "by_hand.csv").write_text("text, label\na fine film, pos\na dull film, neg \n")
    by_hand = readers.read_examples(task, str(tmp_path / "by_hand.csv"))[0]
    assert [(e.text_a, e.label) for e in by_hand] == [("a fine film", "pos"), ("a dull film", "neg")]
    (tmp_path / "latin1.csv").write_bytes("text,label\nein Film,gut\nGr\u00fc\u00dfe,gut\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv:3: byte 0xfc at column 3 is not UTF-8: save the file as UTF-8"):
        readers.read_examples(task, str(tmp_path / "latin1.csv"))


def test_own_texts_files_are_found_or_named(tmp_path):
    row = TASKS["text-classification"]
    with pytest.raises(FileNotFoundError, match=r"no train file for text-classification \(expected one of train.csv"):
        readers.locate_files(row, tmp_path)
    (tmp_path / "train.csv").write_text("text,label\na,x\n")
    with pytest.raises(FileNotFoundError, match="no dev file"):
        readers.locate_files(row, tmp_path)
    (tmp_path / "validation.csv").write_text("text,label\na,x\n")  # as Hugging Face datasets name it
    assert readers.locate_files(row, tmp_path).dev_files == ("validation.csv",)
    (tmp_path / "dev.csv").write_text("text,label\na,x\n")
    with pytest.raises(ValueError, match="dev.csv and validation.csv both exist; keep one dev file"):
        readers.locate_files(row, tmp_path)
    (tmp_path / "validation.csv").unlink()
    (tmp_path / "dev.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(ValueError, match="dev.csv and dev.jsonl both exist"):
        readers.locate_files(row, tmp_path)


def test_multi_label_sets_read_encode_and_score(tmp_path):
    """A label set is a JSON list or names separated by commas ("" is none); it encodes multi-hot, and a
    predictions file scores offline with micro/macro F1 and subset accuracy."""
    from litebert.finetune.train import load_task_data
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": ["sport", "food"]}\n{"text": "b", "label": []}\n'
                                          '{"text": "c", "label": ["rain"]}\n{"text": "d", "label": ["food"]}\n')
    (tmp_path / "dev.csv").write_text('text,label\ne,"food,sport"\nf,\ng,rain\n')
    data = load_task_data("multi-label-classification", tmp_path)
    task = tasks.with_labels_from(TASKS["multi-label-classification"], ["sport", "food", "rain"])
    assert task.labels == ("food", "rain", "sport") and task.num_labels == 3
    assert [e.label for e in data.reported["dev"]] == [("food", "sport"), (), ("rain",)]
    encoded = readers.encode_pair_examples(data.reported["dev"], task, ChunkTokenizer(), 16)
    assert encoded["labels"].tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    (tmp_path / "dev.csv").write_text('text,label\ne,"food,snow"\n')
    with pytest.raises(ValueError, match=r"dev.csv:2: label 'snow' is not one of the training file's"):
        load_task_data("multi-label-classification", tmp_path)
    (tmp_path / "dev.jsonl").write_text('{"text": "e", "label": ["food, sport"]}\n')
    with pytest.raises(ValueError, match=r"dev.jsonl:1: a multi-label name cannot contain a comma"):
        readers.read_examples(task, str(tmp_path / "dev.jsonl"))
    (tmp_path / "dev.jsonl").unlink()
    (tmp_path / "dev.csv").write_text('text,label\ne,"food,sport"\nf,\ng,rain\n')
    predictions = tmp_path / "predictions.tsv"
    evaluate.write_glue_predictions(str(predictions), task, ["0", "1", "2"], [(0, 2), (), (0,)])
    assert predictions.read_text() == "index\tprediction\n0\tfood,sport\n1\t\n2\tfood\n"
    result = evaluate.score_predictions("multi-label-classification", str(tmp_path / "dev.csv"), str(predictions))
    # decisions: food 1/1 + 1 false (row 2), sport 1/1, rain missed: tp 2, fp 1, fn 1 -> micro F1 2/3
    assert result == {"f1_micro": pytest.approx(2 / 3), "f1_macro": pytest.approx((2 / 3 + 0 + 1) / 3),
                      "subset_accuracy": pytest.approx(2 / 3)}


def test_own_texts_labels_come_from_train_and_score_offline(tmp_path):
    from litebert.finetune.train import load_task_data
    (tmp_path / "train.csv").write_text("text,label\na,spam\nb,ham\nc,spam\nd,ham\n")
    (tmp_path / "dev.csv").write_text("text,label\ne,ham\nf,eggs\n")
    with pytest.raises(ValueError, match=r"dev.csv:3: label 'eggs' is not one of the training file's \['ham', 'spam"):
        load_task_data("text-classification", tmp_path)
    (tmp_path / "dev.csv").write_text("text,label\ne,ham\nf,spam\ng,spam\n")
    data = load_task_data("text-classification", tmp_path)
    assert data.selection_name == "train-heldout" and list(data.reported) == ["dev"]  # no test file
    (tmp_path / "train.csv").write_text("text,label\na,spam\nb,spam\n")
    with pytest.raises(ValueError, match=r"train.csv: text-classification needs two or more labels"):
        load_task_data("text-classification", tmp_path)
    (tmp_path / "train.csv").write_text("text,labels\na,spam\nb,ham\n")  # not the column's name
    with pytest.raises(ValueError, match=r"train.csv: no labels; training, selection and scored files need a 'label'"):
        load_task_data("text-classification", tmp_path)
    predictions = tmp_path / "dev-predictions.tsv"
    predictions.write_text("index\tprediction\n0\tham\n1\tham\n2\tspam\n")
    result = evaluate.score_predictions("text-classification", str(tmp_path / "dev.csv"), str(predictions))
    # gold ham, spam, spam; predicted ham, ham, spam: ham F1 2/3, spam F1 2/3
    assert result == {"accuracy": pytest.approx(2 / 3), "f1_macro": pytest.approx(2 / 3)}


def test_score_race_prediction_file(tmp_path):
    path = tmp_path / "race.json"
    path.write_text(json.dumps({"middle1.txt-0": "B", "middle1.txt-1": "A", "high3.txt-0": "C"}))
    race = evaluate.score_predictions("race", os.path.join(RACE, "dev"), str(path))
    assert race == {"accuracy": pytest.approx(2 / 3)}
    assert evaluate.score_predictions("race-high", os.path.join(RACE, "dev"), str(path)) == {"accuracy": 1.0}


def test_glue_submission_zip_holds_every_task_file(tmp_path, capsys):
    """Runs' submission folders (one run per task, MNLI's with AX) zip into what the GLUE server takes."""
    import zipfile

    from litebert.cli import main
    from litebert.finetune.evaluate import glue_submission_files, write_glue_predictions

    for name, task in glue_submission_files().items():
        run = tmp_path / f"run-{task.name}" / "submission"
        run.mkdir(parents=True, exist_ok=True)
        values = np.array([0.5, 4.25]) if task.kind == "regression" else np.array([0, len(task.labels) - 1])
        write_glue_predictions(str(run / name), task, ["0", "1"], values)
    runs = sorted(str(p) for p in tmp_path.glob("run-*"))
    assert len(runs) == 9  # MNLI's run carries MNLI-m, MNLI-mm and AX
    assert main(["glue-submission", *runs, "--output", str(tmp_path / "glue.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "glue.zip") as z:
        assert sorted(z.namelist()) == sorted(glue_submission_files())
        assert z.read("AX.tsv").decode().splitlines() == ["index\tprediction", "0\tcontradiction", "1\tneutral"]
        assert z.read("STS-B.tsv").decode().splitlines()[1:] == ["0\t0.5", "1\t4.25"]
    # a missing task is named (or allowed, for a partial zip); a bad label names its file and line
    assert main(["glue-submission", *runs[1:], "--output", str(tmp_path / "part.zip")]) == 2
    assert "missing" in capsys.readouterr().err and not (tmp_path / "part.zip").exists()
    assert main(["glue-submission", *runs[1:], "--output", str(tmp_path / "part.zip"), "--allow-missing"]) == 0
    (tmp_path / "run-rte/submission/RTE.tsv").write_text("index\tprediction\n0\tmaybe\n")
    assert main(["glue-submission", *runs, "--output", str(tmp_path / "bad.zip")]) == 2
    assert "RTE.tsv:2" in capsys.readouterr().err and not (tmp_path / "bad.zip").exists()


# ----------------------------------------------------------------------------------------------------------
# The answerability head's decoding, against an independent re-computation


WORDS_2 = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def _overlap_f1(gold: str, predicted: str) -> float:
    """Token-overlap F1 for texts of lower-case plain words (what the official F1 reduces to for them)."""
    g, p = gold.split(), predicted.split()
    if not g or not p:
        return float(g == p)
    common = sum(min(g.count(w), p.count(w)) for w in set(g))
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def test_answerability_beam_decoding_and_threshold_match_a_numpy_recomputation(tmp_path):
    from litebert.finetune.readers import SquadExample
    from litebert.finetune.squad import SquadConfig, build_features, choose_null_threshold, \
        decode_beam_predictions
    from litebert.tokenizer import WordPieceTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "?",
                                                   *WORDS_2]) + "\n")
    tokenizer = WordPieceTokenizer(tmp_path / "vocab.txt")
    rng = np.random.default_rng(7)
    examples = []
    for q in range(40):
        context = " ".join(rng.choice(WORDS_2, int(rng.integers(6, 30))))
        words = context.split()
        answerable = rng.random() < 0.6
        answers = []
        if answerable:
            a = int(rng.integers(len(words)))
            b = min(len(words), a + int(rng.integers(1, 3)))
            text = " ".join(words[a:b])
            answers = [(text, len(" ".join(words[:a])) + (1 if a else 0))]
        examples.append(SquadExample(f"q{q}", "what ?", context, answers, is_impossible=not answerable))
    config = SquadConfig(max_seq_length=16, doc_stride=4, max_query_length=4, n_best_size=3, max_answer_length=3)
    features = build_features(examples, tokenizer, config)
    assert len(features) > len(examples)  # long contexts span several windows
    k, k_end, n = 3, 2, len(features)
    start_index = np.stack([rng.choice(16, k, replace=False) for _ in range(n)])
    end_index = rng.integers(0, 16, (n, k * k_end))
    start_lp, end_lp = rng.normal(size=(n, k)), rng.normal(size=(n, k * k_end))
    cls = rng.normal(size=n)
    decoded = decode_beam_predictions(examples, features, start_lp, start_index, end_lp, end_index, cls, config)

    # independent: every (window, start i, end j) candidate, its validity, the best distinct text, the null odds
    for q, example in enumerate(examples):
        rows = [r for r, f in enumerate(features) if f.example_index == q]
        best_text, best_score = "", -np.inf
        for r in rows:
            f = features[r]
            for i in range(k):
                for j in range(k_end):
                    s, e = int(start_index[r, i]), int(end_index[r, i * k_end + j])
                    offsets = f.token_offsets
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if not f.token_is_max_context[s] or e < s or e - s + 1 > config.max_answer_length:
                        continue
                    score = start_lp[r, i] + end_lp[r, i * k_end + j]
                    if score > best_score:
                        best_text, best_score = example.context[offsets[s][0]:offsets[e][1]], score
        assert decoded.best_non_null[example.qid] == best_text, example.qid
        expected_odds = min(cls[r] for r in rows) if best_text else np.inf
        assert decoded.null_odds[example.qid] == expected_odds

    # independent threshold: try every cut, keep the best total F1 (the smallest threshold on ties)
    threshold = choose_null_threshold(examples, decoded)

    def total(t: float) -> float:
        out = 0.0
        for e in examples:
            answer = "" if decoded.null_odds[e.qid] > t else decoded.best_non_null[e.qid]
            golds = [text for text, _ in e.answers] or [""]
            out += max(_overlap_f1(g, answer) for g in golds)
        return out

    cuts = sorted({-np.inf, *decoded.null_odds.values()})
    best = max(total(t) for t in cuts)
    assert total(threshold) == pytest.approx(best)
    assert threshold == next(t for t in cuts if total(t) == pytest.approx(best))
