"""The HTTP contract suite (tests/api/test_api.py) against Qdrant's embedded instance (fixtures: conftest.py here).

Every test of that file runs here unchanged but the one that starts `rag ask` in a bare environment (`env -i`):
a subprocess cannot open the embedded folder this process holds (local mode serves one process).
The environment names the engine too (RAG_VECTOR_STORE, RAG_VECTOR_STORE_URI), for the CLI tests, which read
their settings from it.
"""

import pytest

from tests.api.test_api import (  # noqa: F401 - collected here, on this folder's fixtures
    test_bad_input_is_a_clear_422,
    test_cli_ask_prints_citations,
    test_cli_reports_a_refused_index_in_one_line,
    test_documents_passages_and_neighbours,
    test_get_query_equals_post_query_in_every_mode,
    test_health_ready_and_openapi,
    test_query_returns_checkable_citations,
    test_the_readme_question_finds_the_landowners_paragraph_in_the_top_three,
    test_unanswerable_question_is_flagged,
    test_unknown_ids_are_404_with_a_message,
)


@pytest.fixture(autouse=True)
def engine_environment(monkeypatch, engine_dir):
    monkeypatch.setenv("RAG_VECTOR_STORE", "qdrant")
    monkeypatch.setenv("RAG_VECTOR_STORE_URI", str(engine_dir))


def test_the_suite_really_runs_on_the_engine(service, settings, engine_dir):
    """No FAISS file, and the retriever's store is the engine's collection, holding one point per passage."""
    snapshot = service.snapshot
    assert snapshot.retriever.store.kind == "qdrant" and snapshot.index.manifest["index_type"] == "qdrant"
    assert not list(settings.index_dir.glob("*.faiss")) and "vectors" not in snapshot.index.manifest["files"]
    store = snapshot.retriever.store
    assert store.client.count(settings.vector_store_collection).count == len(snapshot.passages) == 41
    assert service.info()["index_type"] == "qdrant"
