"""The micro-batcher's lone-caller path (rag.encoding.batching): a question asked while nothing else is embedded
is embedded in the caller's own thread, with no hand-off to the batching thread; one asked while a forward pass
runs waits on the queue and joins the next batch."""

import threading
import time

import numpy as np

from rag.encoding.batching import BatchingEncoder


def test_a_lone_question_is_embedded_in_the_callers_thread(encoders, monkeypatch):
    batcher = encoders.query()
    assert isinstance(batcher, BatchingEncoder)
    threads = []
    real = batcher.inner.embed_questions

    def recorded(texts):
        threads.append(threading.current_thread())
        return real(texts)

    monkeypatch.setattr(batcher.inner, "embed_questions", recorded)
    vector = batcher.encode(["What is permanent revolution?"])[0]
    assert threads == [threading.current_thread()]
    np.testing.assert_allclose(vector, real(["What is permanent revolution?"])[0].vector, atol=1e-6)


def test_questions_asked_during_a_pass_wait_for_it_and_are_batched_together(encoders, monkeypatch):
    batcher = encoders.query()
    real = batcher.inner.embed_questions
    started, release = threading.Event(), threading.Event()
    calls = []

    def held(texts):
        calls.append((threading.current_thread().name, len(texts)))
        if len(calls) == 1:  # the first pass (a lone caller's) holds the model until the others have queued
            started.set()
            assert release.wait(30)
        return real(texts)

    monkeypatch.setattr(batcher.inner, "embed_questions", held)
    questions = ["Who wrote the article?", "When was it published?", "What happened in 1917?", "Who was Trotsky?"]
    got = {}
    first = threading.Thread(target=lambda: got.setdefault(0, batcher.encode([questions[0]])[0]))
    first.start()
    assert started.wait(30)
    others = [threading.Thread(target=lambda i=i: got.setdefault(i, batcher.encode([questions[i]])[0])) for i in (1, 2, 3)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 30
    while not (batcher._worker_due and batcher._queue.qsize() == 2):  # all three behind the pass: one taken by the worker
        assert time.monotonic() < deadline, "the questions never queued"
        time.sleep(0.01)
    release.set()
    for t in [first, *others]:
        t.join(30)
    assert calls[0][1] == 1 and calls[0][0] != "embed-batcher"
    assert calls[1:] == [("embed-batcher", 3)]  # the three waiting questions: one batch, on the batching thread
    for i, q in enumerate(questions):
        assert float(got[i] @ real([q])[0].vector) > 0.9998
