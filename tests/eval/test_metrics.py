"""Hand-worked examples for eval.metrics, including the empty cases."""

import math

import pytest

from eval.metrics import (
    f1_score,
    first_hit_rank,
    boundary_run,
    mean,
    ndcg_at_k,
    normalize_whitespace,
    passage_relevances,
    precision_recall,
    quote_hit,
    recall_at_k,
    reciprocal_rank,
)

# ---------------------------------------------------------------- quote_hit


def test_normalize_whitespace():
    assert normalize_whitespace("  a \n\n b\t c\u00a0d  ") == "a b c d"
    assert normalize_whitespace("") == ""


def test_quote_hit_exact():
    passage = "In addition, the seat of political power was in the towns and not in the countryside."
    assert quote_hit(passage, "the seat of political power was in the towns")


def test_quote_hit_whitespace_normalized():
    passage = "the seat of\npolitical   power was in\n\nthe towns"
    assert quote_hit(passage, "the seat of political power was in the towns")
    assert quote_hit("the seat of political power", "the  seat\tof political\n power")


def test_quote_hit_cut_at_chunk_boundary():
    quote = "abcdefghij"  # 10 characters
    assert quote_hit("end of a chunk abcdef", quote)  # the passage closes with the quote's head, 6/10 = 60% -> hit
    assert quote_hit("efghij starts the next chunk", quote)  # it opens with the tail, 6/10 -> hit
    assert quote_hit("xx abcde", quote)  # 5/10 = exactly min_fraction 0.5 -> hit
    assert not quote_hit("end of a chunk abc", quote)  # 3/10 = 30% -> miss
    assert not quote_hit("hij starts the next chunk", quote)  # 3/10 -> miss
    # Pieces that are not contiguous do not add up: "abc" + "ghij" is 7 chars but neither end is a cut of 5.
    assert not quote_hit("abc ... ghij", quote)


def test_a_run_of_the_quote_inside_a_passage_is_no_cut():
    # issue 19: "WireGuard on Linux" against five passages that merely say "on Linux"
    quote = "WireGuard on Linux"  # 18 characters; "on Linux" is 8, "Guard on Linux" 14
    assert not quote_hit("Install the client on Linux with apt.", quote)
    assert not quote_hit("It runs on Linux", quote)  # closes with the quote's tail, not its head: no cut
    assert not quote_hit("on Linux it is a kernel module", quote)  # opens with the tail, but 8/18 < half
    assert quote_hit("See the notes about WireGuard on", quote)  # closes with the head, 12/18
    assert quote_hit("Guard on Linux is fast", quote)  # opens with the tail, 14/18
    # a long run in the middle, 9/10 of the quote: before issue 19 a hit, now not (no boundary cuts it there)
    assert not quote_hit("xx abcdefghi yy", "abcdefghij")
    # the boundary is the passage's own start or end after whitespace normalisation
    assert quote_hit("  \n efghij\n", "abcdefghij")
    assert quote_hit("start abcdef \n\n", "abcdefghij")


def test_boundary_run_hand_worked():
    assert boundary_run("abcd xyz", "xyzabc") == 3  # the passage closes with "xyz", the quote's head
    assert boundary_run("abc xyz", "xyzabc") == 3  # opens with "abc", its tail; closes with "xyz", its head: 3 both ways
    assert boundary_run("cdef gh", "abcdef") == 4  # opens with "cdef"
    assert boundary_run("zz ab", "abcdef") == 2  # closes with "ab"
    assert boundary_run("zz ab", "abcdef", at_least=3) == 0  # shorter than asked for
    assert boundary_run("abcdef", "abcdef") == 0  # the whole quote is a containment (quote_hit's), and no shorter part sits at an end
    assert boundary_run("aaa", "aaaa") == 3  # never longer than the passage
    assert boundary_run("", "abc") == 0 and boundary_run("abc", "") == 0
    assert boundary_run("b", "ab") == 1  # the last character of the quote opens the passage


def test_quote_hit_cut_real_sentence():
    quote = "Pushing for land reform meant going after the possessions of the landed aristocracy"
    n = len(quote)
    assert quote_hit("...partners in profit. " + quote[: math.ceil(0.6 * n)], quote)
    assert not quote_hit("...partners in profit. " + quote[: int(0.3 * n)], quote)


def test_quote_hit_min_fraction():
    quote = "abcdefghij"
    assert not quote_hit("abcdef", quote, min_fraction=0.7)
    assert quote_hit("abcdefg", quote, min_fraction=0.7)
    assert not quote_hit("abcdefghi", quote, min_fraction=1.0)  # 1.0 = whole quote only
    assert quote_hit("xabcdefghijx", quote, min_fraction=1.0)
    with pytest.raises(ValueError):
        quote_hit("abc", "abc", min_fraction=0.0)
    with pytest.raises(ValueError):
        quote_hit("abc", "abc", min_fraction=1.5)


def test_quote_hit_is_character_exact():
    # Curly and straight apostrophes differ: only the whitespace is normalized.
    assert not quote_hit("Russia's first revolution", "Russia’s first revolution", min_fraction=1.0)
    assert not quote_hit("THE TOWNS", "the towns")


def test_quote_hit_empty():
    assert not quote_hit("some passage", "")
    assert not quote_hit("some passage", "   \n ")
    assert not quote_hit("", "a quote")


