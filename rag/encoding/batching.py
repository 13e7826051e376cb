"""Dynamic micro-batching of query embeddings (the design of text-embeddings-inference).

Concurrent requests each need one short forward pass; sixteen of them in one
batch cost far less than sixteen passes. `BatchingEncoder` wraps any encoder:
a caller's single text goes on a queue, one worker thread takes everything
queued when it is free (up to `max_batch` texts and a budget of padded
characters, so one long question does not make thirty short ones pay its
padding), embeds it in one call and hands each caller its row.

No request waits for a batch to fill: a lone request is embedded at once,
in the caller's own thread when no forward pass is running and nothing is
queued (no hand-off to the worker and back: two thread switches saved on
every request of a quiet server), and under load requests gather on the
queue while the running pass finishes. One forward pass runs at a time,
whoever runs it (`_forward`, a lock). Calls with several texts (index
builds, eval) bypass the queue.

Batches run through the inner encoder's `embed_questions` (rag.encoding.base:
word-piece vectors too, when it can give them); `embed_question` hands the
caller the whole embedding, `encode` its vector.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from rag.encoding.base import Encoder, QuestionEmbedding


class BatchingEncoder(Encoder):
    def __init__(self, inner: Encoder, max_batch: int = 32, max_padded_chars: int = 32 * 512):
        self.inner = inner
        self.kind, self.precision, self.spec = inner.kind, inner.precision, inner.spec
        self.dimension, self.max_seq_length = inner.dimension, inner.max_seq_length
        self.max_batch = max_batch
        self.max_padded_chars = max_padded_chars
        self.batches = 0  # how many forward passes served single-text calls (for tests and metrics)
        self.texts = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._carry: tuple[str, Future] | None = None
        self._forward = threading.Lock()  # held by whoever runs a forward pass: the worker or a lone caller
        self._worker_due = False  # the worker holds queued texts and waits for the lock: callers queue behind it
        self._worker = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
        self._worker.start()

    def encode(self, texts: list[str], **kwargs) -> np.ndarray:
        if len(texts) != 1:
            return self.inner.encode(texts, **kwargs)
        return self.embed_question(texts[0]).vector[None, :]

    def embed_question(self, question: str) -> QuestionEmbedding:
        if self._queue.empty() and not self._worker_due and self._forward.acquire(blocking=False):
            try:  # nothing running, nothing waiting: embed here, without waking the worker
                one = self.inner.embed_questions([question])[0]
                self.batches += 1
                self.texts += 1
                return one
            finally:
                self._forward.release()
        future: Future = Future()
        self._queue.put((question, future))
        return future.result()

    def embed_questions(self, texts) -> list[QuestionEmbedding]:
        texts = list(texts)
        return [self.embed_question(texts[0])] if len(texts) == 1 else self.inner.embed_questions(texts)

    def _next_batch(self, first: tuple[str, Future]) -> list[tuple[str, Future]]:
        batch = [first]
        longest = len(batch[0][0])
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            longest = max(longest, len(item[0]))
            if longest * (len(batch) + 1) > self.max_padded_chars:
                self._carry = item  # first in the next batch
                self._worker_due = True
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            first = self._carry or self._queue.get()
            self._carry = None
            self._worker_due = True
            with self._forward:  # after a lone caller's pass, if one is running
                self._worker_due = False
                batch = self._next_batch(first)  # what queued up meanwhile joins this batch
                try:
                    embedded = self.inner.embed_questions([text for text, _ in batch])
                except BaseException as exc:  # every waiting caller gets the error, the worker lives on
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                self.batches += 1
                self.texts += len(batch)
            for (_, future), one in zip(batch, embedded):
                future.set_result(one)
