"""A user's own mixed folder served end to end over HTTP: every format indexed with exact offsets (the text
GET /documents/{id} returns is what citations index into), PDF citations carry a page, and every other file
is listed in /ready with a reason, never silently dropped, never quoted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.service import Service
from tests.reliability_support import settings_for
from tests.corpus.test_formats import HTML, PARAGRAPHS, _pdf

SECRET = "TOP-SECRET-CONTENT-42"


@pytest.fixture(scope="module")
def client(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("own")
    seeds = root / "seeds"
    (seeds / "guides" / "deep").mkdir(parents=True)
    (seeds / "windows.txt").write_bytes(("Notes From Windows\r\n\r\n" + PARAGRAPHS[0] + "\r\n\r\n" + PARAGRAPHS[1] + "\r\n").encode())
    (seeds / "guides" / "rivers.html").write_text(HTML, encoding="utf-8")
    (seeds / "guides" / "deep" / "notes.md").write_text(
        '---\ntitle: "Field notes"\nauthor: [Ann, Bob]\npublished: 2020-03-04\n---\n# Deserts\n\nThird page text about deserts and their dunes, '
        "which move a few metres a year when the wind blows from one side.\n", encoding="utf-8")
    _pdf(seeds / "report.pdf", [[PARAGRAPHS[0]], ["Glaciers carve valleys over thousands of years, leaving moraines behind."]])
    (seeds / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + SECRET.encode())
    (seeds / "latin1.txt").write_bytes(("caf\xe9 " + SECRET).encode("latin-1"))
    (seeds / ".hidden.txt").write_text(SECRET, encoding="utf-8")
    service = Service.open(settings_for(seeds, root / "index"), encoders)
    with TestClient(create_app(service=service)) as test_client:
        yield test_client


def test_every_format_is_indexed_with_exact_offsets(client):
    documents = {d["id"]: d for d in client.get("/documents").json()}
    assert set(documents) == {"windows", "guides.rivers", "guides.deep.notes", "report"}
    assert documents["guides.deep.notes"]["author"] == "Ann, Bob" and documents["guides.deep.notes"]["published"] == "2020-03-04"
    texts = {i: client.get(f"/documents/{i}").json()["text"] for i in documents}
    for question in ("rivers and mountains", "deserts and dunes", "glaciers carve valleys", PARAGRAPHS[1][:60]):
        for passage in client.post("/query", json={"question": question, "top_k": 8}).json()["passages"]:
            c = passage["citation"]
            assert texts[c["document"]][c["start"] : c["end"]] == passage["text"]
            h = passage["highlight"]
            assert texts[c["document"]][h["start"] : h["end"]] == h["text"]
            assert (c["page"] is not None) == (c["document"] == "report")
    assert "\r" not in texts["windows"]


def test_a_pdf_passage_cites_its_page(client):
    top = client.post("/query", json={"question": "Which glaciers carve valleys and leave moraines?", "top_k": 1}).json()["passages"][0]
    c = top["citation"]
    assert c["document"] == "report" and c["page"] <= 2 <= c["page_end"]  # the passage reaches page 2
    assert top["highlight"]["text"].startswith("Glaciers carve valleys")


def test_other_files_are_listed_with_a_reason_and_never_quoted(client):
    ready = client.get("/ready").json()
    skipped = {s["path"]: s["reason"] for s in ready["skipped"]}
    assert set(skipped) == {"photo.png", "latin1.txt", ".hidden.txt"}
    assert "unsupported type" in skipped["photo.png"] and "UTF-8" in skipped["latin1.txt"] and "hidden" in skipped[".hidden.txt"]
    assert SECRET not in str(ready)


def test_a_filter_scopes_to_a_subfolder_document(client):
    body = client.post("/query", json={"question": "deserts", "filters": {"documents": ["guides.deep.notes"], "authors": ["bob"]}}).json()
    assert body["passages"] and {p["citation"]["document"] for p in body["passages"]} == {"guides.deep.notes"}
