"""Small synthetic tasks that a tiny model can learn in seconds, in the official file formats, from a seed.

Every task needs the text: a label follows a cue word, a pair label needs both sentences (are both
positive?), a score counts words, an answer is the word after a cue, a tag depends on the word and its neighbour.
Train, dev and test are disjoint (no sentence/context appears in two splits).

    python tests/learnable_tasks.py OUT_DIR     writes OUT_DIR/{glue,squad,race,conll,table,multilabel}/...
"""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

FILLER = ("the a of and to in it was on for with as at by from this that there then when while over under "
          "near after before again also just only very much more some any each every other such").split()
FILLER = [w for w in FILLER if w != "very"]  # "very" is the regression task's counted word
NOUNS = "river house garden window table letter market bridge forest valley castle island".split()
GOOD, BAD = ["good", "great", "fine", "nice", "lovely"], ["bad", "awful", "poor", "sad", "dull"]
FIRST, LAST = ["anna", "boris", "clara", "david", "elena", "felix"], ["smith", "jones", "brown", "wilson"]
CITIES, ORGS = ["paris", "oslo", "lima", "cairo", "delhi"], ["acme", "globex", "initech", "umbrella"]
SIZES = {"train": 480, "dev": 120, "test": 80}


def unique(make: Callable[[np.random.Generator], tuple], rng: np.random.Generator, key=lambda x: x[0]
           ) -> dict[str, list[tuple]]:
    """SIZES examples per split from `make`, no key (the text) in two splits."""
    seen, out = set(), {}
    for split, n in SIZES.items():
        out[split] = []
        while len(out[split]) < n:
            example = make(rng)
            if key(example) not in seen:
                seen.add(key(example))
                out[split].append(example)
    return out


def words(rng: np.random.Generator, n: int, pool=FILLER) -> list[str]:
    return [str(w) for w in rng.choice(pool, n)]


# ---------------------------------------------------------------------------------------------- GLUE
def sentiment(rng: np.random.Generator) -> tuple[str, str]:
    """SST-2: the label is the cue word's side."""
    label = int(rng.integers(2))
    text = words(rng, int(rng.integers(4, 9)))
    text.insert(int(rng.integers(len(text) + 1)), str(rng.choice(GOOD if label else BAD)))
    return " ".join(text), str(label)


def agreement(rng: np.random.Generator) -> tuple[str, str, str]:
    """RTE: entailment when both sentences are positive (each holds a good or a bad word): neither sentence
    alone tells the label. Half the pairs are entailed; the others are (+,-), (-,+) or (-,-) alike."""
    entailed = bool(rng.integers(2))
    sides = (1, 1) if entailed else [(1, 0), (0, 1), (0, 0)][int(rng.integers(3))]
    pair = []
    for side in sides:
        text = words(rng, int(rng.integers(3, 6)))
        text.insert(int(rng.integers(len(text) + 1)), str(rng.choice(GOOD if side else BAD)))
        pair.append(" ".join(text))
    return pair[0], pair[1], "entailment" if entailed else "not_entailment"


def similarity(rng: np.random.Generator) -> tuple[str, str, str]:
    """STS-B: the score is how many times "very" occurs in the pair (0-5)."""
    count = int(rng.integers(6))
    s1, s2 = words(rng, 5), words(rng, 4)
    for _ in range(count):
        target = s1 if rng.random() < 0.5 else s2
        target.insert(int(rng.integers(len(target) + 1)), "very")
    return " ".join(s1), " ".join(s2), f"{count:.1f}"


def write_glue(root: Path, rng: np.random.Generator) -> None:
    def tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    for split, rows in unique(sentiment, rng).items():
        if split == "test":  # GLUE test files: no label, an index column
            tsv(root / "SST-2/test.tsv", ["index", "sentence"], [[str(i), s] for i, (s, _) in enumerate(rows)])
        else:
            tsv(root / f"SST-2/{split}.tsv", ["sentence", "label"], [list(r) for r in rows])
    for split, rows in unique(agreement, rng, key=lambda x: x[:2]).items():
        header = ["index", "sentence1", "sentence2"] + (["label"] if split != "test" else [])
        tsv(root / f"RTE/{split}.tsv", header, [[str(i), *r[:2], *(r[2:] if split != "test" else [])]
                                               for i, r in enumerate(rows)])
    sts = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
    for split, rows in unique(similarity, rng, key=lambda x: x[:2]).items():
        header = sts + (["score"] if split != "test" else [])
        tsv(root / f"STS-B/{split}.tsv", header,
            [[str(i), "main-synthetic", "synthetic", "2026", str(i), "none", "none", *r[:2],
              *(r[2:] if split != "test" else [])] for i, r in enumerate(rows)])


# ---------------------------------------------------------------------------------------------- SQuAD
def named_thing(rng: np.random.Generator, answerable: bool = True) -> tuple[str, str | None]:
    """Context and answer: the word after "named" (None: the context names nothing)."""
    context = words(rng, int(rng.integers(8, 16)))
    answer = None
    if answerable:
        answer = str(rng.choice(NOUNS))
        at = int(rng.integers(len(context) + 1))
        context[at:at] = ["named", answer]
    return " ".join(context), answer


