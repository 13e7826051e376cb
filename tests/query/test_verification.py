"""Which sentence windows the verifier reads (rag.query.verification.windows): pure, hand-worked cases."""

from rag.query.highlight import Candidate
from rag.query.verification import windows


def candidate(text, start, cosine, coverage=0.0):
    return Candidate(text, start, start + len(text), cosine, coverage)


def test_the_best_windows_across_passages_come_first():
    first = [candidate("Paris is large.", 0, 0.2), candidate("The Eiffel Tower was finished in 1889.", 16, 0.7, 0.5)]
    second = [candidate("Gustave Eiffel built it.", 100, 0.6, 0.2)]
    chosen = windows([(4, first), (9, second)], 2)
    assert [(w.passage_index, w.sentence) for w in chosen] == [(4, 1), (9, 0)]
    assert chosen[0].text == "The Eiffel Tower was finished in 1889." and chosen[0].read_start == chosen[0].start == 16
    assert chosen[0].prior > chosen[1].prior


def test_a_sentence_pointing_back_is_read_with_the_one_before():
    passage = [candidate("The tower was finished in 1889 for the fair.", 0, 0.8, 0.4),
               candidate("It was the tallest structure of its day.", 46, 0.3, 0.1)]
    by_sentence = {w.sentence: w for w in windows([(0, passage)], 5)}
    assert by_sentence[1].text == "The tower was finished in 1889 for the fair. It was the tallest structure of its day."
    assert by_sentence[1].read_start == 0 and by_sentence[1].start == 46
    assert by_sentence[0].text == passage[0].text


def test_no_passages_no_windows_and_count_bounds_the_windows():
    assert windows([], 3) == []
    many = [candidate(f"Sentence number {n} about towers.", n * 40, 0.1 * n) for n in range(6)]
    assert len(windows([(0, many)], 3)) == 3
