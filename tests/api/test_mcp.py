"""The MCP server, through the SDK's own client: streamable HTTP against a live uvicorn, and stdio (`rag mcp`).

Checks the ChatGPT connector shapes (search -> {"results": [...]}, fetch -> {id, title,
text, url, metadata}), the output schemas, structuredContent == the JSON text content,
a real answer, tool errors for bad input, and the HTTP transport's path and Host checks.
"""

import json
import os
import sys
from contextlib import asynccontextmanager

import anyio
import pytest
import httpx
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from api.security import transport_security
from api.settings import ServerSettings
from api.wording import QUOTED_DATA
from rag.config import PROJECT_ROOT, Settings

MORENO_QUESTION = "Who revised the theory of permanent revolution in 1984?"
UNANSWERABLE = "What is the best recipe for banana bread?"


@asynccontextmanager
async def http_client(base_url: str, mode: str = "legacy"):
    """An SDK client over streamable HTTP ('legacy' is the initialize handshake ChatGPT and Claude use)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode=mode) as client:
            yield client


def payload(result) -> dict:
    """The tool result's structuredContent, after checking the text content carries the same JSON."""
    assert not result.is_error, result.content[0].text
    assert len(result.content) == 1 and result.content[0].type == "text"
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result
    assert result.structured_content is None
    return result.content[0].text


def run(async_fn, timeout: float = 60):
    async def bounded():
        with anyio.fail_after(timeout):
            return await async_fn()

    return anyio.run(bounded)


# --- streamable HTTP on the app's own port --------------------------------------------------------


def test_tools_are_listed_with_output_schemas(live_server):
    async def check():
        async with http_client(live_server) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in run(check)}
    assert set(tools) == {"search", "fetch", "ask"}
    for tool in tools.values():
        assert QUOTED_DATA in tool.description  # results are data to cite, not instructions
        assert tool.annotations.read_only_hint is True
        assert tool.output_schema["type"] == "object"
    search_schema = tools["search"].output_schema
    assert set(search_schema["required"]) == {"results", "verdict", "confidence", "note"}  # ChatGPT's `results`, plus the verdict
    item = search_schema["$defs"]["SearchResult"]
    assert set(item["required"]) == {"id", "title", "url", "text"}
    assert set(tools["fetch"].output_schema["required"]) == {"id", "title", "text", "url", "metadata", "note"}
    assert set(tools["ask"].output_schema["required"]) >= {"verdict", "answerable", "confidence", "note", "passages", "question", "mode"}
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["fetch"].input_schema["required"] == ["id"]
    ask_args = tools["ask"].input_schema["properties"]
    assert ask_args["mode"]["enum"] == ["hybrid", "dense", "lexical"]
    assert ask_args["top_k"]["default"] == 5 and ask_args["top_k"]["minimum"] == 1


