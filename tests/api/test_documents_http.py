"""Documents over HTTP (api.routers.documents, rag.uploads, Service.write_document/remove_document), against a
real uvicorn on 127.0.0.1 over a small corpus of its own: upload, replace and delete with what the answers cite,
the refusals, a failed upload that leaves everything as it was, a delete racing queries, and the streamed
GET /documents/{id}."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api import render
from api.app import create_app
from api.routers import documents as documents_router
from api.settings import ServerSettings
from rag import uploads
from rag.errors import IndexProblem, NotFound
from rag.service import Service
from tests.reliability_support import settings_for, write_tiny_seeds

pytestmark = pytest.mark.slow  # a live server over an index of its own

ZEBRAS = (
    "# Lighthouse log\n\nThe lighthouse keeper counted seven zebras on the shore at dawn, and wrote the number in "
    "the logbook next to the weather, as the harbour master had asked him to do every morning that winter.\n"
)
PENGUINS = (
    "# Lighthouse log\n\nThe lighthouse keeper counted eleven penguins on the pier at noon, and wrote the number in "
    "the logbook under the tide table, since nobody had ever seen penguins so far north before that spring.\n"
)
ODD_TEXT = 'Quotes " and \\ backslashes, é, 😀, a line separator \u2028 and tabs\t: the "escaped" keeper\'s notes.\n\n' * 8


@pytest.fixture(scope="module")
def live(tmp_path_factory, encoders):
    """A service over a small corpus of its own, served by uvicorn in a thread; yields (base url, service, seeds)."""
    root = tmp_path_factory.mktemp("documents-http")
    seeds = write_tiny_seeds(root / "seeds")
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


def cited(base: str, question: str) -> list[str]:
    response = httpx.get(base + "/query", params={"q": question, "top_k": 3}, timeout=30)
    assert response.status_code == 200, response.text
    return [p["citation"]["document"] for p in response.json()["passages"]]


def files(seeds) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(seeds.iterdir())}


def test_upload_replace_and_delete_change_what_answers_cite(live):
    base, service, seeds = live
    before = httpx.get(base + "/ready").json()["index_id"]

    added = httpx.post(base + "/documents", files={"file": ("Lighthouse Log.md", ZEBRAS.encode())}, timeout=60)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["id"] == "lighthouse-log" and body["status"] == "created" and body["source"] == "lighthouse-log.md"
    assert body["title"] == "Lighthouse log" and body["passages"] >= 1 and body["index_id"] != before
    assert (seeds / "lighthouse-log.md").read_bytes() == ZEBRAS.encode()
    assert cited(base, "How many zebras did the keeper count?")[0] == "lighthouse-log"
    assert httpx.get(base + "/documents/lighthouse-log").json()["text"] == ZEBRAS
    assert httpx.get(base + "/ready").json()["index_id"] == body["index_id"]

    # the same content again, under another file name: no second document
    again = httpx.post(base + "/documents", files={"file": ("copy.md", ZEBRAS.encode())}, timeout=60)
    assert again.status_code == 200 and again.json()["id"] == "lighthouse-log" and again.json()["status"] == "duplicate"
    assert not (seeds / "copy.md").exists()
    # other content under a taken id: refused, the file untouched
    taken = httpx.post(base + "/documents", files={"file": ("lighthouse-log.md", PENGUINS.encode())}, timeout=60)
    assert taken.status_code == 409 and "PUT /documents/lighthouse-log" in taken.json()["error"]
    assert (seeds / "lighthouse-log.md").read_bytes() == ZEBRAS.encode()

    replaced = httpx.put(base + "/documents/lighthouse-log", files={"file": ("log.md", PENGUINS.encode())}, timeout=60)
    assert replaced.status_code == 200 and replaced.json()["status"] == "replaced", replaced.text
    assert (seeds / "lighthouse-log.md").read_bytes() == PENGUINS.encode()
    assert httpx.get(base + "/documents/lighthouse-log").json()["text"] == PENGUINS
    zebra_hits = httpx.get(base + "/query", params={"q": "seven zebras on the shore at dawn", "top_k": 10}).json()["passages"]
    assert all("zebras" not in p["text"] for p in zebra_hits)  # the old version is never cited again

    removed = httpx.delete(base + "/documents/lighthouse-log", timeout=60)
    assert removed.status_code == 200 and removed.json() == {
        "id": "lighthouse-log", "status": "removed", "index_id": service.snapshot.id, "source": "lighthouse-log.md"
    }
    assert httpx.get(base + "/documents/lighthouse-log").status_code == 404
    assert "lighthouse-log" not in cited(base, "How many penguins did the keeper count?")
    assert "lighthouse-log" not in [d["id"] for d in httpx.get(base + "/documents").json()]
    assert sorted(p.name for p in seeds.iterdir()) == ["excerpt.meta.json", "excerpt.txt"]
    assert httpx.delete(base + "/documents/lighthouse-log").status_code == 404


def test_json_documents_keep_their_metadata_and_bad_ones_change_nothing(live):
    base, service, seeds = live
    unchanged, index_id = files(seeds), service.snapshot.id
    refusals = [
        ({"json": {"text": "Some words about the sea.", "id": "../../etc/passwd"}}, 422, "document id"),
        ({"json": {"text": "Some words about the sea.", "id": "excerpt"}}, 409, "PUT /documents/excerpt"),
        ({"json": {"text": "  \n ", "id": "blank"}}, 422, "empty"),
        ({"json": {"text": "Some words about the sea.", "id": "dated", "published": "2020-02-30"}}, 422, "published"),
        ({"json": {"text": "Some words.", "id": "x", "format": "pdf"}}, 422, "format"),
        ({"files": {"file": ("tool.exe", b"MZ\x90\x00")}}, 422, "not one that can be indexed"),
        ({"files": {"file": (".hidden.txt", b"words")}}, 422, "no document id"),
        ({"content": b"plain words", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"content": b'{"text": [[[', "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
    ]
    for request, status, words in refusals:
        response = httpx.post(base + "/documents", timeout=60, **request)
        assert response.status_code == status and words in response.json()["error"], (request, response.text)
    assert files(seeds) == unchanged and service.snapshot.id == index_id

    sent = {"text": "# Harbour notes\n\n" + ODD_TEXT, "title": "Harbour notes, winter", "author": "Ann Keeper", "published": "2021-03",
            "format": "md", "shelf": "B4"}
    created = httpx.post(base + "/documents", json=sent, timeout=60)
    assert created.status_code == 201 and created.json()["id"] == "harbour-notes-winter", created.text
    document = httpx.get(base + "/documents/harbour-notes-winter").json()
    assert (document["title"], document["author"], document["published"]) == ("Harbour notes, winter", "Ann Keeper", "2021-03")
    assert document["text"] == sent["text"]
    assert json.loads((seeds / "harbour-notes-winter.meta.json").read_text())["shelf"] == "B4"
    assert httpx.delete(base + "/documents/harbour-notes-winter").status_code == 200
    assert files(seeds) == unchanged


def test_writes_need_the_key_or_this_machine(live):
    _, service, seeds = live
    unchanged = files(seeds)
    with TestClient(create_app(service=service)) as foreign:  # its client is "testclient", not loopback
        refused = foreign.post("/documents", json={"text": "Words.", "id": "foreign"})
        assert refused.status_code == 403 and "this machine only" in refused.json()["error"]
        assert foreign.delete("/documents/excerpt").status_code == 403
    keyed = create_app(service=service, server_settings=ServerSettings(api_key="s3cret"))
    with TestClient(keyed) as client:
        assert client.post("/documents", json={"text": "Words.", "id": "nokey"}).status_code == 401
        assert client.delete("/documents/excerpt").status_code == 401
        allowed = client.post("/documents", content=b"x", headers={"content-type": "text/plain", "x-api-key": "s3cret"})
        assert allowed.status_code == 415  # past the key check; the body is what is refused
    assert files(seeds) == unchanged and "excerpt" in service.snapshot.documents


def test_a_failed_upload_leaves_seeds_and_the_served_index_as_they_were(live, encoders):
    _, service, seeds = live
    replica = Service.open(service.settings.model_copy(update={"auto_build": False}), encoders)  # serves, never builds
    unchanged, index_id = files(seeds), replica.snapshot.id
    with pytest.raises(IndexProblem, match="refusing to serve it"):
        replica.write_document(uploads.Upload(ZEBRAS.encode(), ".md", id="zebras"))
    with pytest.raises(IndexProblem):
        replica.remove_document("excerpt")
    assert files(seeds) == unchanged and replica.snapshot.id == index_id and sorted(replica.documents) == ["excerpt"]


def test_a_delete_racing_queries_is_never_cited_once_it_returns(live):
    base, service, seeds = live
    added = httpx.post(base + "/documents", json={"text": ZEBRAS, "id": "zebras", "format": "md"}, timeout=60)
    assert added.status_code == 201
    old = service.snapshot
    passage = next(p.id for p in old.passages if p.document == "zebras")
    question = service.parse("How many zebras did the lighthouse keeper count?", top_k=5)
    assert old.passage(passage) and service.query(question, snapshot=old).hits[0].passage.document == "zebras"

    deleted_at: list[float] = []
    stop = threading.Event()
    answers: list[tuple[float, list[str]]] = []  # (sent at, documents cited)

    def ask_until_stopped(client: httpx.Client) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            response = client.get(base + "/query", params={"q": "How many zebras did the keeper count?", "top_k": 5})
            assert response.status_code == 200
            answers.append((sent, [p["citation"]["document"] for p in response.json()["passages"]]))

    with ThreadPoolExecutor(3) as pool, httpx.Client(timeout=60) as client:
        askers = [pool.submit(ask_until_stopped, client) for _ in range(3)]
        try:
            time.sleep(0.3)
            assert client.delete(base + "/documents/zebras").status_code == 200
            deleted_at.append(time.monotonic())
            time.sleep(1.0)
        finally:
            stop.set()
        for asker in askers:
            asker.result()
    after = [docs for sent, docs in answers if sent > deleted_at[0]]
    assert after and all("zebras" not in docs for docs in after)
    # a request still running on the snapshot the document was in finds nothing of it once the delete is done
    assert all(hit.passage.document != "zebras" for hit in service.query(question, snapshot=old).hits)
    with pytest.raises(NotFound):
        old.passage(passage)
    with pytest.raises(NotFound):
        old.document("zebras")


def test_get_document_streams_its_text_as_json(live, monkeypatch):
    base, service, _ = live
    assert httpx.post(base + "/documents", json={"text": ODD_TEXT, "id": "odd"}, timeout=60).status_code == 201
    monkeypatch.setattr(documents_router, "TEXT_CHUNK", 97)  # many pieces, cut anywhere in the text
    response = httpx.get(base + "/documents/odd")
    assert response.status_code == 200 and response.headers.get("transfer-encoding") == "chunked"
    assert response.json() == render.document_out(service.snapshot.document("odd")).model_dump()
    assert response.json()["text"] == ODD_TEXT
    assert httpx.get(base + "/documents/no-such-thing").status_code == 404
    assert httpx.delete(base + "/documents/odd").status_code == 200
