"""The layering and the first-run contract: the library stands alone, settings take effect everywhere,
the CLI behaves (tested in-process through `api.cli.main`), and the rough edges a new user met stay fixed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.server import PortInUse, bind
from rag.index.build import IndexConfig, build
from rag.config import PROJECT_ROOT
from rag.corpus.documents import load_corpus
from rag.errors import IndexStale
from rag.service import Service
from rag.index.store import load_index
from tests.reliability_support import settings_for, write_tiny_seeds

LOCAL = "http://127.0.0.1"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_the_library_imports_nothing_from_the_web_layer():
    """Import every module of rag/, packages included, in a fresh interpreter: no module of api/ or eval/ (nor
    FastAPI) may be loaded. (tests/test_layering.py reads every import statement, function-level ones too.)"""
    code = (
        "import importlib, pkgutil, sys, rag\n"
        "names = [m.name for m in pkgutil.walk_packages(rag.__path__, 'rag.')]\n"
        "assert len(names) > 30, names\n"
        "for name in names: importlib.import_module(name)\n"
        "bad = sorted(n for n in sys.modules if n in ('api', 'eval') or n.startswith(('api.', 'eval.', 'fastapi', 'uvicorn', 'starlette')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("rag ")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return write_tiny_seeds(root / "seeds"), root


def test_rag_index_builds_then_says_up_to_date(tiny, monkeypatch, capsys, encoders):
    seeds, root = tiny
    monkeypatch.setenv("RAG_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("RAG_INDEX_DIR", str(root / "index-cli"))
    report = build(settings_for(seeds, root / "index-cli"), encoders)  # the first build, with the session's model
    assert report.built
    assert main(["index"]) == 0
    out = capsys.readouterr()
    assert "up to date" in out.out and report.manifest["id"] in out.out
    assert "no index" not in out.err


def test_every_index_setting_makes_the_index_stale(tiny, encoders):
    seeds, root = tiny
    settings = settings_for(seeds, root / "index-stale")
    build(settings, encoders)
    documents = list(load_corpus(seeds).documents)
    for change in ({"index_type": "hnsw"}, {"exact_search_max": 10}, {"max_passage_tokens": 120}, {"min_passage_chars": 100},
                   {"build_precision": "bf16"}):
        changed = settings.model_copy(update=change)
        with pytest.raises(IndexStale):
            load_index(settings.index_dir, IndexConfig.of(changed, documents, encoders.spec).fingerprint())
    served = Service.open(settings.model_copy(update={"index_type": "hnsw"}), encoders)
    assert served.snapshot.info()["index_type"] == "hnsw"  # switching the type rebuilds, never serves the old one


def test_manifest_records_what_shaped_the_index(service):
    manifest = service.snapshot.index.manifest
    assert manifest["ann"]["requested"] == "auto" and manifest["ann"]["hnsw"]["ef_search"] > 0
    assert manifest["lexical"]["stemmer"] == "english" and "why" in manifest["lexical"]["question_words"]
    assert manifest["libraries"]["faiss-cpu"] and manifest["libraries"]["bm25s"]


def test_ask_json_into_a_closed_pipe_ends_quietly(service):
    """`rag ask ... --json | head -1`: no BrokenPipe traceback, exit 0."""
    env_code = (
        "import os, sys; from api.cli import main; "
        f"os.environ['RAG_INDEX_DIR'] = {str(service.settings.index_dir)!r}; "
        "sys.exit(main(['ask', 'Who was Trotsky?', '--json']))"
    )
    command = f"{sys.executable} -c \"{env_code}\" | head -1"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    assert out.stdout.strip() == "{"
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
    assert out.returncode == 0


def test_top_k_limit_from_settings_holds_on_http_and_mcp(service):
    settings = service.settings.model_copy(update={"max_top_k": 80})
    wide = Service(settings, service.model, service.encoders, service.snapshot)
    with TestClient(create_app(service=wide), base_url=LOCAL) as client:
        assert client.post("/query", json={"question": "What is permanent revolution?", "top_k": 60}).status_code == 200
        assert client.get("/query", params={"q": "What is permanent revolution?", "top_k": 60}).status_code == 200
        too_many = client.post("/query", json={"question": "What is permanent revolution?", "top_k": 81})
        assert too_many.status_code == 422 and "top_k" in too_many.json()["error"]
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "ask", "arguments": {"question": "What is permanent revolution?", "top_k": 60}}}
        reply = client.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
        assert not reply.get("isError"), reply
        assert len(reply["structuredContent"]["passages"]) == min(60, len(service.snapshot.passages))


@pytest.fixture(scope="module")
def local_client(service):
    """Over the loopback name, which /mcp's DNS-rebinding check accepts (TestClient's default "testserver" it refuses)."""
    with TestClient(create_app(service=service), base_url=LOCAL) as client:
        yield client


def test_mcp_argument_errors_are_one_plain_sentence(local_client):
    client = local_client
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": "Who was Trotsky?", "top_k": 500, "mode": "fuzzy"}}}
    reply = client.post("/mcp", json=call, headers=MCP_HEADERS).json()["result"]
    assert reply["isError"]
    text = reply["content"][0]["text"]
    assert "top_k must be an integer from 1 to" in text
    assert "pydantic" not in text and "http" not in text


def test_get_on_mcp_is_405_not_an_endless_stream(local_client):
    response = local_client.get("/mcp", headers={"Accept": "text/event-stream"})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_api_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 10_000
    assert "RRF" not in json.dumps(client.get("/openapi.json").json())


def test_a_taken_port_is_one_line_with_a_hint():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(PortInUse, match=rf"port {port} .* already in use; pick another with RAG_PORT="):
            bind("127.0.0.1", port)
    finally:
        holder.close()


def test_the_served_socket_turns_nagle_off():
    """asyncio sets TCP_NODELAY only on sockets that name TCP as their protocol; with Nagle on, every keep-alive
    response waited ~40 ms for the client's delayed ACK (measured: c1 p50 52 ms instead of 10)."""
    listener = bind("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client.close()
        accepted.close()
    finally:
        listener.close()
