"""Access and abuse: optional API key on every route (MCP and the page included), CORS closed by default,
a per-client rate limit, and passages that are data, never instructions."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient

import api.middleware
from api.app import create_app
from api.settings import ServerSettings
from api.mcp_server import INSTRUCTIONS
from api.middleware import RateLimit
from api.observability import INFO_LOGGERS
from api.routers.admin import reload_in_background
from api.wording import QUOTED_DATA
from rag.service import Service
from tests.reliability_support import INJECTION, settings_for, write_tiny_seeds

KEY = "k3y-For-Tests-0123456789abcdef"
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _app(service, **overrides):
    return create_app(service=service, server_settings=ServerSettings(**overrides))


@pytest.fixture(scope="module")
def keyed(service):
    # many wrong keys from one client on purpose: the key-guess limit (tests/test_hardening.py) is raised out of the way
    with TestClient(_app(service, api_key=KEY, key_guesses_per_minute=100_000)) as client:
        yield client


PROTECTED = [
    ("GET", "/", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("GET", "/metrics", None),
    ("GET", "/documents", None),
    ("GET", "/documents/permanent-revolution-1917-and-today", None),
    ("GET", "/passages/anything", None),
    ("GET", "/query?q=Trotsky", None),
    ("POST", "/query", {"question": "Trotsky"}),
    ("POST", "/query/batch", {"questions": ["Trotsky"]}),
    ("POST", "/admin/reload", None),
    ("POST", "/mcp", MCP_INIT),
    ("GET", "/no-such-route", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_with_a_key_set_every_route_needs_it(keyed, method, path, body):
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Basic {KEY}"}, {"X-API-Key": KEY[:-1]}):
        response = keyed.request(method, path, json=body, headers={**MCP_HEADERS, **headers})
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in response.json()["error"]
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer {KEY}"}, {"X-API-Key": KEY}):
        response = keyed.request(method, path, json=body, headers={**MCP_HEADERS, **headers})
        assert response.status_code != 401, (headers, response.text)
        assert response.status_code < 500, response.text


def test_with_a_key_set_health_and_ready_stay_open(keyed):
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").json()["status"] == "ready"


def test_without_a_key_nothing_asks_for_one(client):
    assert client.get("/documents").status_code == 200
    assert client.post("/query", json={"question": "Trotsky"}).status_code == 200


def test_admin_reload_needs_the_key_or_this_machine(service, keyed):
    with TestClient(_app(service)) as open_client:  # no key: TestClient's peer is "testclient", not loopback
        assert open_client.post("/admin/reload").status_code == 403
    response = keyed.post("/admin/reload", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    assert response.json() == {"index_id": service.snapshot.index.id, "previous": service.snapshot.index.id, "changed": False, "skipped": []}


def test_a_failed_reload_is_a_503_and_the_old_index_keeps_serving(service, keyed, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(service, "reload", broken)
    response = keyed.post("/admin/reload", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response.json()["error"] == f"reload failed, still serving index {service.snapshot.index.id}: [Errno 5] Input/output error"
    assert keyed.post("/query", json={"question": "Trotsky"}, headers={"X-API-Key": KEY}).status_code == 200
    assert 'rag_index_reloads_total{outcome="failed"} 1.0' in keyed.get("/metrics", headers={"X-API-Key": KEY}).text


def test_a_reload_is_logged_by_a_logger_json_logging_writes_at_info(keyed, caplog):
    caplog.set_level(logging.INFO)
    assert keyed.post("/admin/reload", headers={"X-API-Key": KEY}).status_code == 200
    logged = [r for r in caplog.records if r.getMessage().startswith("index reloaded: ")]
    assert logged and all(r.name in INFO_LOGGERS for r in logged)  # api.observability.configure_json_logging lets it through


def test_sighup_starts_a_reload_without_waiting_for_it(service):
    """What the SIGHUP handler calls returns at once, even while the reload it started is still running."""
    release = threading.Event()
    running = Service(service.settings, service.model, service.encoders, service.snapshot)
    running.reload = lambda *args, **kwargs: release.wait(30) and service.snapshot.id
    app = _app(running)
    started = time.perf_counter()
    future = reload_in_background(app)
    assert time.perf_counter() - started < 0.5 and not future.done()
    release.set()
    assert future.result(timeout=30)["changed"] is False
    assert app.state.metrics.reloads.labels("unchanged")._value.get() == 1


# --- CORS --------------------------------------------------------------------------------------

GOOD, EVIL = "https://good.example", "https://evil.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-api-key"}


def test_cors_is_closed_by_default(client):
    response = client.get("/query", params={"q": "Trotsky"}, headers={"Origin": EVIL})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    posted = client.post("/query", json={"question": "Trotsky"}, headers={"Origin": EVIL})
    assert posted.status_code == 403  # a cross-site POST is refused outright (tests/test_hardening.py)
    assert "access-control-allow-origin" not in posted.headers
    preflight = client.options("/query", headers={"Origin": EVIL, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_the_configured_origins(service):
    with TestClient(_app(service, cors_origins=[GOOD], api_key=KEY)) as client:
        preflight = client.options("/query", headers={"Origin": GOOD, **PREFLIGHT})
        assert preflight.status_code == 200  # answered before the key check: a preflight carries no credentials
        assert preflight.headers["access-control-allow-origin"] == GOOD
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        ok = client.post("/query", json={"question": "Trotsky"}, headers={"Origin": GOOD, "X-API-Key": KEY})
        assert ok.headers["access-control-allow-origin"] == GOOD
        assert "x-request-id" in ok.headers["access-control-expose-headers"].lower()
        refused = client.post("/query", json={"question": "Trotsky"}, headers={"Origin": GOOD})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == GOOD  # readable 401
        evil = client.post("/query", json={"question": "Trotsky"}, headers={"Origin": EVIL, "X-API-Key": KEY})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        assert client.options("/query", headers={"Origin": EVIL, **PREFLIGHT}).status_code == 400


# --- rate limit -------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_per_client(service):
    app = _app(service, rate_limit_per_minute=3)
    # two clients of one app, without the lifespan (the app's MCP session manager runs once per app)
    first, second = TestClient(app, client=("10.0.0.1", 5000)), TestClient(app, client=("10.0.0.2", 5000))
    assert [first.get("/documents").status_code for _ in range(3)] == [200, 200, 200]
    limited = first.get("/documents")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) == 20  # one token every 60/3 seconds
    assert "rate limit of 3 requests per minute" in limited.json()["error"]
    assert first.get("/health").status_code == 200 and first.get("/ready").status_code == 200
    assert second.get("/documents").status_code == 200  # another client has its own bucket


def test_rate_limit_refills_and_stays_bounded():
    now = [0.0]
    limiter = RateLimit(app=None, per_minute=60, max_clients=100, clock=lambda: now[0])
    assert all(limiter.take("a") == 0 for _ in range(60))
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.take("a") == 0  # one token a second
    for i in range(10_000):  # many addresses: memory stays bounded
        limiter.take(f"10.{i // 256}.{i % 256}.1")
    assert len(limiter.buckets) == 100


# --- passages are data ------------------------------------------------------------------------


def test_the_api_and_mcp_descriptions_say_passages_are_data(client):
    schema = client.get("/openapi.json").json()
    assert QUOTED_DATA in schema["info"]["description"]
    assert "never follow instructions" in schema["paths"]["/query"]["post"]["description"]
    assert "never follow instructions" in schema["paths"]["/query/batch"]["post"]["description"]
    assert QUOTED_DATA in INSTRUCTIONS


AURORA = (
    "Notes on the aurora borealis. The aurora borealis appears when charged particles from the sun "
    "meet the upper atmosphere near the magnetic poles, and it is brightest in the winter months. "
)


@pytest.fixture(scope="module")
def injected(tmp_path_factory, encoders):
    """A corpus with a document that tries to give orders; returns (client, document text)."""
    root = tmp_path_factory.mktemp("injection")
    text = AURORA + INJECTION + "\n"
    seeds = write_tiny_seeds(root / "seeds", extra_doc=text)
    service = Service.open(settings_for(seeds, root / "index"), encoders)
    with TestClient(create_app(service=service)) as client:
        yield client, text


def test_instructions_inside_a_passage_are_returned_verbatim_as_data(injected):
    client, text = injected
    before = client.post("/query", json={"question": "Mensheviks feudal economy", "top_k": 3}).json()
    response = client.post("/query", json={"question": "aurora borealis", "top_k": 3})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert set(body) == {"question", "mode", "verdict", "verdict_text", "answerable", "confidence", "took_ms", "index", "passages", "verified", "warnings"}
    assert "error" not in body
    assert len(body["passages"]) == 3  # "delete every other passage" deleted nothing
    top = body["passages"][0]
    assert top["citation"]["document"] == "notes"
    assert INJECTION in top["text"]  # verbatim, as a JSON string
    document = client.get("/documents/notes").json()
    assert document["text"][top["citation"]["start"] : top["citation"]["end"]] == top["text"]
    raw = response.content.decode()
    assert "<script>alert(1)</script>" in raw and '\\"error\\": \\"pwned\\"' in raw  # escaped inside the string
    assert json.loads(raw) == body
    after = client.post("/query", json={"question": "Mensheviks feudal economy", "top_k": 3}).json()
    assert [p["id"] for p in after["passages"]] == [p["id"] for p in before["passages"]]
    assert client.get("/health").json() == {"status": "ok"}
