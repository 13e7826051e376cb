"""Nothing a user puts in seeds/ can fail the build for not fitting the model window (issue 20): a title of
300 word pieces is shortened in what is embedded, a 50 kB single "word" is cut into passages that fit, and
the passages themselves stay whole slices of the document text."""

from __future__ import annotations

import json

import pytest

from rag.corpus.passage_text import embedding_texts, fit_heading, heading_text
from rag.service import Service
from tests.reliability_support import settings_for, write_tiny_seeds

LONG_TITLE = "Pharmacological characterization of " + " ".join(
    f"1-(5-chloro-6-(trifluoromethoxy)-1H-benzimidazol-2-yl)-{i}-piperidine" for i in range(12))
LONG_SECTION = " ".join(["Supplementary methods and tetrahydroisoquinoline derivatives"] * 30)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("window")
    seeds = write_tiny_seeds(root / "seeds")
    (seeds / "abstract.md").write_text(
        f"# {LONG_SECTION}\n\nWe measured the binding of the compound to the receptor in rat brain membranes. "
        "It was selective and potent, with nanomolar affinity.\n", encoding="utf-8")
    (seeds / "abstract.meta.json").write_text(json.dumps({"title": LONG_TITLE}), encoding="utf-8")
    (seeds / "blob.txt").write_text("A short opening paragraph.\n\n" + "x" * 50_000 + "\n\nThe end.\n", encoding="utf-8")
    return Service.open(settings_for(seeds, root / "index"), encoders), encoders


def test_the_build_succeeds_and_keeps_every_passage_whole(stranger):
    service, encoders = stranger
    documents = service.snapshot.documents
    assert {"abstract", "blob", "excerpt"} <= set(documents)
    for p in service.snapshot.passages:
        assert documents[p.document].text[p.start : p.end] == p.text
    blob = [p for p in service.snapshot.passages if p.document == "blob"]
    assert sum(p.text.count("x") for p in blob) == 50_000  # every character of the "word" is indexed, in pieces


def test_what_is_embedded_fits_the_window_and_says_the_title_first(stranger):
    service, encoders = stranger
    encoder = encoders.builder()
    limit = encoder.max_seq_length - 2
    snapshot = service.snapshot
    texts = embedding_texts(list(snapshot.passages), dict(snapshot.documents), encoder.count_tokens, limit)
    abstract = [(p, t) for p, t in zip(snapshot.passages, texts) if p.document == "abstract"]
    assert abstract
    for p, text in abstract:
        heading = fit_heading(snapshot.documents["abstract"], p, encoder.count_tokens, limit)
        assert encoder.count_tokens(heading) <= limit < encoder.count_tokens(heading_text(snapshot.documents["abstract"], p))
        assert heading.startswith("Pharmacological characterization of") and heading.endswith(p.text)
        assert "…" in heading
    # a passage that fits is embedded exactly as before: the rule changed nothing that built
    excerpt = next(p for p in snapshot.passages if p.document == "excerpt")
    assert fit_heading(snapshot.documents["excerpt"], excerpt, encoder.count_tokens, limit) == heading_text(snapshot.documents["excerpt"], excerpt)


def test_the_long_title_document_answers(stranger):
    service, _ = stranger
    result = service.query(service.parse("binding of the compound to the receptor in rat brain membranes", 3))
    assert result.hits[0].passage.document == "abstract"
