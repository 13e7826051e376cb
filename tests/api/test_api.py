"""The HTTP contract of issue 2, through the ASGI app with the real model and index."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from api.cli import main
from rag.config import PROJECT_ROOT
from tests.conftest import ARTICLE_ID

DEMO = "Why did Trotsky think the bourgeoisie could not lead?"


def test_query_returns_checkable_citations(client):
    response = client.post("/query", json={"question": DEMO, "top_k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["question"] == DEMO and body["mode"] == "hybrid" and body["answerable"] is True
    assert body["index"]["model"] == "sentence-transformers/all-MiniLM-L6-v2@1110a243" and body["index"]["id"]
    assert body["took_ms"] > 0 and len(body["passages"]) == 5
    text = client.get(f"/documents/{ARTICLE_ID}").json()["text"]
    scores = [p["score"] for p in body["passages"]]
    assert scores == sorted(scores, reverse=True)
    for passage in body["passages"]:
        c, h = passage["citation"], passage["highlight"]
        assert c["document"] == ARTICLE_ID and c["author"] == "Juan Cruz Ferre" and c["published"] == "2018-01-11"
        assert text[c["start"] : c["end"]] == passage["text"]
        assert c["start"] <= h["start"] < h["end"] <= c["end"] and text[h["start"] : h["end"]] == h["text"]
        assert c["paragraph"] == c["paragraphs"][0]


def test_the_readme_question_finds_the_landowners_paragraph_in_the_top_three(client):
    passages = client.post("/query", json={"question": DEMO, "top_k": 3}).json()["passages"]
    assert any(p["text"].startswith("Why was the Russian bourgeoisie unable") and "strong economic ties with the landowners" in p["text"] for p in passages)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_get_query_equals_post_query_in_every_mode(client, mode):
    question = "Who revised the theory of permanent revolution in 1984?"
    got = client.get("/query", params={"q": question, "top_k": 3, "mode": mode}).json()
    posted = client.post("/query", json={"question": question, "top_k": 3, "mode": mode}).json()
    assert got["mode"] == mode
    assert [p["id"] for p in got["passages"]] == [p["id"] for p in posted["passages"]]
    assert "Nahuel Moreno" in got["passages"][0]["text"]


def test_unanswerable_question_is_flagged(client):
    body = client.post("/query", json={"question": "How do I configure nginx as a reverse proxy?"}).json()
    assert body["answerable"] is False and body["passages"], "the nearest passages are still returned"


def test_documents_passages_and_neighbours(client):
    listing = client.get("/documents").json()
    assert [d["id"] for d in listing] == [ARTICLE_ID] and listing[0]["title"] == "Permanent Revolution in 1917 Russia and Today"
    document = client.get(f"/documents/{ARTICLE_ID}").json()
    assert [s["title"] for s in document["sections"]][1:3] == ["Dogmatism vs. dialectical thought: Stagism vs. permanent revolution", "A Closer Analysis"]
    first = client.post("/query", json={"question": DEMO, "top_k": 1}).json()["passages"][0]
    detail = client.get(f"/passages/{first['id']}").json()
    assert detail["text"] == first["text"] and detail["citation"] == first["citation"]
    before = client.get(f"/passages/{detail['previous']}").json()
    assert before["next"] == first["id"] and before["citation"]["end"] < first["citation"]["start"]


def test_unknown_ids_are_404_with_a_message(client):
    for path, unknown in (("/documents/nope", "'nope'"), ("/passages/0000000000000000", "'0000000000000000'")):
        response = client.get(path)
        assert response.status_code == 404 and unknown in response.json()["error"]


@pytest.mark.parametrize(
    "body, words",
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "empty"),
        ({"question": "x" * 2001}, "2000"),
        ({"question": "ok", "top_k": 0}, "top_k"),
        ({"question": "ok", "top_k": 51}, "top_k"),
        ({"question": "ok", "mode": "magic"}, "mode"),
        ({"question": 42}, "string"),
        ({"question": "ok", "top_k": "five"}, "top_k"),
    ],
)
def test_bad_input_is_a_clear_422(client, body, words):
    response = client.post("/query", json=body)
    assert response.status_code == 422 and words in response.json()["error"]


def test_health_ready_and_openapi(client, service):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["passages"] == len(service.snapshot.passages) and ready["index_id"]
    schema = client.get("/openapi.json").json()
    assert {"/query", "/documents", "/documents/{document_id}", "/passages/{passage_id}", "/health", "/ready"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_cli_ask_prints_citations(settings, service, encoders, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("RAG_AUTO_BUILD", "false")
    assert main(["ask", DEMO, "-k", "2"], encoders) == 0
    out = capsys.readouterr().out
    assert "Dogmatism vs. dialectical thought" in out and "¶9" in out and "➜" in out
    marked = out.split("➜", 1)[1].split("\n\n", 1)[0].split("\n")  # the highlight: wrapped and indented like the passage
    assert all(len(line) <= 96 for line in marked) and all(line.startswith("      ") for line in marked[1:])
    assert main(["ask", DEMO, "-k", "1", "--json"], encoders) == 0
    assert json.loads(capsys.readouterr().out)["passages"][0]["citation"]["paragraph"] == 9


def test_cli_reports_a_refused_index_in_one_line(tmp_path, encoders, monkeypatch, capsys):
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("RAG_AUTO_BUILD", "false")
    assert main(["ask", DEMO], encoders) == 2
    err = capsys.readouterr().err
    assert "refusing to serve" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("flags, reader, first", [(["--json"], "head -c1", "{"), ([], "head -n1", DEMO)])
def test_ask_into_a_closed_pipe_ends_quietly_in_a_bare_environment(service, flags, reader, first):
    """`rag ask ... | head` under `env -i` (no PYTHONUNBUFFERED: stdout is block-buffered, so the reader is gone
    before the flush at interpreter exit): no "Exception ignored ... BrokenPipeError", no traceback, exit 0."""
    argv = ["ask", DEMO, "-k", "20", *flags]  # more than one buffer of output: some is left for the exit flush
    code = f"import os, sys; os.environ['RAG_INDEX_DIR'] = {str(service.settings.index_dir)!r}; from api.cli import main; sys.exit(main({argv!r}))"
    bare = {"PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ.get("HOME", "/")}
    command = f"env -i {' '.join(f'{k}={shlex.quote(v)}' for k, v in bare.items())} {shlex.quote(sys.executable)} -c {shlex.quote(code)} | {reader}"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    assert out.stdout.strip() == first
    assert "BrokenPipe" not in out.stderr and "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0
