"""A fact whose subject is only in its heading is answered: the verdict reads a sentence under its heading.

In incident reports the subject is the heading ("INC-2291: checkout outage") and the
sentences only say things about it ("The cause was an expired TLS certificate ..."); in minutes the heading is the
meeting's date, in an FAQ the question. Before, the verdict masked
the question with the closest sentence's words alone, so "INC-2291" stayed and "What caused INC-2291?" was judged
by how like "What INC-2291" the sentences were: `not_found` at 0.05 with the right sentence highlighted
(rag.query.verdict's docstring, docs/quality.md). A real index of three of eval/collections/sections' documents,
the real model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.query.verdict import kept_spans
from rag.service import Service

SECTIONS = Path(__file__).resolve().parents[2] / "eval" / "collections" / "sections"


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoders) -> Service:
    root = tmp_path_factory.mktemp("headings")
    (root / "seeds").mkdir()
    for name in ("incidents.md", "minutes.md", "faq.md"):
        shutil.copy(SECTIONS / name, root / "seeds" / name)
    from rag.config import Settings

    return Service.open(Settings(seeds_dir=root / "seeds", index_dir=root / "index"), encoders)


def ask(service, question: str):
    return service.query(service.parse(question, top_k=3))


@pytest.mark.parametrize("question, section, cause", [
    ("What caused INC-2291?", "INC-2291: checkout outage", "expired TLS certificate"),
    ("What budget did the board approve in January 2025?", "14 January 2025", "2.4 million euros"),
    ("Until when can I change my delivery address?", "How do I change my delivery address?", "handed to the courier"),
])
def test_a_fact_under_the_heading_that_names_its_subject_is_answered(service, question, section, cause):
    result = ask(service, question)
    assert result.hits[0].passage.section == section
    assert cause in result.hits[0].highlight.text
    assert result.answerable, (result.verdict, result.confidence, result.features)


def test_the_heading_does_not_answer_what_its_section_never_says(service):
    # the heading "INC-2291: checkout outage" holds the incident's name, not who was on call
    result = ask(service, "Who was the on-call engineer during INC-2291?")
    assert result.verdict == "not_found", (result.confidence, result.features)


def test_a_heading_s_words_count_as_held_by_each_sentence_under_it(service):
    judge = service.snapshot.retriever.judge
    sentence = judge.terms_of("The cause was an expired TLS certificate on the payment gateway.")
    question = "What caused INC-2291?"
    assert [question[a:b] for a, b in kept_spans(question, sentence, judge.terms_of)] == ["What", "INC-2291"]
    assert kept_spans(question, sentence | judge.heading_terms("INC-2291: checkout outage"), judge.terms_of) is None
    assert judge.heading_terms(None) == frozenset()


def test_a_month_is_no_modal_so_the_wrong_meeting_is_not_found(service):
    # the budget was approved on 14 January 2025; "May" names the 6 May meeting, not a modal verb
    result = ask(service, "What budget did the board approve in May 2025?")
    assert not result.answerable, (result.confidence, result.features)
