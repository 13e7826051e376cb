"""The verdict with and without the verifier, on the real index: off by default, read when a question asks
(`verify`) or for every question (RAG_VERIFIER=true), and refused, with a warning, where it cannot be read."""

import shutil

import pytest

from rag.encoding import verifier as verifiers
from rag.query import verdict as V
from rag.query.request import Query
from rag.query.retrieval import Retriever
from rag.service import make_snapshot

ANSWERABLE = "Why did Trotsky think the bourgeoisie could not lead the revolution?"


@pytest.fixture(scope="module")
def verified(service):
    """The served index with RAG_VERIFIER=true: every question's evidence is read by the verifier."""
    settings = service.settings.model_copy(update={"verifier": True})
    snap = service.snapshot
    return make_snapshot(settings, list(snap.documents.values()), snap.index, snap.retriever.encoder, snap.skipped)


def retriever_like(retriever, slot, status=None) -> Retriever:
    """The same index and encoder with another verifier slot (or none)."""
    return Retriever(retriever.index, retriever.documents, retriever.lexical, retriever.encoder, verifier=slot, verifier_status=status)


def test_the_default_verdict_is_the_bi_encoder_one(service):
    result = service.query(service.parse(ANSWERABLE))
    assert result.features.verifier is None and len(result.features.values()) == 2 and not result.verified
    status = service.snapshot.info()["verifier"]
    assert "verify" in result.timings_ms and status["used"] is False and status["on_request"] is True
    assert "verify=true" in status["reason"] and result.warnings == ()


def test_a_question_that_asks_is_read_by_the_verifier(service):
    plain, read = service.query(service.parse(ANSWERABLE)), service.query(service.parse(ANSWERABLE, verify=True))
    assert read.verified and read.features.verifier is not None and len(read.features.values()) == 3
    assert read.features.answer_type == plain.features.answer_type and read.features.relation_cos == plain.features.relation_cos
    retriever = service.snapshot.retriever
    assert 1 <= len(read.windows) <= 3 and all(w.passage_index in {retriever.position[h.passage.id] for h in read.hits[:3]} for w in read.windows)
    # the ranking and the highlights are the bi-encoder's either way; only the verdict reads the verifier
    assert [h.passage.id for h in read.hits] == [h.passage.id for h in plain.hits]
    assert [h.highlight for h in read.hits] == [h.highlight for h in plain.hits]
    assert 0.0 <= read.confidence <= 1.0 and read.confidence != plain.confidence and read.warnings == ()
    # the verified verdict: the bi-encoder verdict's probability blended with the verified model's (rag.query.verdict)
    blend = (1 - V.VERIFIED_WEIGHT) * V.MODEL.probability(*plain.features.values()) + V.VERIFIED_WEIGHT * V.MODEL_VERIFIED.probability(*read.features.values())
    assert read.confidence == round(blend, 4) and plain.confidence == round(V.MODEL.probability(*plain.features.values()), 4)
    # once loaded, /ready names the weights it reads (still not for every question)
    status = service.snapshot.info()["verifier"]
    assert status["used"] is False and status["sha256"] == verifiers.shipped(str(service.model.local_dir), service.model.weights_sha256).card.sha256


def test_switched_on_every_question_is_verified_unless_it_says_no(service, verified):
    assert verified.info()["verifier"]["used"] is True and "reason" not in verified.info()["verifier"]
    asked = verified.retriever.search(service.parse(ANSWERABLE, verify=True))
    by_default = Query.parse(ANSWERABLE, settings=service.settings.model_copy(update={"verifier": True}))
    assert by_default.verify is None  # the question said nothing: the service's setting decides
    read = verified.retriever.search(by_default)
    assert read.verified and read.confidence == asked.confidence and asked.verified
    said_no = verified.retriever.search(service.parse(ANSWERABLE, verify=False))
    assert not said_no.verified and said_no.confidence == service.query(service.parse(ANSWERABLE)).confidence


def test_another_model_has_no_verifier_and_a_question_that_asks_is_told(service):
    other_spec = type(service.model)("some/other-model", "some/other-model", None, None)
    slot, status = verifiers.for_model(other_spec, True)
    assert slot is None and status["used"] is False and status["on_request"] is False
    other = retriever_like(service.snapshot.retriever, slot, status)
    result = other.search(service.parse(ANSWERABLE, verify=True))
    assert not result.verified and result.features.verifier is None
    assert result.warnings and "verify was asked for" in result.warnings[0] and "default model" in result.warnings[0]
    assert result.confidence == service.query(service.parse(ANSWERABLE)).confidence


