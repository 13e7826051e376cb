"""The Qdrant store behind the seam (rag.index.qdrant_store), on its embedded local mode and a ten-paragraph corpus:
the same rankings as the default store, filters inside the engine, the document lifecycle (unchanged passages
kept, edited ones replaced, removed ones deleted), and an engine that lost the index refused or rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from rag.errors import IndexProblem  # noqa: E402
from rag.index.build import build  # noqa: E402
from rag.service import Service  # noqa: E402
from tests.reliability_support import manifest, settings_for, write_tiny_seeds  # noqa: E402

QUESTIONS = ("Why was the Russian bourgeoisie unable to lead?", "Who led the workers in 1917?", "what did the Mensheviks believe")


@pytest.fixture(scope="module")
def pair(tmp_path_factory, encoders):
    """The same corpus served by the default store and by the engine."""
    root = tmp_path_factory.mktemp("pair")
    seeds = write_tiny_seeds(root / "seeds")
    faiss = Service.open(settings_for(seeds, root / "faiss"), encoders)
    engine = Service.open(settings_for(seeds, root / "engine", vector_store="qdrant", vector_store_uri=str(root / "qdrant")), encoders)
    return faiss, engine


def ranked(service, question, mode, filters=None):
    result = service.query(service.parse(question, 5, mode, filters))
    return [h.passage.id for h in result.hits], [h.score for h in result.hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_the_engine_ranks_as_the_default_store(pair, mode):
    faiss, engine = pair
    assert engine.snapshot.retriever.store.kind == "qdrant" and faiss.snapshot.retriever.store.kind == "faiss"
    for question in QUESTIONS:
        (ids_f, scores_f), (ids_e, scores_e) = ranked(faiss, question, mode), ranked(engine, question, mode)
        assert ids_e == ids_f, question
        np.testing.assert_allclose(scores_e, scores_f, atol=1e-3)


def test_bm25_in_the_engine_is_bm25s(pair):
    """Qdrant's IDF modifier over the client's tf part gives bm25s's (Lucene) scores on a fresh build."""
    faiss, engine = pair
    question = QUESTIONS[0]
    expected = faiss.snapshot.retriever.lexical.scores(question)
    hits = engine.snapshot.retriever.store.lexical_search(question, 100, None)
    assert len(hits.positions) == int((expected > 0).sum())
    np.testing.assert_allclose(hits.scores_of(np.arange(len(expected))), expected, rtol=1e-4)


def test_filters_are_applied_inside_the_engine(pair):
    faiss, engine = pair
    sections = {p.section for p in engine.snapshot.passages}
    section = sorted(s for s in sections if s)[0]
    for filters in ({"sections": [section]}, {"documents": ["excerpt"]}, {"authors": ["nobody"]}):
        for mode in ("hybrid", "dense", "lexical"):
            ids, _ = ranked(engine, QUESTIONS[0], mode, filters)
            assert ids == ranked(faiss, QUESTIONS[0], mode, filters)[0], (filters, mode)
            allowed = engine.snapshot.allowed(engine.parse("x", filters=filters).filters)
            positions = [engine.snapshot.retriever.position[i] for i in ids]
            assert all(allowed[positions]), (filters, mode)
    assert ranked(engine, QUESTIONS[0], "hybrid", {"authors": ["nobody"]})[0] == []


NOTES = "A second document about the Paris Commune of 1871 and its lessons for later revolutions. " * 5
EDITED = "A second document about the German revolution of 1918 and its lessons for later uprisings. " * 5  # as many terms


def test_a_rebuild_adds_what_changed_and_removes_what_is_gone(tmp_path, encoders):
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc=NOTES)
    settings = settings_for(seeds, tmp_path / "index", vector_store="qdrant", vector_store_uri=str(tmp_path / "qdrant"))
    first = build(settings, encoders)
    store = Service.open(settings, encoders).snapshot.retriever.store
    passages = first.manifest["counts"]["passages"]
    assert first.manifest["store_state"]["added"] == passages == store.client.count("rag_passages").count

    (seeds / "notes.txt").write_text(EDITED, encoding="utf-8")  # one passage edited, same length: the rest is kept
    second = build(settings, encoders)
    assert second.built and second.manifest["store_state"]["added"] == 1
    assert store.client.count("rag_passages").count == passages  # the old version of the edited passage is gone
    assert "German revolution" in ranked_texts(Service.open(settings, encoders), "German revolution of 1918")[0]

    (seeds / "notes.txt").unlink()
    (seeds / "notes.meta.json").unlink()
    third = build(settings, encoders)
    assert third.built and store.client.count("rag_passages").count == third.manifest["counts"]["passages"] == passages - 1
    served = Service.open(settings, encoders)
    assert {p.document for p in served.snapshot.passages} == {"excerpt"}
    assert "German revolution" not in " ".join(ranked_texts(served, "German revolution of 1918"))


def ranked_texts(service, question):
    return [h.passage.text for h in service.query(service.parse(question, 5, "hybrid")).hits]


def test_an_engine_that_lost_the_index_is_refused_or_rebuilt(tmp_path, seeds_copy, encoders):
    uri = str(tmp_path / "qdrant")
    settings = settings_for(seeds_copy, tmp_path / "index", vector_store="qdrant", vector_store_uri=uri)
    build(settings, encoders)
    Service.open(settings, encoders).snapshot.retriever.store.client.delete_collection("rag_passages")
    with pytest.raises(IndexProblem, match="does not exist.*refusing to serve"):
        Service.open(settings_for(seeds_copy, tmp_path / "index", vector_store="qdrant", vector_store_uri=uri, auto_build=False), encoders)
    rebuilt = Service.open(settings, encoders)
    assert rebuilt.snapshot.retriever.store.client.count("rag_passages").count == len(rebuilt.snapshot.passages)


def test_switching_the_store_makes_the_index_stale(tmp_path, seeds_copy, encoders):
    index = tmp_path / "index"
    build(settings_for(seeds_copy, index), encoders)
    faiss_manifest = manifest(index)
    with pytest.raises(IndexProblem, match="vector store"):
        Service.open(settings_for(seeds_copy, index, vector_store="qdrant", vector_store_uri=str(tmp_path / "q"), auto_build=False), encoders)
    report = build(settings_for(seeds_copy, index, vector_store="qdrant", vector_store_uri=str(tmp_path / "q")), encoders)
    assert report.built and report.manifest["store"] == {"kind": "qdrant", "collection": "rag_passages"}
    assert "vectors" in faiss_manifest["files"] and "vectors" not in report.manifest["files"]
    assert not list(index.glob("*.faiss")), "the FAISS file of the old build is removed with it"


def test_an_engine_that_cannot_be_reached_is_one_clear_error(tmp_path, seeds_copy, encoders):
    """A URL nobody answers (a closed port on this machine) or a scheme that is not http(s): IndexProblem, no traceback."""
    for uri, words in (("http://127.0.0.1:9", "cannot reach Qdrant at http://127.0.0.1:9"), ("ftp://example/x", "neither an http")):
        with pytest.raises(IndexProblem, match=words):
            Service.open(settings_for(seeds_copy, tmp_path / "index", vector_store="qdrant", vector_store_uri=uri), encoders)
