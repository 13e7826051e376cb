"""The verifier's synthetic unanswerable questions (eval/synthetic_unanswerables.py), on hand-made questions."""

import random

from eval.synthetic_unanswerables import negate, swap, turn_round, unanswerable_version

ARTICLE = ("The treaty was signed in Paris in 1763 by Britain and France. Later that year, troops under Amherst "
           "marched north, while the colonists of Virginia and the traders of Montreal waited.")
EVIDENCE = "The treaty was signed in Paris in 1763 by Britain and France."


def test_a_name_the_evidence_holds_is_swapped_for_a_name_of_the_article_it_does_not():
    edited = swap("Who signed the treaty in Paris?", EVIDENCE, ARTICLE, random.Random(0))
    assert edited is not None and "Paris" not in edited
    name = edited.removeprefix("Who signed the treaty in ").removesuffix("?")
    assert name in {"Amherst", "Virginia", "Montreal"}  # mid-sentence names only: never "Later" or "The"


def test_a_number_is_swapped_for_one_of_the_same_length_and_none_when_the_article_has_no_other():
    article = ARTICLE + " In 1759 the city fell; 12 ships were lost."
    assert swap("What happened in 1763?", EVIDENCE, article, random.Random(0)) == "What happened in 1759?"
    assert swap("What happened in 1763?", EVIDENCE, ARTICLE, random.Random(0)) is None


def test_words_the_evidence_does_not_hold_and_the_first_word_are_never_swapped():
    assert swap("Where did Napoleon sign it?", EVIDENCE, ARTICLE, random.Random(0)) is None
    assert swap("Britain signed what?", EVIDENCE, ARTICLE, random.Random(0)) is None


def test_opposites_and_negations():
    assert turn_round("Who won the first battle?", random.Random(0)) in {"Who lost the first battle?", "Who won the last battle?"}
    assert turn_round("Who signed it?", random.Random(0)) is None
    assert negate("When did Britain sign it?") == "When didn't Britain sign it?"
    assert negate("What can Britain sign?") == "What can't Britain sign?"
    assert negate("Why did Britain not sign it?") is None  # already negated


def test_one_edit_is_drawn_among_the_rules_that_apply_seeded():
    question = "When did Britain sign the treaty in Paris?"
    made = {unanswerable_version(question, EVIDENCE, ARTICLE, random.Random(seed)) for seed in range(20)}
    assert "When didn't Britain sign the treaty in Paris?" in made
    assert any(q.endswith(("in Amherst?", "in Virginia?", "in Montreal?")) for q in made)
    assert unanswerable_version(question, EVIDENCE, ARTICLE, random.Random(3)) == unanswerable_version(question, EVIDENCE, ARTICLE, random.Random(3))
    assert unanswerable_version("Paris?", EVIDENCE, ARTICLE, random.Random(0)) is None


def test_without_negations_only_swaps_and_opposites_are_drawn():
    question = "When did Britain sign the treaty in Paris?"
    made = {unanswerable_version(question, EVIDENCE, ARTICLE, random.Random(seed), negations=False) for seed in range(20)}
    assert made and all("n't" not in q for q in made)
    assert unanswerable_version("When did they sign it?", EVIDENCE, ARTICLE, random.Random(0), negations=False) is None
