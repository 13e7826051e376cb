"""The verdict with the verifier switched on (RAG_VERIFIER=true) and off (the default), on the real index."""

import pytest

from rag.service import make_snapshot

ANSWERABLE = "Why did Trotsky think the bourgeoisie could not lead the revolution?"


@pytest.fixture(scope="module")
def verified(service):
    """The served index with a retriever that reads the evidence with the verifier."""
    settings = service.settings.model_copy(update={"verifier": True})
    snap = service.snapshot
    return make_snapshot(settings, list(snap.documents.values()), snap.index, snap.retriever.encoder, snap.skipped)


def test_the_default_verdict_is_the_bi_encoder_one(service):
    result = service.query(service.parse(ANSWERABLE))
    assert result.features.verifier is None and len(result.features.values()) == 2
    assert "verify" in result.timings_ms and service.snapshot.info()["verifier"]["used"] is False


def test_switched_on_the_verifier_reads_the_top_windows_and_joins_the_verdict(service, verified):
    query = service.parse(ANSWERABLE)
    plain, read = service.snapshot.retriever.search(query), verified.retriever.search(query)
    assert read.features.verifier is not None and len(read.features.values()) == 3
    assert read.features.answer_type == plain.features.answer_type and read.features.relation_cos == plain.features.relation_cos
    assert 1 <= len(read.windows) <= 3 and all(w.passage_index in {verified.retriever.position[h.passage.id] for h in read.hits[:3]} for w in read.windows)
    # the ranking and the highlights are the bi-encoder's either way; only the verdict reads the verifier
    assert [h.passage.id for h in read.hits] == [h.passage.id for h in plain.hits]
    assert [h.highlight for h in read.hits] == [h.highlight for h in plain.hits]
    assert 0.0 <= read.confidence <= 1.0 and read.confidence != plain.confidence
    assert verified.info()["verifier"]["used"] is True


def test_a_question_longer_than_the_models_window_is_answered_with_a_warning(service, verified):
    long = "Why did Trotsky think the bourgeoisie could not lead? " + "And what did the workers do then, in the cities? " * 60
    for retriever in (service.snapshot.retriever, verified.retriever):
        result = retriever.search(service.parse(long[:1990]))
        assert result.warnings and "longer than the model reads" in result.warnings[0]
    assert service.snapshot.retriever.search(service.parse(ANSWERABLE)).warnings == ()
