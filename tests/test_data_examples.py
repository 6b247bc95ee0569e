"""Documents -> SOP/NSP/single-segment instances, on documents whose pieces are numbered in reading order."""
import numpy as np
import pytest

from litebert.data.examples import IGNORE_LABEL, ExampleOptions, SpecialIds, create_instances, split_long_segments
from litebert.pairs import truncate_pair

CLS, SEP = 2, 3
SPECIAL = SpecialIds(CLS, SEP)
FIRST_ID = 10


def numbered_documents(rng: np.random.Generator, count: int, max_segments: int = 8) -> list[list[np.ndarray]]:
    """Documents of 1..max_segments segments of 1..40 pieces; pieces are numbered consecutively through
    the corpus, so an id tells which document it comes from and where."""
    documents, next_id = [], FIRST_ID
    for _ in range(count):
        document = []
        for length in rng.integers(1, 41, size=int(rng.integers(1, max_segments + 1))):
            document.append(np.arange(next_id, next_id + length))
            next_id += length
        documents.append(document)
    return documents


def word_start_for(documents) -> np.ndarray:
    top = max(int(s.max()) for d in documents for s in d) + 1
    flags = np.ones(top, dtype=bool)
    flags[1::3] = False  # some pieces continue a word
    return flags


def all_instances(documents, options, seed=0):
    word_start = word_start_for(documents)
    out = []
    for index in range(len(documents)):
        instances = create_instances(documents, index, options, SPECIAL, word_start,
                                     np.random.default_rng([seed, index])).instances
        out += [(index, i) for i in instances]
    return out


def split_pair(instance):
    """(A, B) pieces of `[CLS] A [SEP] B [SEP]`."""
    ids = instance.input_ids
    return ids[1:instance.a_length - 1], ids[instance.a_length:-1]


def is_run(pieces: np.ndarray) -> bool:
    """True if the pieces are consecutive source pieces (a contiguous piece of one document)."""
    return len(pieces) > 0 and np.array_equal(pieces, np.arange(pieces[0], pieces[0] + len(pieces)))


def document_finder(documents):
    """piece -> index of the document holding it (documents hold increasing, consecutive pieces)."""
    starts = np.array([int(d[0][0]) for d in documents])
    return lambda piece: int(np.searchsorted(starts, piece, side="right")) - 1


@pytest.fixture(scope="module")
def sop_instances():
    documents = numbered_documents(np.random.default_rng(0), 3000)
    options = ExampleOptions(max_seq_length=64, short_seq_prob=0.1, sentence_task="sop")
    return documents, options, all_instances(documents, options)


def test_sop_labels_are_balanced(sop_instances):
    _, _, instances = sop_instances
    labels = np.array([i.label for _, i in instances])
    assert len(labels) > 5000
    assert set(labels.tolist()) == {0, 1}
    assert abs(labels.mean() - 0.5) < 0.02


def test_sop_pairs_are_consecutive_source_text_after_unswapping(sop_instances):
    documents, options, instances = sop_instances
    document_of = document_finder(documents)
    for index, instance in instances:
        a, b = split_pair(instance)
        if instance.label == 1:
            a, b = b, a
        assert is_run(a) and is_run(b)
        assert document_of(a[0]) == document_of(b[-1]) == index
        if len(a) + len(b) < options.max_num_tokens:
            assert b[0] == a[-1] + 1  # untruncated: B continues exactly where A ends
        else:
            assert b[0] > a[-1]  # truncation may drop the end of A or the start of B


def test_special_tokens_and_lengths(sop_instances):
    _, options, instances = sop_instances
    for _, instance in instances:
        ids = instance.input_ids
        assert len(ids) <= options.max_seq_length
        assert ids[0] == CLS and ids[instance.a_length - 1] == SEP and ids[-1] == SEP
        assert np.flatnonzero(np.isin(ids, [CLS, SEP])).tolist() == [0, instance.a_length - 1, len(ids) - 1]


def test_short_seq_prob_gives_shorter_examples(sop_instances):
    _, options, instances = sop_instances
    lengths = np.array([len(i.input_ids) for _, i in instances])
    documents = numbered_documents(np.random.default_rng(0), 3000)
    long_only = all_instances(documents, ExampleOptions(64, 0.0, "sop"))
    assert np.mean(lengths < 32) > np.mean(np.array([len(i.input_ids) for _, i in long_only]) < 32)


def test_single_segment_chunks_split_inside_the_segment_never_a_random_document():
    documents = [[np.arange(FIRST_ID + 100 * d, FIRST_ID + 100 * d + 30)] for d in range(400)]
    options = ExampleOptions(max_seq_length=64, short_seq_prob=0.0, sentence_task="sop")
    instances = all_instances(documents, options)
    assert len(instances) == 400
    for index, instance in instances:
        a, b = split_pair(instance)
        if instance.label == 1:
            a, b = b, a
        assert np.array_equal(np.concatenate([a, b]), documents[index][0])
    assert abs(np.mean([i.label for _, i in instances]) - 0.5) < 0.1


def test_one_piece_document_makes_no_example():
    documents = [[np.array([FIRST_ID])], [np.arange(FIRST_ID + 1, FIRST_ID + 20)]]
    word_start = word_start_for(documents)
    options = ExampleOptions(64, 0.0, "sop")
    instances, short, truncated = create_instances(documents, 0, options, SPECIAL, word_start, np.random.default_rng(0))
    assert instances == [] and short == 1 and truncated == 0


