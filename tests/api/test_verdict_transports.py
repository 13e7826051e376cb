"""Each verdict (found / uncertain / not_found) reaches every transport: HTTP, MCP (ask and search) and the CLI,
with the confidence, in words, and with a note that tells a chat model what to do with the passages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.wording import QUOTED_DATA
from rag.service import Service, make_snapshot
from tests.query.test_verdict import UNCERTAIN

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CASES = {
    "found": "Why did Trotsky think the bourgeoisie could not lead?",
    "uncertain": UNCERTAIN,
    "not_found": "What is the best recipe for banana bread?",
}
NOTE_SAYS = {"found": "answer from them and cite", "uncertain": "may not cover it", "not_found": "do not answer it from these passages"}


@pytest.fixture(scope="module")
def local(service):
    with TestClient(create_app(service=service), base_url="http://127.0.0.1") as client:
        yield client


def mcp(client, tool: str, arguments: dict) -> dict:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    result = client.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
    assert not result.get("isError"), result
    return result["structuredContent"]


@pytest.mark.parametrize("verdict", list(CASES))
def test_each_verdict_over_http_and_mcp(service, local, verdict):
    question = CASES[verdict]
    assert service.query(service.parse(question)).verdict == verdict  # the case still is what it stands for
    body = local.post("/query", json={"question": question}).json()
    assert body["verdict"] == verdict and body["answerable"] == (verdict != "not_found")
    assert 0 <= body["confidence"] <= 1 and f"(confidence {body['confidence']:.2f})" in body["verdict_text"]
    assert body["passages"] and all(p["highlights"] and p["highlight"] in p["highlights"] for p in body["passages"])
    ask = mcp(local, "ask", {"question": question})
    assert ask["verdict"] == verdict and NOTE_SAYS[verdict] in ask["note"] and ask["note"].endswith(QUOTED_DATA)
    search = mcp(local, "search", {"query": question})
    assert search["verdict"] == verdict and search["confidence"] == pytest.approx(body["confidence"])
    assert NOTE_SAYS[verdict] in search["note"]
    fetched = mcp(local, "fetch", {"id": body["passages"][0]["id"]})
    assert fetched["note"].endswith(QUOTED_DATA) and "block header" in fetched["note"]


def test_the_cli_says_the_verdict_in_words(settings, service, encoders, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    for verdict, words in (("found", "found: the passages likely answer this"), ("not_found", "not found: the documents do not seem")):
        assert main(["ask", CASES[verdict], "-k", "1"], encoders) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1].startswith(words) and "(confidence " in out[1]


def test_a_question_can_ask_for_the_verifier_on_every_transport(service, local, settings, encoders, monkeypatch, capsys):
    question = CASES["found"]
    plain = local.post("/query", json={"question": question}).json()
    read = local.post("/query", json={"question": question, "verify": True}).json()
    assert plain["verified"] is False and read["verified"] is True and read["warnings"] == []
    assert read["confidence"] != plain["confidence"]  # the verifier's logit is in the verdict
    assert [p["id"] for p in read["passages"]] == [p["id"] for p in plain["passages"]]  # the ranking is not its business
    got = local.get("/query", params={"q": question, "verify": "true"}).json()
    assert got["verified"] is True and got["confidence"] == read["confidence"]
    batch = local.post("/query/batch", json={"questions": [question, CASES["not_found"]], "verify": True}).json()
    assert [r["verified"] for r in batch["results"]] == [True, True] and batch["results"][0]["confidence"] == read["confidence"]
    ask = mcp(local, "ask", {"question": question, "verify": True})
    assert ask["verified"] is True and ask["confidence"] == pytest.approx(read["confidence"])
    assert mcp(local, "ask", {"question": question})["verified"] is False
    ready = local.get("/ready").json()["verifier"]
    assert ready["used"] is False and ready["on_request"] is True and ready["sha256"]
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    assert main(["ask", question, "-k", "1", "--verify"], encoders) == 0
    assert "(verified)" in capsys.readouterr().out.splitlines()[1]


def test_switched_on_every_answer_is_verified_unless_the_question_says_no(service):
    settings = service.settings.model_copy(update={"verifier": True})
    snap = service.snapshot
    on = Service(settings, service.model, service.encoders,
                 make_snapshot(settings, list(snap.documents.values()), snap.index, snap.retriever.encoder, snap.skipped))
    question = CASES["found"]
    with TestClient(create_app(settings=settings, service=on), base_url="http://127.0.0.1") as client:
        assert client.get("/ready").json()["verifier"]["used"] is True
        assert client.post("/query", json={"question": question}).json()["verified"] is True
        said_no = client.post("/query", json={"question": question, "verify": False}).json()
        assert said_no["verified"] is False and said_no["warnings"] == []
        assert client.get("/query", params={"q": question, "verify": "off"}).json()["verified"] is False
        assert client.get("/query", params={"q": question, "verify": ""}).json()["verified"] is True  # blank: the setting
        assert mcp(client, "ask", {"question": question})["verified"] is True
        assert '"verifier": {"default": true, "on_request": true}' in client.get("/").text


def test_over_get_verify_is_spelled_as_a_form_would_and_anything_else_is_named(local):
    question = CASES["found"]
    for value, verified in (("1", True), ("yes", True), ("on", True), ("false", False), ("off", False), ("", False)):
        assert local.get("/query", params={"q": question, "verify": value}).json()["verified"] is verified, value
    for odd in ("maybe", "TRUE", " yes"):  # the spellings the schema lists, as it lists them
        refused = local.get("/query", params={"q": question, "verify": odd})
        assert refused.status_code == 422 and "verify must be true or false" in refused.json()["error"], odd


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_verify_must_be_true_or_false(local, value):
    body = {"question": CASES["found"], "verify": value}
    response = local.post("/query", json=body)
    if value is None:  # null: the service's setting
        assert response.status_code == 200 and response.json()["verified"] is False
        return
    assert response.status_code == 422 and "verify" in response.text
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": CASES["found"], "verify": value}}}
    result = local.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
    assert result["isError"] is True and "verify must be true or false" in result["content"][0]["text"]
