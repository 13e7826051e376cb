"""A question about a name, model number or year the documents never mention is never `found`, and says so.

The bi-encoder finds "the hotel limit in Barcelona" and the sentence that gives Lisbon's, Porto's and Madrid's
alike; so does the verdict's model. The rule (rag.query.answer_types.names_absent, rag.query.verdict
NAME_ABSENT_CONFIDENCE) reads the documents of the top passages: a question naming what none of them mentions is at
most `uncertain`, with a warning naming it, on every transport. A real index of two small documents, the real model.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.wording import QUOTED_DATA
from rag.query.verdict import NAME_ABSENT_CONFIDENCE
from rag.service import Service
from tests.api.test_verdict_transports import mcp

POLICY = """# Travel Policy 2025

## 1. Booking travel

All trips are booked through the travel agency at least 14 days before departure. Trains are preferred over
flights for any journey under five hours. Economy class is the rule for flights shorter than six hours.

## 2. Hotels

The nightly hotel limit is 140 EUR in Lisbon and Porto and 170 EUR in Madrid. Hotels above the limit need
approval from the managing director before booking.

## 3. Daily allowance

The daily meal allowance is 45 EUR for a full travel day and 20 EUR for a half day. Alcohol is never reimbursed.
"""
REPORT = """# Annual report 2024

The co-op repaired 3,870 bicycles in 2024. The Trailhawk 500X sold best of the year's models, at 729 GBP.
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoders) -> Service:
    root = tmp_path_factory.mktemp("names")
    (root / "seeds").mkdir()
    (root / "seeds" / "travel-policy.md").write_text(POLICY)
    (root / "seeds" / "annual-report.md").write_text(REPORT)
    from rag.config import Settings

    return Service.open(Settings(seeds_dir=root / "seeds", index_dir=root / "index"), encoders)


def ask(service, question: str):
    return service.query(service.parse(question, top_k=3))


def test_a_name_the_documents_have_is_found_without_a_warning(service):
    for question in ("What is the nightly hotel limit in Madrid?", "How many bicycles did the co-op repair in 2024?"):
        result = ask(service, question)
        assert result.verdict == "found" and result.warnings == (), (question, result.verdict, result.warnings)


def test_a_city_the_policy_does_not_list_is_not_found_as_the_nearest_one(service, monkeypatch):
    question = "What is the nightly hotel limit in Barcelona?"
    result = ask(service, question)
    assert (result.verdict, result.confidence) == ("uncertain", NAME_ABSENT_CONFIDENCE)
    assert result.hits[0].passage.section == "2. Hotels"  # the passages are still returned, for a reader to see
    monkeypatch.setattr(type(service.snapshot.retriever), "names_unread", lambda self, question, top: ([], []))
    assert ask(service, question).verdict == "found"  # what the model alone says: the rule is what refuses it


@pytest.mark.parametrize(("question", "absent"), [
    ("What is the nightly hotel limit in Barcelona?", "'Barcelona'"),
    ("How many bicycles did the co-op repair in 2021?", "'2021'"),
    ("How much does the Trailhawk 700 cost?", "'Trailhawk 700'"),
])
def test_what_no_top_document_mentions_is_named_in_a_warning(service, question, absent):
    result = ask(service, question)
    assert result.verdict != "found" and result.confidence <= NAME_ABSENT_CONFIDENCE
    assert [w for w in result.warnings if "never mention" in w] == [
        f"the documents of the best passages never mention {absent}: they may be about something else"]


def test_the_warning_reaches_http_and_the_chat_model_s_note(service):
    question = "What is the nightly hotel limit in Barcelona?"
    with TestClient(create_app(service=service), base_url="http://127.0.0.1") as client:
        body = client.post("/query", json={"question": question}).json()
        assert body["verdict"] == "uncertain" and any("'Barcelona'" in w for w in body["warnings"])
        note = mcp(client, "ask", {"question": question})["note"]
        assert "never mention 'Barcelona'" in note and note.endswith(QUOTED_DATA)  # the quoted-data warning stays last