def test_nsp_random_next_comes_from_another_document():
    documents = numbered_documents(np.random.default_rng(1), 1500)
    options = ExampleOptions(max_seq_length=64, short_seq_prob=0.1, sentence_task="nsp")
    instances = all_instances(documents, options)
    labels = np.array([i.label for _, i in instances])
    assert abs(labels.mean() - 0.5) < 0.03
    document_of = document_finder(documents)
    for index, instance in instances:
        a, b = split_pair(instance)
        assert is_run(a) and document_of(a[0]) == index
        if instance.label == 1:
            assert document_of(b[0]) != index
        else:
            assert is_run(b) and document_of(b[0]) == index and b[0] > a[-1]


def test_nsp_puts_unused_segments_back():
    # Segments that a random B displaced start the next chunk, so every piece of a document that needs no
    # truncation appears in some example; only a last segment cut in two for a random B loses its end.
    documents = numbered_documents(np.random.default_rng(2), 300, max_segments=12)
    options = ExampleOptions(max_seq_length=512, short_seq_prob=0.0, sentence_task="nsp")
    seen: dict[int, set] = {}
    for index, instance in all_instances(documents, options):
        a, b = split_pair(instance)
        seen.setdefault(index, set()).update(a.tolist())
        if instance.label == 0:
            seen[index].update(b.tolist())
    for index, document in enumerate(documents):
        if len(document) > 1:
            assert set(np.concatenate(document[:-1]).tolist()) <= seen[index]


def test_single_segment_task_none():
    documents = numbered_documents(np.random.default_rng(3), 300)
    options = ExampleOptions(max_seq_length=48, short_seq_prob=0.0, sentence_task="none")
    document_of = document_finder(documents)
    for index, instance in all_instances(documents, options):
        ids = instance.input_ids
        assert instance.label == IGNORE_LABEL and instance.a_length == len(ids) <= 48
        assert ids[0] == CLS and ids[-1] == SEP and is_run(ids[1:-1])
        assert document_of(ids[1]) == index


def reference_truncate(a: list, b: list, max_num_tokens: int, rng) -> tuple[list, list]:
    """BERT's truncate_seq_pair, one piece at a time."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b


def test_truncate_pair_matches_the_reference_loop():
    rng = np.random.default_rng(0)
    for _ in range(500):
        la, lb, limit = (int(x) for x in rng.integers(1, 60, size=3))
        limit = max(limit, 2)
        a, b = np.arange(la), np.arange(100, 100 + lb)
        ta, tb = truncate_pair(a, b, limit, rng)
        ra, rb = reference_truncate(a, b, limit, np.random.default_rng(1))
        assert (len(ta), len(tb)) == (len(ra), len(rb))
        assert is_run(ta) and is_run(tb)  # pieces only leave from the ends


def test_bad_options():
    with pytest.raises(ValueError, match="sentence_task"):
        ExampleOptions(sentence_task="nextsentence")
    with pytest.raises(ValueError, match="max_seq_length"):
        ExampleOptions(max_seq_length=4)


@pytest.mark.parametrize("task", ["sop", "nsp", "none"])
def test_every_piece_is_in_an_example_or_counted_as_truncated(task):
    """Each document's pieces are either in its examples, in a one-piece chunk, or in `truncated_pieces`:
    nothing leaves uncounted (NSP's random B, from another document, is not this document's text)."""
    documents = numbered_documents(np.random.default_rng(3), 800)
    options = ExampleOptions(max_seq_length=48, short_seq_prob=0.1, sentence_task=task)
    word_start, document_of = word_start_for(documents), document_finder(documents)
    truncated_total = 0
    for index, document in enumerate(documents):
        made = create_instances(documents, index, options, SPECIAL, word_start, np.random.default_rng([5, index]))
        own = sum(int(np.sum([document_of(p) == index for p in i.input_ids if p >= FIRST_ID])) for i in made.instances)
        assert own + made.truncated_pieces + made.short_chunks == sum(len(s) for s in document), index
        truncated_total += made.truncated_pieces
    assert truncated_total > 0  # the official chunking overshoots its target, and the overshoot is cut


def test_long_segments_split_at_word_starts_and_keep_their_text():
    segment = np.arange(FIRST_ID, FIRST_ID + 100)
    word_start = np.zeros(FIRST_ID + 200, dtype=bool)
    word_start[FIRST_ID::7] = True  # words of 7 pieces
    word_start[FIRST_ID + 56] = False  # one word of 14 pieces: 49..62
    short = np.arange(FIRST_ID + 150, FIRST_ID + 160)
    parts = split_long_segments([segment, short], 20, word_start)
    assert np.array_equal(np.concatenate(parts), np.concatenate([segment, short]))
    assert all(len(p) <= 20 for p in parts) and parts[-1] is short
    # cuts at the last word start that fits: two 7-piece words a part, one where the 14-piece word follows
    assert [len(p) for p in parts[:-1]] == [14, 14, 14, 7, 14, 14, 14, 9]
    assert all(word_start[p[0]] for p in parts[:-1])
    no_words = split_long_segments([segment], 30, np.zeros(FIRST_ID + 200, dtype=bool))
    assert [len(p) for p in no_words] == [30, 30, 30, 10]  # a word longer than the limit is cut inside
