"""A question longer than the model reads (rag.query.retrieval.Retriever._embed): read as what it asks.

A pasted context and then the question is the usual shape of a long question; the model reads 256 word pieces
from the start, so a question at the end was never read. Now the sentences that ask (end with "?") are what every
stage reads, the last ones first as far as the window goes, and the warning says so; a long text that asks
nothing is read from its start, as before. Real index of the bundled article, real model.
"""

from __future__ import annotations

from rag.query.retrieval import asked_sentences

CONTEXT = ("I have been reading about the history of the workers' movement for a course, and my notes from the "
           "lectures and the books on the reading list have grown long and somewhat confusing to me. ") * 8
QUESTION = "Why did Trotsky think the bourgeoisie could not lead?"


def test_the_sentences_that_ask_are_kept_the_last_first_within_the_budget():
    assert asked_sentences("Context here. What is A? More text. And B?", 100) == "What is A? And B?"
    assert asked_sentences("Context. What is A? And B?", 8) == "And B?"  # the last question first
    assert asked_sentences("Nothing is asked here. At all.", 100) == ""
    # sentences as the corpus's rules cut them: an abbreviation or a version is no sentence end
    assert asked_sentences("Some context. What did Dr. Berg say about version 3.9.0?", 100) == "What did Dr. Berg say about version 3.9.0?"


def test_a_question_after_a_long_context_is_read_as_what_it_asks(service):
    alone = service.query(service.parse(QUESTION))
    long = service.query(service.parse(CONTEXT + QUESTION))
    assert len(CONTEXT + QUESTION) < 2000 and long.question == CONTEXT + QUESTION  # the answer says what was sent
    assert long.hits[0].passage.id == alone.hits[0].passage.id and long.verdict == alone.verdict == "found"
    assert long.warnings == (f"the question is longer than the model reads; it was read as what it asks: '{QUESTION}'",)


def test_a_long_text_that_asks_nothing_is_read_from_its_start(service):
    result = service.query(service.parse(CONTEXT + "Tell me about the bourgeoisie and the revolution."))
    assert result.warnings == ("the question is longer than the model reads; only its start was used",)
