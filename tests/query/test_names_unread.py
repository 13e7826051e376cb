"""A name or year the best passages never mention caps the verdict, even where another part of their documents does.

"What was the minimum investment in the 2014 share offer?" over the co-operative's folder (eval/collections/coop):
the passages read are the 2025 share offer's and one of the member handbook's, whose opening says the society was
"registered ... in 2014". The names-absent rule read whole documents, so "2014" counted as held and the question
was `found` (0.86) with the 2025 offer's £250. Now what the passages read (their text, heading and their
documents' metadata) never mention caps the verdict at `uncertain`, with a warning that says so. A real index of
the collection, the real model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.query.verdict import NAME_ABSENT_CONFIDENCE
from rag.service import Service

COOP = Path(__file__).resolve().parents[2] / "eval" / "collections" / "coop"


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoders) -> Service:
    from rag.config import Settings

    return Service.open(Settings(seeds_dir=COOP, index_dir=tmp_path_factory.mktemp("coop") / "index"), encoders)


def passages_of(service, document: str, *sections: str | None) -> list[int]:
    passages = service.snapshot.retriever.passages
    return [i for i, p in enumerate(passages) if p.document == document and p.section in sections]


def test_a_year_only_another_part_of_the_document_mentions_is_unread(service):
    retriever = service.snapshot.retriever
    question = "What was the minimum investment in the 2014 share offer?"
    offer = passages_of(service, "share-offer-2025", "How much you can invest", "Key dates")
    shares = passages_of(service, "member-handbook", "Shares › Buying shares")
    opening = passages_of(service, "member-handbook", None)
    assert len(offer) == 2 and len(shares) == 1 and len(opening) == 1
    assert retriever.names_unread(question, offer + shares) == ([], ["2014"])  # the handbook says 2014, elsewhere
    assert retriever.names_unread(question, offer) == (["2014"], [])  # no document of these says it at all
    assert retriever.names_unread(question, offer + opening) == ([], [])  # a passage read says it


def test_a_title_or_heading_counts_as_what_its_passages_mention(service):
    retriever = service.snapshot.retriever
    shares = passages_of(service, "member-handbook", "Shares › Getting your money back")
    assert retriever.names_unread("What does the Brackenford Community Energy Member Handbook say about withdrawals?", shares) == ([], [])
    church_farm = passages_of(service, "member-handbook", "Solar sites › Array B - Church Farm barns")
    assert "Church Farm" not in service.snapshot.retriever.passages[church_farm[0]].text  # only its heading names it
    assert retriever.names_unread("When were the Church Farm panels fitted?", church_farm) == ([], [])
    assert retriever.names_unread("When were the Church Farm panels fitted?", shares) == ([], ["Church Farm"])


def test_the_question_is_capped_and_told_why(service):
    result = service.query(service.parse("What was the minimum investment in the 2014 share offer?", top_k=3))
    assert result.confidence <= NAME_ABSENT_CONFIDENCE and result.verdict != "found"
    assert any("'2014'" in w and "other parts of their documents" in w for w in result.warnings), result.warnings


def test_an_answerable_question_about_the_same_passages_is_not_capped(service):
    result = service.query(service.parse("What is the most one person can invest in the battery share offer?", top_k=3))
    assert result.verdict == "found" and not result.warnings, (result.confidence, result.warnings)
