"""Filters: checked against the snapshot's documents, applied before ranking (the best passages *within*
the filter), and the same on HTTP (POST and GET), MCP and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from rag.errors import InvalidInput
from rag.query.filters import Filters, date_span
from rag.service import Service
from tests.reliability_support import settings_for, write_tiny_seeds

LOCAL = "http://127.0.0.1"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOLSTOY = (
    "War and Peace in the Countryside\n\n"
    "Leo Tolstoy wrote about the Russian peasants and their land. The peasants owned little and worked the estates "
    "of the nobility, and the emancipation of 1861 left most of them in debt for the plots they farmed.\n\n"
    "The Russian bourgeoisie, in Tolstoy's telling, hardly appears: merchants buy forests and sell grain, and the "
    "landowners despise them while borrowing their money.\n"
)


def test_date_spans_cover_years_months_and_days():
    assert date_span("2018") == (dt.date(2018, 1, 1), dt.date(2018, 12, 31))
    assert date_span("2018-02") == (dt.date(2018, 2, 1), dt.date(2018, 2, 28))
    assert date_span("2018-01-11") == (dt.date(2018, 1, 11), dt.date(2018, 1, 11))
    assert date_span(None) is None and date_span("soon") is None


def test_a_markdown_section_path_is_matched_whole_or_by_its_last_titles():
    from rag.query.filters import passage_mask

    passages = [SimpleNamespace(document="log", section=s) for s in ("[2.3.0] › Fixed", "[2.2.1] › Fixed", "[2.2.1] › Added", None)]
    mask = lambda *sections: passage_mask(Filters.of(sections=list(sections)), passages, {"log": doc("log")}).tolist()  # noqa: E731
    assert mask("Fixed") == [True, True, False, False]
    assert mask("[2.2.1] › fixed") == [False, True, False, False]
    assert mask("[2.2.1]") == [False, False, False, False]  # a path's first title alone is not its section
    assert mask("Opening") == [False, False, False, True]


def doc(id, author=None, published=None, authors=()):
    return SimpleNamespace(id=id, author=author, authors=authors, published=published)


def test_documents_pass_or_fail_each_condition():
    docs = {"a": doc("a", "Ann, Bob", "2018", ("Ann", "Bob")), "b": doc("b", "Cy", "2020-05-01"), "c": doc("c")}
    by_author = Filters.parse({"authors": ["bob"]})
    assert [d for d in docs if by_author.allows_document(docs[d])] == ["a"]
    after = Filters.parse({"published_after": "2018-12-31"})
    assert [d for d in docs if after.allows_document(docs[d])] == ["a", "b"]  # 2018 reaches Dec 31; undated c never passes
    before = Filters.parse({"published_before": "2019-01-01"})
    assert [d for d in docs if before.allows_document(docs[d])] == ["a"]
    assert not Filters.parse({}) and not Filters.parse(None)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"documents": ["nope"]}, "filters.documents: no document with id 'nope'"),
        ({"published_after": "2018-13-01"}, "filters.published_after must be a date YYYY-MM-DD; got '2018-13-01'"),
        ({"published_before": "last year"}, "filters.published_before must be a date YYYY-MM-DD"),
        ({"published_after": "2020-01-01", "published_before": "2019-01-01"}, "is later than published_before"),
        ({"colour": ["red"]}, "unknown field(s) colour"),
        ({"authors": [3]}, "filters.authors must be a list of non-empty strings"),
    ],
)
def test_bad_filters_say_what_is_wrong(raw, message):
    with pytest.raises(InvalidInput) as error:
        Filters.parse(raw).check({"a": doc("a")})
    assert message in str(error.value)


@pytest.fixture(scope="module")
def two_documents(tmp_path_factory, encoders) -> Service:
    root = tmp_path_factory.mktemp("filters")
    seeds = write_tiny_seeds(root / "seeds", extra_doc=TOLSTOY)
    (seeds / "notes.meta.json").write_text(json.dumps({"title": "Notes on Tolstoy", "author": "A. Reader", "published": "2021-03-02"}))
    return Service.open(settings_for(seeds, root / "index"), encoders)


QUESTION = "Why could the Russian bourgeoisie not lead the revolution?"


def test_a_filter_that_excludes_every_top_passage_returns_the_best_within_it(two_documents):
    service = two_documents
    everything = service.query(service.parse(QUESTION, 50, "lexical"))
    assert everything.hits[0].passage.document == "excerpt"
    notes_order = [h.passage.id for h in everything.hits if h.passage.document == "notes"]
    only_notes = service.query(service.parse(QUESTION, 3, "lexical", {"documents": ["notes"]}))
    assert [h.passage.id for h in only_notes.hits] == notes_order[:3]  # BM25's order within the filter
    for mode in ("hybrid", "dense"):
        hits = service.query(service.parse(QUESTION, 5, mode, {"documents": ["notes"]})).hits
        assert hits and {h.passage.document for h in hits} == {"notes"}
        assert len(hits) == min(5, sum(p.document == "notes" for p in service.snapshot.passages))


def test_author_date_and_section_filters(two_documents):
    service = two_documents
    assert {h.passage.document for h in service.query(service.parse(QUESTION, 5, None, {"authors": ["a. reader"]})).hits} == {"notes"}
    assert {h.passage.document for h in service.query(service.parse(QUESTION, 5, None, {"published_before": "2019-01-01"})).hits} == {"excerpt"}
    sections = {p.section for p in service.snapshot.passages if p.document == "excerpt" and p.section}
    section = sorted(sections)[0]
    hits = service.query(service.parse(QUESTION, 5, None, {"sections": [section]})).hits
    assert hits and {h.passage.section for h in hits} == {section}
    assert service.query(service.parse(QUESTION, 5, None, {"published_after": "2030-01-01"})).hits == []


def test_filters_over_http_mcp_and_cli(two_documents, encoders, monkeypatch, capsys):
    service = two_documents
    with TestClient(create_app(service=service), base_url=LOCAL) as client:
        body = client.post("/query", json={"question": QUESTION, "filters": {"documents": ["notes"]}}).json()
        assert {p["citation"]["document"] for p in body["passages"]} == {"notes"}
        got = client.get("/query", params={"q": QUESTION, "document": "notes", "published_after": "2021-01-01"}).json()
        assert {p["citation"]["document"] for p in got["passages"]} == {"notes"}
        bad = client.post("/query", json={"question": QUESTION, "filters": {"documents": ["nope"], "published_after": "2018-01-01"}})
        assert bad.status_code == 422 and "no document with id 'nope'" in bad.json()["error"]
        no_section = client.post("/query", json={"question": QUESTION, "filters": {"sections": ["No Such Section"]}})
        assert no_section.status_code == 422 and "no section titled 'No Such Section'" in no_section.json()["error"]
        bad_body_date = client.post("/query", json={"question": QUESTION, "filters": {"published_after": "2018-13-01"}})
        assert bad_body_date.status_code == 422 and "filters.published_after" in bad_body_date.json()["error"]
        bad_date = client.get("/query", params={"q": QUESTION, "published_before": "01/02/2018"})
        assert bad_date.status_code == 422 and "published_before must be a date YYYY-MM-DD" in bad_date.json()["error"]
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "ask", "arguments": {"question": QUESTION, "filters": {"documents": ["notes"]}}}}
        reply = client.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
        assert {p["citation"]["document"] for p in reply["structuredContent"]["passages"]} == {"notes"}
    monkeypatch.setenv("RAG_SEEDS_DIR", str(service.settings.seeds_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(service.settings.index_dir))
    assert main(["ask", QUESTION, "--document", "notes", "--json"], encoders) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {p["citation"]["document"] for p in printed["passages"]} == {"notes"}
