"""Bad and hostile input: every request gets a 4xx with a readable `error`, never a 500 or a crash.

Limits on what a request can make the server do: question length (2000
characters), top_k (50), questions per batch (settings.max_batch_questions),
body size (settings.max_body_bytes, checked against a live uvicorn with raw
sockets, including a chunked body that declares no length).
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ServerSettings
from rag.service import Service
from tests.reliability_support import peak_rss_kib, reset_peak_rss

HOSTILE_BODIES = [
    # (name, raw body, expected status, words the error must contain)
    ("30k nested arrays", b"[" * 30_000 + b"]" * 30_000, 400, "nested too deeply"),
    ("nested arrays in a field", b'{"question": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "nested too deeply"),
    ("lone surrogate", b'{"question": "why \\ud800?"}', 422, "question"),
    ("lone surrogate as a key", b'{"\\udc00": 1, "question": "why?"}', 422, ""),
    ("invalid UTF-8", b'{"question": "\xff\xfe why"}', 400, "UTF-8"),
    ("overlong UTF-8 NUL", b'{"question": "a\xc0\x80b"}', 400, "UTF-8"),
    ("NUL escaped", b'{"question": "a\\u0000b"}', 422, "control character U+0000"),
    ("ESC escaped", b'{"question": "a\\u001bb"}', 422, "control character U+001B"),
    ("raw control character", b'{"question": "a\x07b"}', 422, "not valid JSON"),
    ("empty question", b'{"question": ""}', 422, "question"),
    ("whitespace question", b'{"question": " \\t\\n\\u2003 "}', 422, "question is empty"),
    ("question too long", json.dumps({"question": "why " * 501}).encode(), 422, "2000"),
    ("top_k 1e400", b'{"question": "why?", "top_k": 1e400}', 422, "top_k"),
    ("top_k 10**100", b'{"question": "why?", "top_k": ' + str(10**100).encode() + b"}", 422, "top_k"),
    ("top_k 5000 digits", b'{"question": "why?", "top_k": ' + b"9" * 5000 + b"}", 400, "number too long"),
    ("top_k NaN", b'{"question": "why?", "top_k": NaN}', 422, "top_k"),
    ("top_k -Infinity", b'{"question": "why?", "top_k": -Infinity}', 422, "top_k"),
    ("top_k true", b'{"question": "why?", "top_k": true}', 422, "top_k"),
    ("top_k string", b'{"question": "why?", "top_k": "5"}', 422, "top_k"),
    ("top_k fraction", b'{"question": "why?", "top_k": 5.5}', 422, "top_k"),
    ("top_k 0", b'{"question": "why?", "top_k": 0}', 422, "top_k"),
    ("top_k 51", b'{"question": "why?", "top_k": 51}', 422, "top_k"),
    ("mode unknown", b'{"question": "why?", "mode": "sql"}', 422, "mode"),
    ("question number", b'{"question": 42}', 422, "question"),
    ("question list", b'{"question": ["why?"]}', 422, "question"),
    ("question null", b'{"question": null}', 422, "question"),
    ("question object", b'{"question": {"$ne": 1}}', 422, "question"),
    ("unknown field", b'{"question": "why?", "system_prompt": "obey"}', 422, "system_prompt"),
    ("body list", b"[]", 422, "body"),
    ("body null", b"null", 422, "body"),
    ("body string", b'"why?"', 422, "body"),
    ("body empty", b"", 422, "body"),
    ("truncated JSON", b'{"question": "wh', 422, "not valid JSON"),
    ("not JSON", b"question=why", 422, "not valid JSON"),
]


@pytest.mark.parametrize(("name", "body", "status", "words"), HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES])
def test_hostile_query_bodies_get_a_clear_4xx(client, name, body, status, words):
    response = client.post("/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error and words in error
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_sent_as_another_type_is_told_to_send_json(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/query", content=b'{"question": "why?"}', headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith("the body must be JSON sent with Content-Type: application/json"), error
    assert (content_type or "no type") in error
    assert client.post("/query", json={"question": "why?"}).status_code == 200  # the same body as JSON is answered


@pytest.mark.parametrize(
    "params",
    [
        {"q": ""},
        {"q": "   "},
        {"q": "a\x00b"},
        {"q": "a\x1bb"},
        {"q": "x" * 2001},
        {"q": "why?", "top_k": "1e400"},
        {"q": "why?", "top_k": str(10**100)},
        {"q": "why?", "top_k": "-1"},
        {"q": "why?", "top_k": "0x10"},
        {"q": "why?", "mode": "evil"},
        {},
    ],
)
def test_hostile_query_parameters_get_a_clear_422(client, params):
    response = client.get("/query", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_an_empty_date_parameter_is_no_bound_as_the_schema_says(client):
    """`GET /query?published_after=&q=0&section=11` (the fuzz test's request, with a section the index has): a blank
    field is no filter, a 200 equal to leaving it out; the schema's pattern admits "" and says so. A JSON body has
    null for that: "" is a 422. A section the index does not have is a 422 naming it (tests/query/test_filters.py)."""
    got = client.get("/query?published_after=&q=0&section=Opening")
    assert got.status_code == 200, got.text
    without = client.get("/query?q=0&section=Opening").json()
    assert [p["id"] for p in got.json()["passages"]] == [p["id"] for p in without["passages"]]
    assert client.get("/query", params={"q": "why?", "published_before": ""}).status_code == 200
    date = next(p for p in client.get("/openapi.json").json()["paths"]["/query"]["get"]["parameters"] if p["name"] == "published_after")
    assert re.fullmatch(date["schema"]["pattern"].strip("^$"), "") and "empty: no bound" in date["description"]
    malformed = client.get("/query", params={"q": "why?", "published_after": "2018-13-01"})
    assert malformed.status_code == 422 and "published_after" in malformed.json()["error"]
    posted = client.post("/query", json={"question": "why?", "filters": {"published_after": ""}})
    assert posted.status_code == 422 and "published_after" in posted.text


@pytest.mark.parametrize("path", ["/query?q=%FF%FE", "/query?q=%ED%A0%80", "/documents/%ED%A0%80", "/passages/%00", "/passages/" + "a" * 4000])
def test_undecodable_or_odd_urls_never_fail_the_server(client, path):
    response = client.get(path)
    assert response.status_code in (200, 404), response.text  # bytes that are not UTF-8 decode as U+FFFD
    assert response.json()


def test_deep_nesting_under_a_large_body_limit_is_refused_not_a_recursion_crash(service):
    """100k nested arrays (200 KB): over the default 64 KB limit it is a 413; under a 1 MB limit the
    parser's recursion guard trips and it is a 400 saying why, not a 500."""
    body = b"[" * 100_000 + b"]" * 100_000
    with TestClient(create_app(service=service)) as default_client:
        assert default_client.post("/query", content=body, headers={"content-type": "application/json"}).status_code == 413
    with TestClient(create_app(service=service, server_settings=ServerSettings(max_body_bytes=1_000_000))) as big_client:
        response = big_client.post("/query", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"] == "request body is nested too deeply to parse"
        assert big_client.post("/query", json={"question": "Who was Trotsky?"}).status_code == 200


# --- batch ---------------------------------------------------------------------------------


def test_batch_answers_each_question_in_order(client):
    questions = ["What is permanent revolution?", "Who were the Mensheviks?"]
    response = client.post("/query/batch", json={"questions": questions, "top_k": 2, "mode": "hybrid"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["question"] for r in results] == questions
    assert all(len(r["passages"]) == 2 for r in results)
    single = client.post("/query", json={"question": questions[1], "top_k": 2}).json()
    assert [p["id"] for p in single["passages"]] == [p["id"] for p in results[1]["passages"]]


def test_batch_size_is_capped_by_settings(service, client):
    assert client.post("/query/batch", json={"questions": ["why?"] * 33}).status_code == 422
    assert client.post("/query/batch", json={"questions": []}).status_code == 422
    settings = service.settings.model_copy(update={"max_batch_questions": 3})
    small_service = Service(settings, service.model, service.encoders, service.snapshot)  # same index, other limits
    with TestClient(create_app(service=small_service)) as small:
        response = small.post("/query/batch", json={"questions": ["why?"] * 4})
        assert response.status_code == 422
        assert response.json()["error"] == "questions: at most 3 per batch; got 4"
        assert small.post("/query/batch", json={"questions": ["why?"] * 3}).status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"questions": ["fine", "a\x00b"]}, "questions[1]: question contains the control character U+0000"),
        ({"questions": ["fine", "   "]}, "questions[1]: question is empty"),
        ({"questions": "why?"}, "questions"),
        ({"questions": [1, 2]}, "questions.0"),
        ({"questions": ["why?"], "top_k": 10**100}, "top_k"),
        ({"questions": ["why?"], "extra": True}, "extra"),
    ],
)
def test_batch_rejects_bad_items_naming_them(client, body, words):
    response = client.post("/query/batch", json=body)
    assert response.status_code == 422
    assert words in response.json()["error"]


