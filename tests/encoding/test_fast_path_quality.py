"""The fast query path changes speed, not answers.

* The service with the fp32 ONNX query encoder (RAG_QUERY_PRECISION=fp32) and the same service
  with sentence-transformers (RAG_ENCODER=torch), over the same index, return the same top 5 in
  hybrid mode for every eval question; a rare tie flipped by float noise is tolerated only if
  recall@5 stays within 0.01. (The faster int8 default is held to the retrieval gate instead:
  tests/test_encoder_gate.py.)
* The micro-batcher (rag.encoding.batching.BatchingEncoder) hands every concurrent caller its own vector,
  equal to what a lone call returns, and really does batch them.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.encoding.batching import BatchingEncoder
from eval.evaluation import evaluate, load_questions, service_system
from rag.service import Service

pytestmark = pytest.mark.slow  # live servers, subprocesses, browsers or whole-set runs: `make test`, not `make test-fast`

QUESTIONS = load_questions()


@pytest.fixture(scope="module")
def fp32_service(settings, service, encoders) -> Service:
    """The same index (built by the session `service`), queried through the verified fp32 ONNX export."""
    return Service.open(settings.model_copy(update={"query_precision": "fp32"}), encoders.with_query_encoder("auto", "fp32"))


@pytest.fixture(scope="module")
def torch_service(settings, service, encoders) -> Service:
    """The same index (built by the session `service`), queried through sentence-transformers."""
    encoders.reference()
    return Service.open(settings.model_copy(update={"encoder": "torch"}), encoders.with_query_encoder("torch"))


def test_the_two_services_use_different_encoders(fp32_service, torch_service):
    assert fp32_service.info()["encoder"] == "onnx"
    assert fp32_service.snapshot.retriever.encoder.precision == "fp32"
    assert torch_service.info()["encoder"] == "torch"
    assert fp32_service.info()["index_id"] == torch_service.info()["index_id"]


def test_onnx_and_torch_rank_every_eval_question_alike(fp32_service, torch_service):
    service = fp32_service
    differing = []
    for q in QUESTIONS:
        onnx_ids = [h.passage.id for h in service.query(service.parse(q.question, 5, "hybrid")).hits]
        torch_ids = [h.passage.id for h in torch_service.query(torch_service.parse(q.question, 5, "hybrid")).hits]
        if onnx_ids != torch_ids:
            differing.append((q.id, onnx_ids, torch_ids))
    if not differing:
        return
    # Float noise may flip a near tie; allowed only rarely and only if quality is unchanged.
    assert len(differing) <= max(1, len(QUESTIONS) // 50), differing
    report = evaluate({"onnx": service_system(service, "hybrid"), "torch": service_system(torch_service, "hybrid")}, QUESTIONS)
    r5 = {name: groups["all"]["r@5"] for name, groups in report["systems"].items()}
    assert abs(r5["onnx"] - r5["torch"]) <= 0.01, (r5, differing)


def test_concurrent_queries_are_batched_and_get_their_own_vectors(service):
    batcher = service.snapshot.retriever.encoder
    assert isinstance(batcher, BatchingEncoder)
    texts = [q.question for q in QUESTIONS[:64]]
    alone = np.stack([batcher.encode([t])[0] for t in texts])  # one at a time: each is its own batch

    n_threads = 16
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)
    batches_before, texts_before = batcher.batches, batcher.texts

    def worker(indices: range) -> None:
        try:
            start.wait(timeout=30)
            for i in indices:
                got[i] = batcher.encode([texts[i]])[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(range(k, len(texts), n_threads),)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a caller never got its vector"
    assert not errors, errors

    batches = batcher.batches - batches_before
    embedded = batcher.texts - texts_before
    assert embedded >= len(texts)
    assert batches < embedded, f"{embedded} texts in {batches} forward passes: nothing was batched"

    together = np.stack([got[i] for i in range(len(texts))])
    # Padding to the longest text in a batch changes only float rounding, never which vector is whose.
    # fp32: cosine 0.99999; int8 (block-wise activation quantization, batched kernels differ from the
    # single-row one): 0.9999, and a batched int8 vector is as close to fp32 as a lone one (eval/bench_encoder.py).
    fp32 = getattr(batcher.inner, "precision", "fp32") == "fp32"
    cosines = np.sum(together * alone, axis=1)
    assert cosines.min() > (0.99999 if fp32 else 0.9998), cosines.min()
    if fp32:
        np.testing.assert_allclose(together, alone, atol=1e-4)
    assert (np.argmax(together @ alone.T, axis=1) == np.arange(len(texts))).all()
