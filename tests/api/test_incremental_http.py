"""Documents written over HTTP are indexed incrementally (issue #20 item 5), against a real uvicorn on 127.0.0.1 and
the real model: an add embeds only its own passages and sentences and leaves every other passage's id and vectors
as they were, is answerable the moment the write returns with /ready on the new index id, a delete racing queries is
never cited once it returns, and what is served after the writes equals a full rebuild of the same seeds."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import uvicorn

from api.app import create_app
from rag.index import corpus_cache
from rag.service import Service
from tests.reliability_support import article_paragraphs, settings_for, write_tiny_seeds

pytestmark = pytest.mark.slow  # a live server over an index of its own

HARBOUR = (
    "# Harbour notes\n\nThe harbour master logged forty-two fishing boats leaving before sunrise on the first of May, "
    "the most the port had seen since the old breakwater was rebuilt in granite.\n\n"
    "## Tides\n\nThe spring tide rose two metres above the mark, and the ferry to the island waited until the afternoon, "
    "when the channel was deep enough for its keel.\n"
)
ZEBRAS = (
    "# Lighthouse log\n\nThe lighthouse keeper counted seven zebras on the shore at dawn, and wrote the number in "
    "the logbook next to the weather, as the harbour master had asked him to do every morning that winter.\n"
)
QUESTIONS = ("How many fishing boats left the harbour?", "When did the ferry leave?", "How many zebras did the keeper count?",
             "Why was the bourgeoisie unable to lead?", "What did the workers do in 1917?")


@pytest.fixture(scope="module")
def live(tmp_path_factory, encoders):
    """A service over a small corpus of its own (two documents), served by uvicorn in a thread; yields (base, service, seeds)."""
    root = tmp_path_factory.mktemp("incremental-http")
    seeds = write_tiny_seeds(root / "seeds", extra_doc="\n\n".join(article_paragraphs()[20:28]) + "\n")
    service = Service.open(settings_for(seeds, root / "index"), encoders)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", service, seeds
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def trusting(monkeypatch):
    monkeypatch.setattr(corpus_cache, "RACY_SECONDS", 0.0)  # files a test writes are seconds old (tests/index/test_corpus_cache.py)


def cited(base: str, question: str, k: int = 3) -> list[str]:
    response = httpx.get(base + "/query", params={"q": question, "top_k": k}, timeout=30)
    assert response.status_code == 200, response.text
    return [p["citation"]["document"] for p in response.json()["passages"]]


def test_an_add_over_http_embeds_only_its_passages_and_is_answerable_at_once(live, encoders, monkeypatch, trusting):
    base, service, seeds = live
    before = service.snapshot
    ready_before = httpx.get(base + "/ready").json()["index_id"]
    kept = {p.id: (before.index.vectors.reconstruct(i), np.asarray(before.index.sentence_vectors[_rows(before, i)]))
            for i, p in enumerate(before.passages)}
    embedded: list[str] = []
    builder = encoders.builder()
    real_encode = builder.encode
    monkeypatch.setattr(builder, "encode", lambda texts, *a, **k: embedded.extend(texts) or real_encode(texts, *a, **k))

    response = httpx.post(base + "/documents", files={"file": ("harbour.md", HARBOUR.encode())}, timeout=120)
    returned = time.monotonic()
    assert response.status_code == 201, response.text
    assert cited(base, QUESTIONS[0], 1) == ["harbour"]
    answerable_after = time.monotonic() - returned
    body = response.json()
    ready = httpx.get(base + "/ready").json()
    assert ready["index_id"] == body["index_id"] != ready_before and ready["passages"] == len(before.passages) + body["passages"]

    after = service.snapshot
    new = [p for p in after.passages if p.document == "harbour"]
    text = after.documents["harbour"].text
    assert len(new) == body["passages"] and len(embedded) == len(new) + sum(len(p.sentences) for p in new)
    assert {text[s:e] for p in new for s, e in p.sentences} <= set(embedded)
    for i, p in enumerate(after.passages):  # every other passage: same id, the very same vectors, not embedded again
        if p.document != "harbour":
            vector, sentences = kept.pop(p.id)
            assert np.array_equal(after.index.vectors.reconstruct(i), vector)
            assert np.array_equal(np.asarray(after.index.sentence_vectors[_rows(after, i)]), sentences)
    assert not kept
    assert answerable_after < 5.0  # the write returns once the new snapshot serves: answerable at the next request
    assert httpx.delete(base + "/documents/harbour", timeout=120).status_code == 200


def _rows(snapshot, i: int) -> slice:
    first, count = snapshot.index.sentence_rows[i]
    return slice(int(first), int(first + count))


def test_a_delete_racing_queries_is_never_cited_once_it_returns(live):
    base, service, _ = live
    assert httpx.post(base + "/documents", json={"text": ZEBRAS, "id": "zebras", "format": "md"}, timeout=120).status_code == 201
    old = service.snapshot
    question = service.parse(QUESTIONS[2], top_k=5)
    assert service.query(question, snapshot=old).hits[0].passage.document == "zebras"
    stop = threading.Event()
    answers: list[tuple[float, list[str]]] = []  # (sent at, documents cited)

    def ask_until_stopped(client: httpx.Client, batch: bool) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            if batch:
                response = client.post(base + "/query/batch", json={"questions": [QUESTIONS[2], QUESTIONS[3]], "top_k": 5})
                assert response.status_code == 200, response.text
                docs = [p["citation"]["document"] for result in response.json()["results"] for p in result["passages"]]
            else:
                response = client.get(base + "/query", params={"q": QUESTIONS[2], "top_k": 5})
                assert response.status_code == 200, response.text
                docs = [p["citation"]["document"] for p in response.json()["passages"]]
            answers.append((sent, docs))

    with ThreadPoolExecutor(4) as pool, httpx.Client(timeout=60) as client:
        askers = [pool.submit(ask_until_stopped, client, n % 2 == 1) for n in range(4)]
        try:
            time.sleep(0.3)
            assert client.delete(base + "/documents/zebras").status_code == 200
            deleted_at = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
        for asker in askers:
            asker.result()
    before = [docs for sent, docs in answers if sent < deleted_at]
    after = [docs for sent, docs in answers if sent > deleted_at]
    assert after and all("zebras" not in docs for docs in after)
    assert any("zebras" in docs for docs in before)  # the race was real: it was cited until the delete
    assert all(hit.passage.document != "zebras" for hit in service.query(question, snapshot=old).hits)  # even on the old snapshot


def test_what_is_served_after_incremental_writes_equals_a_full_rebuild(live, encoders, tmp_path):
    base, service, seeds = live
    assert httpx.post(base + "/documents", files={"file": ("harbour.md", HARBOUR.encode())}, timeout=120).status_code == 201
    assert httpx.post(base + "/documents", json={"text": ZEBRAS, "id": "zebras-two", "format": "md"}, timeout=120).status_code == 201
    changed = HARBOUR.replace("forty-two", "thirty-one")
    assert httpx.put(base + "/documents/harbour", files={"file": ("harbour.md", changed.encode())}, timeout=120).status_code == 200
    assert httpx.delete(base + "/documents/notes", timeout=120).status_code == 200
    served = service.snapshot
    rebuilt = Service.open(settings_for(seeds, tmp_path / "rebuilt"), encoders).snapshot  # everything chunked and embedded again
    assert [(p.id, p.document, p.text, p.sentences) for p in rebuilt.passages] == [(p.id, p.document, p.text, p.sentences) for p in served.passages]
    assert rebuilt.index.embedded_keys == served.index.embedded_keys
    assert np.allclose(rebuilt.index.vectors.reconstruct_n(0, len(rebuilt.passages)),
                       served.index.vectors.reconstruct_n(0, len(served.passages)), atol=2e-3)
    for q in QUESTIONS:
        over_http = httpx.get(base + "/query", params={"q": q, "top_k": 5}, timeout=30).json()["passages"]
        assert [p["id"] for p in over_http] == [h.passage.id for h in service.query(service.parse(q, top_k=5), snapshot=rebuilt).hits], q
    for doc in ("harbour", "zebras-two"):
        assert httpx.delete(base + f"/documents/{doc}", timeout=120).status_code == 200