def test_search_fetch_and_ask_answer_from_the_document(live_server, service):
    async def calls():
        async with http_client(live_server) as client:
            found = payload(await client.call_tool("search", {"query": MORENO_QUESTION}))
            first = found["results"][0]
            fetched = payload(await client.call_tool("fetch", {"id": first["id"]}))
            answer = payload(await client.call_tool("ask", {"question": MORENO_QUESTION, "top_k": 3, "mode": "hybrid"}))
            nothing = payload(await client.call_tool("ask", {"question": UNANSWERABLE, "top_k": 2}))
            return found, fetched, answer, nothing

    found, fetched, answer, nothing = run(calls)

    results = found["results"]
    assert 1 <= len(results) <= 8
    first = results[0]
    assert first["text"].startswith("Nahuel Moreno revised the theory of permanent revolution in 1984.")
    assert first["url"] == f"{live_server}/?passage={first['id']}"  # the request's own base URL
    assert "Permanent Revolution in 1917 Russia and Today" in first["title"] and "The Theory Negated" in first["title"]
    view = service.passage(first["id"])
    assert first["text"] == view.passage.text

    assert fetched["id"] == first["id"] and fetched["url"] == first["url"]
    meta = fetched["metadata"]
    document = service.documents[meta["document"]]
    assert document.text[meta["start"] : meta["end"]] == view.passage.text  # the citation's offsets are exact
    assert meta["title"] == document.title and meta["author"] == "Juan Cruz Ferre" and meta["published"] == "2018-01-11"
    assert meta["section"] == "The Theory Negated" and meta["paragraph"] == view.passage.paragraphs[0]
    assert meta["paragraphs"] == list(view.passage.paragraphs)
    assert (meta["previous_id"], meta["next_id"]) == (view.previous_id, view.next_id)
    previous, following = service.passage(view.previous_id).passage, service.passage(view.next_id).passage
    assert (meta["context_start"], meta["context_end"]) == (previous.start, following.end)
    # the passage between its neighbours, in order, each block headed; only one is marked as the cited passage
    text = fetched["text"]
    assert text.count("CITED PASSAGE") == 1 and text.count("===") == 6
    assert text.index(previous.text) < text.index("CITED PASSAGE") < text.index(view.passage.text) < text.index(following.text)

    assert answer["answerable"] is True and answer["mode"] == "hybrid" and len(answer["passages"]) == 3
    best = answer["passages"][0]
    assert best["id"] == first["id"] and best["rank"] == 1
    assert best["highlight"]["text"] == "Nahuel Moreno revised the theory of permanent revolution in 1984."
    assert document.text[best["highlight"]["start"] : best["highlight"]["end"]] == best["highlight"]["text"]
    assert best["citation"]["start"] == meta["start"] and best["url"] == first["url"]
    assert [p["score"] for p in answer["passages"]] == sorted((p["score"] for p in answer["passages"]), reverse=True)

    assert nothing["answerable"] is False
    assert len(nothing["passages"]) == 2 and "do not seem to answer" in nothing["note"]

    # the url really opens this service's page
    page = httpx.get(first["url"], timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_bad_input_is_a_tool_error_not_a_crash(live_server, service):
    async def calls():
        async with http_client(live_server) as client:
            results = [
                await client.call_tool("fetch", {"id": "no-such-passage"}),
                await client.call_tool("fetch", {"id": "  "}),
                await client.call_tool("search", {"query": "   "}),
                await client.call_tool("ask", {"question": ""}),
                await client.call_tool("ask", {"question": "x" * 2001}),
                await client.call_tool("ask", {"question": "Trotsky", "mode": "telepathy"}),
                await client.call_tool("ask", {"question": "Trotsky", "top_k": 0}),
                await client.call_tool("search", {}),
                # HTTP's rule (api.schemas.top_k_type): a JSON integer, never a string or a boolean
                await client.call_tool("ask", {"question": "Trotsky", "top_k": "5"}),
                await client.call_tool("ask", {"question": "Trotsky", "top_k": True}),
                await client.call_tool("ask", {"question": "Trotsky", "top_k": None}),
                await client.call_tool("ask", {"question": "Trotsky", "top_k": 2.5}),
                await client.call_tool("ask", {"question": "Trotsky", "top_k": [3]}),
            ]
            still_fine = payload(await client.call_tool("search", {"query": "Trotsky"}))
            integral = payload(await client.call_tool("ask", {"question": "Trotsky", "top_k": 2.0}))  # 2.0 is a JSON integer
            return results, still_fine, integral

    results, still_fine, integral = run(calls)
    messages = [error_text(r) for r in results]
    assert "no passage with id 'no-such-passage'" in messages[0] and "returned by `search`" in messages[0]
    assert "id is empty" in messages[1]
    assert "query is empty" in messages[2]
    assert "question is empty" in messages[3]
    assert "the limit is 2000" in messages[4]
    assert "mode" in messages[5] and "hybrid" in messages[5]
    assert "top_k" in messages[6]
    assert "query" in messages[7]
    for message in messages[8:]:  # one plain sentence, as for top_k 0
        assert "top_k must be an integer from 1 to" in message, message
    assert still_fine["results"]  # the server keeps serving
    assert len(integral["passages"]) == 2


def test_new_protocol_client_works_too(live_server):
    async def calls():
        async with http_client(live_server, mode="auto") as client:
            return payload(await client.call_tool("search", {"query": MORENO_QUESTION}))

    assert run(calls)["results"][0]["text"].startswith("Nahuel Moreno")


def test_http_path_and_dns_rebinding_checks(live_server):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    port = live_server.rsplit(":", 1)[1]
    with httpx.Client(base_url=live_server, follow_redirects=False, timeout=10) as http:
        for path in ("/mcp", "/mcp/"):
            reply = http.post(path, json=body, headers=headers)
            assert reply.status_code == 200, (path, reply.status_code)  # answered, not redirected
            assert reply.json()["result"]["serverInfo"]["name"] == "ask-the-document"
        local = http.post("/mcp", json=body, headers={**headers, "Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
        assert local.status_code == 200
        rebound = http.post("/mcp", json=body, headers={**headers, "Host": f"evil.example:{port}"})
        assert rebound.status_code == 421
        foreign_page = http.post("/mcp", json=body, headers={**headers, "Origin": "http://evil.example"})
        assert foreign_page.status_code == 403
        assert http.post("/mcp", content=json.dumps(body), headers={**headers, "Content-Type": "text/plain"}).status_code == 400
        # the MCP routes stay out of the OpenAPI document
        assert not any(path.startswith("/mcp") for path in http.get("/openapi.json").json()["paths"])


def test_allowed_hosts_follow_settings():
    local = transport_security(ServerSettings())
    assert local.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"} <= set(local.allowed_hosts)
    assert "http://localhost:*" in local.allowed_origins
    public = transport_security(ServerSettings(host="0.0.0.0", public_url="https://rag.example.org"))
    assert public.enable_dns_rebinding_protection
    assert "rag.example.org" in public.allowed_hosts and "https://rag.example.org" in public.allowed_origins
    assert "0.0.0.0:*" not in public.allowed_hosts
    named = transport_security(ServerSettings(host="docs.internal", port=9000))
    assert "docs.internal:*" in named.allowed_hosts
    # bound to every interface with no public URL: the names clients use are unknowable, so the check is off
    assert not transport_security(ServerSettings(host="0.0.0.0")).enable_dns_rebinding_protection


# --- stdio: `rag mcp` as a desktop client launches it -----------------------------------------------


def stdio_params(settings: Settings, **env) -> StdioServerParameters:
    # The SDK passes the child only HOME, LOGNAME, PATH, SHELL, TERM and USER: configuration goes in env.
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "api.cli", "mcp"],
        cwd=str(PROJECT_ROOT),
        env={
            "RAG_INDEX_DIR": str(settings.index_dir),
            "RAG_SEEDS_DIR": str(settings.seeds_dir),
            "RAG_AUTO_BUILD": "false",  # the shared index must load as is; never rebuilt by the child
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            **env,
        },
    )


@pytest.mark.slow  # a whole question set, a subprocess or a fresh export: the slow tier
def test_stdio_rag_mcp(service, settings):
    async def calls():
        async with Client(stdio_params(settings, RAG_PUBLIC_URL="https://rag.example.org/"), mode="legacy") as client:
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            found = payload(await client.call_tool("search", {"query": MORENO_QUESTION}))
            fetched = payload(await client.call_tool("fetch", {"id": found["results"][0]["id"]}))
            answer = payload(await client.call_tool("ask", {"question": MORENO_QUESTION, "top_k": 2, "mode": "lexical"}))
            missing = await client.call_tool("fetch", {"id": "nope"})
            return names, found, fetched, answer, missing

    names, found, fetched, answer, missing = run(calls)
    assert names == ["ask", "fetch", "search"]
    first = found["results"][0]
    assert first["text"].startswith("Nahuel Moreno revised the theory")
    assert first["url"] == f"https://rag.example.org/?passage={first['id']}"  # RAG_PUBLIC_URL, trailing slash dropped
    assert fetched["metadata"]["index_id"] == service.snapshot.index.id  # the same index, loaded not rebuilt
    assert answer["mode"] == "lexical" and len(answer["passages"]) == 2
    assert "no passage with id 'nope'" in error_text(missing)


@pytest.mark.slow  # a whole question set, a subprocess or a fresh export: the slow tier
def test_stdio_reports_a_service_that_cannot_start(settings, tmp_path):
    async def calls():
        params = stdio_params(settings, RAG_SEEDS_DIR=str(tmp_path / "missing"))
        async with Client(params, mode="legacy") as client:
            tools = (await client.list_tools()).tools  # the handshake does not wait for the service
            return tools, await client.call_tool("search", {"query": "anything"})

    tools, result = run(calls)
    assert len(tools) == 3
    message = error_text(result)
    assert "could not start" in message and "does not exist" in message