# --- body size against a live server ----------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def live(service):
    """The app on a real uvicorn in a thread (same process: its memory is this process's)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)
    sock.close()


def _read_response(conn: socket.socket, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    headers = {k.lower(): v for k, v in headers.items()}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_declared_oversized_body_is_refused_before_it_is_sent(live):
    with socket.create_connection(("127.0.0.1", live)) as conn:
        conn.sendall(
            b"POST /query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {TEN_MB}\r\n\r\n".encode()
        )
        status, headers, body = _read_response(conn)  # answered without a single body byte sent
        assert status == 413
        assert json.loads(body)["error"] == f"request body is {TEN_MB} bytes; the limit is 65536"
        assert headers.get("connection") == "close"


@pytest.mark.parametrize("path", ["/query", "/query/batch", "/mcp"])
def test_chunked_oversized_body_is_cut_off_without_buffering_it(live, path):
    """10 MB sent chunked (no Content-Length): the server answers 413 as soon as 64 KB have arrived and
    closes the connection; the server process's peak memory does not grow by anything like 10 MB."""
    reset = reset_peak_rss("self")
    peak_before = peak_rss_kib("self")
    sent = 0
    status = None
    chunk = b"[" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", live)) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < TEN_MB:
                readable, _, _ = select.select([conn], [], [], 0)
                if readable:
                    break
                conn.sendall(frame)
                sent += len(chunk)
            if sent >= TEN_MB:
                conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection on us: what we want
        status, headers, body = _read_response(conn)
    assert status == 413, body
    assert "over the limit of 65536 bytes" in json.loads(body)["error"]
    assert sent < TEN_MB, "the server read the whole 10 MB before answering"
    if reset:
        grown_kib = peak_rss_kib("self") - peak_before
        assert grown_kib < 5 * 1024, f"peak memory grew by {grown_kib} KiB while refusing a 10 MB body"


def test_chunked_body_within_the_limit_is_accepted(live):
    body = json.dumps({"question": "What did Trotsky write in 1906?", "top_k": 1}).encode()
    with socket.create_connection(("127.0.0.1", live)) as conn:
        conn.sendall(
            b"POST /query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body[:10]):x}\r\n".encode() + body[:10] + b"\r\n"
            + f"{len(body[10:]):x}\r\n".encode() + body[10:] + b"\r\n0\r\n\r\n"
        )
        status, _, response = _read_response(conn, timeout=30)
    assert status == 200, response
    assert len(json.loads(response)["passages"]) == 1
