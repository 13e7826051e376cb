"""Seeing it work: GET /metrics (Prometheus text), JSON-line logs with a request id echoed in X-Request-ID."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.observability import ACCESS_LOG, JsonFormatter


def samples(client) -> dict:
    """(name, frozenset(labels)) -> value, from GET /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_by_route_template_and_time_each_stage(service):
    with TestClient(create_app(service=service)) as client:
        passage_id = service.snapshot.passages[0].id
        client.post("/query", json={"question": "What is permanent revolution?"})
        client.get("/query", params={"q": "Who was Trotsky?", "mode": "dense"})
        client.post("/query/batch", json={"questions": ["Mensheviks", "Lenin"], "mode": "lexical"})
        client.get(f"/passages/{passage_id}")
        client.get("/passages/no-such-passage")
        client.post("/query", json={"question": ""})
        client.post("/query", json={"question": "Who led the Jacobins?", "verify": True})
        for i in range(5):
            client.get(f"/random/path/{i}")  # unmatched paths share one label value
        m = samples(client)
    assert value(m, "rag_http_requests_total", method="POST", route="/query", status="200") == 2
    assert value(m, "rag_http_requests_total", method="POST", route="/query", status="422") == 1
    assert value(m, "rag_http_requests_total", method="GET", route="/query", status="200") == 1
    assert value(m, "rag_http_requests_total", method="GET", route="/passages/{passage_id}", status="200") == 1
    assert value(m, "rag_http_requests_total", method="GET", route="/passages/{passage_id}", status="404") == 1
    assert value(m, "rag_http_requests_total", method="GET", route="<unmatched>", status="404") == 5
    assert not [k for k in m if passage_id in str(k) or "random" in str(k)], "raw paths must not become labels"
    assert value(m, "rag_http_request_duration_seconds_count", method="POST", route="/query") == 3
    # per stage: one observation per question answered (1 + 1 + 2)
    for stage in ("embed", "dense", "lexical", "fusion", "highlight"):
        observed = value(m, "rag_query_stage_duration_seconds_count", stage=stage)
        assert observed >= 1, stage
    assert sum(v for (n, _), v in m.items() if n == "rag_query_duration_seconds_count") == 5
    # every question's verdict, and whether the verifier read it (one asked for it)
    verdicts = {dict(labels)["verdict"] + "/" + dict(labels)["verified"]: v for (n, labels), v in m.items() if n == "rag_query_verdicts_total"}
    assert sum(verdicts.values()) == 5 and sum(v for k, v in verdicts.items() if k.endswith("/true")) == 1
    assert set(verdicts) <= {f"{v}/{r}" for v in ("found", "uncertain", "not_found") for r in ("true", "false")}
    info = service.info()
    assert value(m, "rag_index_passages") == info["passages"]
    assert value(m, "rag_index_documents") == info["documents"]
    assert value(m, "rag_index_loaded") == 1
    versions = [dict(labels) for (name, labels), v in m.items() if name == "rag_index_info" and v == 1]
    assert versions == [{"index_id": info["index_id"], "model": info["model"], "index_type": info["index_type"]}]


def test_each_app_has_its_own_registry(service):
    with TestClient(create_app(service=service)) as first, TestClient(create_app(service=service)) as second:
        for _ in range(3):
            first.get("/documents")
        assert value(samples(first), "rag_http_requests_total", method="GET", route="/documents", status="200") == 3
        assert value(samples(second), "rag_http_requests_total", method="GET", route="/documents", status="200") == 0


def test_methods_are_a_bounded_label(service):
    with TestClient(create_app(service=service)) as client:
        for method in ("BREW", "FOO", "PROPFIND"):
            client.request(method, "/documents")
        m = samples(client)
    assert {dict(labels)["method"] for (name, labels) in m if name == "rag_http_requests_total"} <= {"GET", "OTHER"}


@pytest.fixture
def access_lines():
    """Access-log records formatted as the server writes them (JSON lines)."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(JsonFormatter().format(record))

    handler = Capture(level=logging.INFO)
    previous = ACCESS_LOG.level
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(logging.INFO)
    yield lines
    ACCESS_LOG.removeHandler(handler)
    ACCESS_LOG.setLevel(previous)


def test_every_request_logs_one_json_line_with_its_request_id(client, access_lines):
    response = client.post("/query", json={"question": "Who was Trotsky?", "top_k": 2})
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    echoed = client.get("/documents", headers={"X-Request-ID": "trace-abc.123:4"})
    assert echoed.headers["x-request-id"] == "trace-abc.123:4"
    for hostile in ("a b", "x" * 200, b"\xc3\xa9vil", "<script>", "line\\nbreak", ""):
        replaced = client.get("/health", headers={"X-Request-ID": hostile}).headers["x-request-id"]
        assert replaced != hostile and len(replaced) == 32
    entries = [json.loads(line) for line in access_lines]
    assert len(entries) == 2 + 6
    first = entries[0]
    assert {"ts", "level", "request_id", "method", "path", "status", "duration_ms"} <= set(first)
    assert first["request_id"] == generated and first["method"] == "POST" and first["path"] == "/query"
    assert first["status"] == 200 and first["duration_ms"] > 0 and first["level"] == "info"
    assert first["ts"].endswith("Z")
    assert entries[1]["request_id"] == "trace-abc.123:4"


def test_an_unexpected_error_is_a_json_500_naming_the_request_id(service, access_lines, caplog):
    app = create_app(service=service)

    @app.get("/boom", include_in_schema=False)
    async def boom():
        raise RuntimeError("simulated bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert client.get("/health").status_code == 200  # the server carries on
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert request_id in response.json()["error"]
    logged = [r for r in caplog.records if r.name == "api.middleware" and r.exc_info]
    assert logged and "simulated bug" in JsonFormatter().format(logged[0])
    assert json.loads(access_lines[0])["status"] == 500