def write_squad(root: Path, rng: np.random.Generator) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for version in ("1.1", "2.0"):
        def make(r, v=version):
            return named_thing(r, answerable=v == "1.1" or r.random() < 0.6)
        for split, rows in unique(make, rng).items():
            if split == "test":  # SQuAD's test sets are hidden; train and dev are what a run reads
                continue
            paragraphs = []
            for i, (context, answer) in enumerate(rows):
                qa = {"id": f"{split}-{version}-{i}", "question": "what is named ?", "answers": []}
                if answer is not None:
                    qa["answers"] = [{"text": answer, "answer_start": context.index(f"named {answer}") + 6}]
                if version == "2.0":
                    qa["is_impossible"] = answer is None
                paragraphs.append({"context": context, "qas": [qa]})
            data = {"version": f"v{version}", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}
            (root / f"{split}-v{version}.json").write_text(json.dumps(data), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- RACE
def keyed_article(rng: np.random.Generator) -> tuple[str, list[str], str]:
    """Article, four options, the answer letter: the option the article calls the key."""
    options = [str(o) for o in rng.choice(NOUNS, 4, replace=False)]
    answer = int(rng.integers(4))
    article = words(rng, 6) + ["the", "key", "is", options[answer], "."] + words(rng, 6)
    return " ".join(article), options, "ABCD"[answer]


def write_race(root: Path, rng: np.random.Generator) -> None:
    for split, rows in unique(keyed_article, rng).items():
        folder = root / split / "middle"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (article, options, answer) in enumerate(rows):
            passage = {"id": f"{i}.txt", "article": article, "questions": ["what is the key ?"],
                       "options": [options], "answers": [answer]}
            (folder / f"{i}.txt").write_text(json.dumps(passage), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- CoNLL
def tagged_sentence(rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words and IOB2 tags: a first name (+ surname) is a person, a city after "in" a location, a company
    an organisation; "in" + person or a city elsewhere stays a person / O: the tag needs the neighbour."""
    out: list[tuple[str, str]] = [(w, "O") for w in words(rng, int(rng.integers(3, 7)))]
    for _ in range(int(rng.integers(1, 3))):
        kind = rng.integers(3)
        if kind == 0:
            span = [(str(rng.choice(FIRST)), "B-PER")] + ([(str(rng.choice(LAST)), "I-PER")] if rng.random() < 0.5
                                                         else [])
        elif kind == 1:
            span = [("in", "O"), (str(rng.choice(CITIES)), "B-LOC")]
        else:
            span = [(str(rng.choice(ORGS)), "B-ORG")]
        at = int(rng.integers(len(out) + 1))
        out[at:at] = span
    if rng.random() < 0.3:  # a city not after "in" is no location here
        out.insert(0, (str(rng.choice(CITIES)), "O"))
    return tuple(w for w, _ in out), tuple(t for _, t in out)


def write_conll(root: Path, rng: np.random.Generator) -> None:
    root.mkdir(parents=True, exist_ok=True)
    names = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}
    for split, rows in unique(tagged_sentence, rng).items():
        lines = ["-DOCSTART- -X- -X- O", ""]
        for sentence, tags in rows:
            lines += [f"{w} NN I-NP {t}" for w, t in zip(sentence, tags)] + [""]
        (root / names[split]).write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- own texts
TOPICS = {"sport": ["goal", "match", "team", "coach"], "weather": ["rain", "storm", "cloud", "wind"],
          "food": ["bread", "soup", "cheese", "pasta"]}


def topical(rng: np.random.Generator) -> tuple[str, str]:
    """text-classification: three classes, the label the topic of the one cue word."""
    topic = str(rng.choice(list(TOPICS)))
    text = words(rng, int(rng.integers(3, 8)))
    text.insert(int(rng.integers(len(text) + 1)), str(rng.choice(TOPICS[topic])))
    return " ".join(text), topic


def write_table(root: Path, rng: np.random.Generator) -> None:
    """A user's own data in each format `text-classification` reads: train.csv, dev.jsonl (with ids),
    test.tsv (labelled, so dev selects and test is reported)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = unique(topical, rng)
    with open(root / "train.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *rows["train"]])
    (root / "dev.jsonl").write_text("".join(json.dumps({"id": f"dev-{i}", "text": t, "label": label}) + "\n"
                                            for i, (t, label) in enumerate(rows["dev"])), encoding="utf-8")
    (root / "test.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows["test"]),
                                   encoding="utf-8")


def multi_topical(rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    """multi-label-classification: 0-3 topics, each named by one cue word; the labels are the topics present."""
    topics = sorted(str(t) for t in rng.choice(list(TOPICS), int(rng.integers(0, 4)), replace=False))
    text = words(rng, int(rng.integers(3, 7)))
    for topic in topics:
        text.insert(int(rng.integers(len(text) + 1)), str(rng.choice(TOPICS[topic])))
    return " ".join(text), tuple(topics)


def write_multilabel(root: Path, rng: np.random.Generator) -> None:
    """Multi-label data in each way the reader takes label sets: train.jsonl (JSON lists), dev.csv and test.tsv
    (names separated by commas; an empty cell is no label)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = unique(multi_topical, rng)
    (root / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": list(labels)}) + "\n"
                                              for t, labels in rows["train"]), encoding="utf-8")
    with open(root / "dev.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *[(t, ",".join(labels)) for t, labels in rows["dev"]]])
    (root / "test.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{','.join(labels)}\n"
                                                            for t, labels in rows["test"]), encoding="utf-8")


def write_all(out: Path, seed: int = 2026) -> Path:
    """Every task family under `out`: glue/{SST-2,RTE,STS-B}, squad/, race/, conll/, table/, multilabel/."""
    rng = np.random.default_rng(seed)
    write_glue(out / "glue", rng)
    write_squad(out / "squad", rng)
    write_race(out / "race", rng)
    write_conll(out / "conll", rng)
    write_table(out / "table", rng)
    write_multilabel(out / "multilabel", rng)
    return out


def all_text(out: Path) -> Iterator[str]:
    """The training files' text (for a tokenizer: never dev or test)."""
    for path in sorted(out.rglob("*")):
        if path.is_file() and ("train" in path.parts or path.stem.startswith("train")):
            yield path.read_text(encoding="utf-8")


if __name__ == "__main__":
    write_all(Path(sys.argv[1]))
