"""Index builds use the fp32 ONNX export (rag.encoding.build_encoder) and get what sentence-transformers gives.

* The session index was built with it; its passage and sentence vectors match sentence-transformers
  (cosine >= 0.999) on the seed article.
* Token counts (the chunker's budget) equal the sentence-transformers tokenizer's, so the passages are
  the same; repeated counts are served from memory; counting a text past the window warns nothing.
* Length-bucketed encoding returns rows in input order; batches are cut longest first within the row and
  word-piece budgets; sharing them among one-thread lanes gives the same vectors bit for bit as one session,
  and a lane's error reaches the caller.
* A build with progress draws bars for files, passages and sentences on stderr.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.index.build import IndexConfig, build_index
import rag.encoding.build_encoder as build_encoder_module
from rag.encoding.build_encoder import OnnxBuildEncoder
from rag.encoding.onnx_encoder import OnnxEncoder, length_buckets
from rag.corpus.documents import load_corpus
from rag.corpus.passage_text import embedding_texts
from rag.index.store import load_index


def test_the_session_index_was_built_with_onnx_and_matches_sentence_transformers(service, encoder, reference):
    assert isinstance(encoder, OnnxBuildEncoder) and encoder.precision == "fp32"
    index = service.snapshot.index
    texts = embedding_texts(index.passages, service.snapshot.documents)
    want = reference.encode(texts)
    got = index.vectors.reconstruct_n(0, index.vectors.ntotal)
    assert (want * got).sum(1).min() >= 0.999
    sentences = [service.snapshot.documents[p.document].text[s:e] for p in index.passages for s, e in p.sentences]
    assert len(sentences) == len(index.sentence_vectors)
    assert (reference.encode(sentences) * index.sentence_vectors).sum(1).min() >= 0.999


def test_token_counts_equal_the_reference_tokenizer(service, encoder, reference):
    doc = next(iter(service.snapshot.documents.values()))
    paragraphs = [p for p in doc.text.split("\n\n") if p.strip()] + ["", "¿Qué? — «1917» & naïve café", "x" * 3000]
    assert [encoder.count_tokens(p) for p in paragraphs] == [reference.count_tokens(p) for p in paragraphs]
    before = encoder.count_tokens.cache_info().hits
    encoder.count_tokens(paragraphs[0])
    assert encoder.count_tokens.cache_info().hits == before + 1


def test_counting_a_text_longer_than_the_window_warns_nothing(reference, caplog):
    """The chunker counts long paragraphs to cut them; transformers' warning that such a sequence "will result in
    indexing errors" (logged once per tokenizer) must not reach a user building with sentence-transformers."""
    reference._tokenizer.deprecation_warnings.clear()  # the warning is logged once per tokenizer: make this the first time
    with caplog.at_level("WARNING"):
        assert reference.count_tokens("the soviets and the provisional government " * 100) > reference.max_seq_length
    assert not [r for r in caplog.records if "indexing errors" in r.getMessage()]


def test_bucketed_encoding_keeps_input_order(encoder):
    texts = ["short", "a much longer text about the soviets and the provisional government " * 5, "mid length text here"] * 20
    together = encoder.encode(texts, batch_size=8)
    alone = np.vstack([encoder.encode([t]) for t in texts[:3]])
    assert together.shape == (60, encoder.dimension)
    assert (together[:3] * alone).sum(1).min() > 0.99999
    assert np.allclose(together[3:6], together[:3], atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_length_buckets_cut_longest_first_within_both_budgets():
    widths = [3, 10, 5, 10, 1, 7]
    # longest first: rows 1, 3 (10 wide), 5 (7), 2 (5), 0 (3), 4 (1); at most 3 rows and 20 padded word pieces
    assert length_buckets(widths, max_batch=3, max_tokens=20) == [[1, 3], [5, 2], [0, 4]]
    assert length_buckets(widths, max_batch=2, max_tokens=100) == [[1, 3], [5, 2], [0, 4]]
    assert length_buckets([50, 2], max_batch=8, max_tokens=10) == [[0], [1]]  # wider than the budget: alone, never empty
    assert length_buckets([], max_batch=8, max_tokens=10) == []


def test_lanes_give_the_same_vectors_bit_for_bit(encoder, monkeypatch):
    """Many texts are shared among one-thread sessions, few run on the one session over every core; the batches are
    the same, so are the vectors (an index updated around one document equals one built from nothing)."""
    texts = [f"passage {i} about the soviets " + "and the provisional government " * (i % 9) for i in range(90)]
    over_two = OnnxEncoder(encoder._onnx_path, encoder.spec.local_dir, threads=2)  # two threads on a machine of any size
    one = over_two.encode_bucketed(texts, max_batch=8)
    assert np.array_equal(encoder._encoder.encode_bucketed(texts, max_batch=8), one)
    made = []
    real = encoder._one_thread_sessions
    monkeypatch.setattr(encoder, "_one_thread_sessions", lambda count: made.append(count) or real(count))
    assert np.array_equal(encoder.encode(texts, batch_size=8), one) and not made  # below the threshold: one session
    monkeypatch.setattr(build_encoder_module, "LANE_MIN_TEXTS", 10)
    monkeypatch.setattr(encoder, "_cores", 2)  # lanes on a machine of any size
    assert np.array_equal(encoder.encode(texts, batch_size=8), one) and made == [2]  # shared among one-thread sessions


def test_a_lane_error_reaches_the_caller(encoder, monkeypatch):
    broke = threading.Event()

    class Broken:
        def _run(self, *args):
            broke.set()
            raise RuntimeError("lane out of memory")

    real_run = encoder._encoder._run

    def after_the_break(*args):  # the good lane waits until the broken one has run: it cannot take every batch first
        broke.wait(30)
        return real_run(*args)

    monkeypatch.setattr(encoder._encoder, "_run", after_the_break)
    texts = [f"text {i} " * (1 + i % 5) for i in range(40)]
    seen = []
    with pytest.raises(RuntimeError, match="lane out of memory"):
        encoder._encoder.encode_bucketed(texts, max_batch=2, lanes=[Broken()], on_batch=seen.append)
    assert sum(seen) < len(texts)  # the broken lane's batches never counted as embedded


def test_build_shows_files_passages_and_sentences_progress(tmp_path, seeds_copy, settings, encoder, capfd):
    docs = list(load_corpus(seeds_copy).documents)
    config = IndexConfig.of(settings.model_copy(update={"seeds_dir": seeds_copy}), docs, encoder.spec)
    build_index(tmp_path / "index", docs, config, encoder, progress=True)
    err = capfd.readouterr().err
    for label in ("chunking files", "embedding passages", "embedding sentences"):
        assert label in err, err[-2000:]
    assert load_index(tmp_path / "index", config.fingerprint()).passages
