"""Each verdict (found / uncertain / not_found) reaches every transport: HTTP, MCP (ask and search) and the CLI,
with the confidence, in words, and with a note that tells a chat model what to do with the passages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.wording import QUOTED_DATA
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