# ------------------------------------------------- first_hit_rank, relevances

PASSAGES = [
    "Marx and Engels predicted a revolution in industrialized countries.",
    "The Mensheviks argued that Russia was still a feudal economy.",
    "Stalin and Bukharin ordered the Chinese Communist Party to enter the Kuomintang.",
    "The Mensheviks argued that a bourgeois revolution was needed.",
]


def test_first_hit_rank():
    assert first_hit_rank(PASSAGES, ["The Mensheviks argued"]) == 2
    # any quote counts: the second quote hits at rank 3, before the first at 4
    assert first_hit_rank(PASSAGES, ["a bourgeois revolution was needed", "Stalin and Bukharin ordered"]) == 3
    assert first_hit_rank(PASSAGES, ["Rosa Luxemburg criticized the Bolsheviks"]) is None


def test_first_hit_rank_empty():
    assert first_hit_rank(PASSAGES, []) is None  # unanswerable question: never a hit
    assert first_hit_rank([], ["The Mensheviks argued"]) is None


def test_passage_relevances():
    assert passage_relevances(PASSAGES, ["The Mensheviks argued"]) == [0, 1, 0, 1]
    assert passage_relevances(PASSAGES, []) == [0, 0, 0, 0]
    assert passage_relevances([], ["x"]) == []


# ----------------------------------------------------------- rank metrics


def test_recall_at_k():
    assert recall_at_k(1, 1) == 1.0
    assert recall_at_k(3, 3) == 1.0
    assert recall_at_k(4, 3) == 0.0
    assert recall_at_k(None, 10) == 0.0
    assert recall_at_k(1, 0) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank(1) == 1.0
    assert reciprocal_rank(4) == 0.25
    assert reciprocal_rank(10) == pytest.approx(0.1)  # default k=10 includes rank 10
    assert reciprocal_rank(11) == 0.0
    assert reciprocal_rank(3, k=2) == 0.0
    assert reciprocal_rank(None) == 0.0


def test_ndcg_hand_worked():
    # relevances [0, 1, 0, 1], k=4, binary gains:
    #   DCG  = 1/log2(3) + 1/log2(5)         = 0.6309298 + 0.4306766 = 1.0616063
    #   IDCG = [1, 1, 0, 0] -> 1/log2(2) + 1/log2(3) = 1 + 0.6309298 = 1.6309298
    #   nDCG = 1.0616063 / 1.6309298 = 0.6509209
    assert ndcg_at_k([0, 1, 0, 1], 4) == pytest.approx(0.6509209, abs=1e-7)
    # one relevant item at rank 3: DCG = 1/log2(4) = 0.5, IDCG = 1 -> 0.5
    assert ndcg_at_k([0, 0, 1], 3) == pytest.approx(0.5)
    # it falls outside k=2: DCG = 0 while IDCG = 1 -> 0.0
    assert ndcg_at_k([0, 0, 1], 2) == 0.0
    assert ndcg_at_k([1, 0, 0], 3) == 1.0
    # graded relevances count as binary: [2, 0] is as good as [1, 0]
    assert ndcg_at_k([2, 0], 2) == 1.0


def test_ndcg_with_n_relevant():
    # 2 relevant items exist but only one was retrieved, at rank 1:
    #   DCG = 1, IDCG = 1 + 1/log2(3) = 1.6309298 -> 0.6131472
    assert ndcg_at_k([1, 0, 0], 3, n_relevant=2) == pytest.approx(0.6131472, abs=1e-7)
    # IDCG is truncated at k: 5 relevant, k=1 -> IDCG = 1
    assert ndcg_at_k([1, 0], 1, n_relevant=5) == 1.0
    assert ndcg_at_k([1, 0], 2, n_relevant=0) == 0.0


def test_ndcg_empty():
    assert ndcg_at_k([], 10) == 0.0
    assert ndcg_at_k([0, 0, 0], 3) == 0.0  # no relevant item
    assert ndcg_at_k([1, 1], 0) == 0.0


def test_mean():
    assert mean([]) == 0.0
    assert mean([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert mean(x for x in [1.0, 0.0]) == 0.5


# ------------------------------------------------------ precision / recall


def test_precision_recall_hand_worked():
    predicted = [True, True, False, False, True]
    actual = [True, False, True, False, True]
    # TP = 2 (items 0, 4), FP = 1 (item 1), FN = 1 (item 2)
    p, r = precision_recall(predicted, actual)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(2 / 3)
    assert precision_recall([True, False], [True, False]) == (1.0, 1.0)
    # TP = 1, FP = 0, FN = 2
    assert precision_recall([True, False, False], [True, True, True]) == (1.0, pytest.approx(1 / 3))


def test_precision_recall_zero_denominators_are_zero():
    assert precision_recall([], []) == (0.0, 0.0)
    assert precision_recall([False, False], [True, False]) == (0.0, 0.0)  # nothing predicted positive
    assert precision_recall([True, False], [False, False]) == (0.0, 0.0)  # no actual positive
    assert precision_recall([False], [False]) == (0.0, 0.0)


def test_precision_recall_length_mismatch():
    with pytest.raises(ValueError):
        precision_recall([True], [True, False])


def test_f1_score():
    assert f1_score(0.5, 1.0) == pytest.approx(2 / 3)
    assert f1_score(1.0, 1.0) == 1.0
    assert f1_score(0.0, 0.0) == 0.0