def test_weights_that_fail_their_check_are_never_read_and_the_question_is_told(service, tmp_path):
    copy = tmp_path / "verifier"
    shutil.copytree(verifiers.ASSET_DIR, copy)
    weights = copy / verifiers.Card.read(copy / verifiers.CARD_NAME).file
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    loads = []

    def load():
        loads.append(1)
        return verifiers.Verifier(copy, service.model.local_dir, service.model.weights_sha256)

    tampered = retriever_like(service.snapshot.retriever, verifiers.VerifierSlot(load, by_default=False))
    for _ in range(2):
        result = tampered.search(service.parse(ANSWERABLE, verify=True))
        assert not result.verified and result.features.verifier is None
        assert result.warnings and "sha256" in result.warnings[0] and "bi-encoder" in result.warnings[0]
    assert len(loads) == 1  # the failure is remembered, the weights not read again
    status = tampered.verifier_status()
    assert status["used"] is False and status["on_request"] is False and "sha256" in status["reason"]
    with pytest.raises(verifiers.ModelError, match="sha256"):  # switched on for every question, the start stops
        verifiers.VerifierSlot(load, by_default=True)


def test_a_question_longer_than_the_models_window_is_answered_with_a_warning(service):
    long = "Why did Trotsky think the bourgeoisie could not lead? " + "And what did the workers do then, in the cities? " * 60
    for verify in (False, True):
        result = service.query(service.parse(long[:1990], verify=verify))
        assert result.warnings and "longer than the model reads" in result.warnings[-1]
    assert service.query(service.parse(ANSWERABLE)).warnings == ()


def test_a_question_that_does_not_ask_is_read_as_the_service_is_set_and_never_warned(service):
    """RAG_VERIFIER=true with another model: no verifier, and no warning for questions that asked nothing."""
    other_spec = type(service.model)("some/other-model", "some/other-model", None, None)
    other = retriever_like(service.snapshot.retriever, *verifiers.for_model(other_spec, True))
    switched_on = service.settings.model_copy(update={"verifier": True})
    result = other.search(Query.parse(ANSWERABLE, settings=switched_on))
    assert not result.verified and result.warnings == ()


def test_with_verify_on_request_off_a_question_that_asks_is_told_and_nothing_is_loaded(service):
    loads = []
    slot = verifiers.VerifierSlot(lambda: loads.append(1), by_default=False, on_request=False)
    result = retriever_like(service.snapshot.retriever, slot).search(service.parse(ANSWERABLE, verify=True))
    assert not result.verified and loads == []
    assert result.warnings and "RAG_VERIFY_ON_REQUEST=false" in result.warnings[0]
    assert slot.status() == {"used": False, "on_request": False, "reason": verifiers.NOT_ON_REQUEST}
    _, status = verifiers.for_model(service.model, False, on_request=False)  # as the settings make it
    assert status == {"used": False, "on_request": False, "reason": verifiers.NOT_ON_REQUEST}


def test_the_first_questions_that_ask_at_once_load_the_verifier_once(service):
    import threading
    import time

    loads, shipped = [], verifiers.shipped(str(service.model.local_dir), service.model.weights_sha256)

    def slow_load():
        loads.append(1)
        time.sleep(0.2)  # long enough for every thread to arrive while the first one loads
        return shipped

    slot = verifiers.VerifierSlot(slow_load, by_default=False)
    retriever = retriever_like(service.snapshot.retriever, slot)
    results, start = [], threading.Barrier(4)

    def ask():
        start.wait()
        results.append(retriever.search(service.parse(ANSWERABLE, verify=True)))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(results) == 4 and all(r.verified for r in results)
    # one verifier, one reading: the same confidence up to the question's own forward, which the micro-batcher may
    # run beside the others (its vector moves in the seventh decimal: at most one step of the 4-decimal rounding)
    confidences = [r.confidence for r in results]
    assert max(confidences) - min(confidences) <= 1e-4 + 1e-9


def test_a_reload_keeps_the_one_verifier_of_the_process(service):
    snap = service.snapshot
    again = make_snapshot(service.settings, list(snap.documents.values()), snap.index, snap.retriever.encoder, snap.skipped)
    assert again.retriever.verifier is snap.retriever.verifier
