"""The index's load path at scale: float16 sentence vectors memory-mapped after a streamed checksum,
the FAISS index read as the only copy of the passage vectors, BM25 top-k by partial sort, lazy term sets."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import Stemmer
import pytest

from rag.index import store
from rag.errors import IndexCorrupt
from rag.query.ranking import top_indices
from rag.query.retrieval import Retriever
from rag.service import Service
from tests.reliability_support import manifest, settings_for, write_tiny_seeds

QUESTIONS = ("What did Trotsky observe about foreign capital?", "Mensheviks feudal economy", "who led the bourgeois revolution")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("mmap")
    seeds = write_tiny_seeds(root / "seeds")
    service = Service.open(settings_for(seeds, root / "index"), encoders)
    return service, root / "index"


def test_sentence_vectors_are_a_read_only_memory_map_of_the_verified_file(tiny):
    service, index_dir = tiny
    loaded = store.load_index(index_dir, None)
    name = manifest(index_dir)["files"]["sentences"]["name"]
    vectors = loaded.sentence_vectors
    assert isinstance(vectors, np.memmap) and vectors.dtype == np.float16
    assert vectors.filename == str((index_dir / name).resolve())
    assert not vectors.flags.writeable and not loaded.sentence_rows.flags.writeable
    assert vectors.shape == (int(loaded.sentence_rows[:, 1].sum()), loaded.vectors.d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.sentence_vectors = None  # type: ignore[misc]
    # the service serves from the map, not a copy
    assert isinstance(service.snapshot.index.sentence_vectors, np.memmap)


@pytest.mark.parametrize("damage", ["flip-last-byte", "truncate", "append"])
def test_a_damaged_sentences_file_is_refused_before_it_is_mapped(tiny, tmp_path, damage):
    import shutil

    _, pristine = tiny
    index_dir = tmp_path / "index"
    shutil.copytree(pristine, index_dir)
    path = index_dir / manifest(index_dir)["files"]["sentences"]["name"]
    data = bytearray(path.read_bytes())
    if damage == "flip-last-byte":
        data[-1] ^= 0x40  # inside the float data: a header check alone would not see it
    elif damage == "truncate":
        data = data[:-2]
    else:
        data += b"\0\0"
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="does not match its manifest checksum"):
        store.load_index(index_dir, None)


def test_the_checksum_is_streamed_in_bounded_chunks():
    data = np.random.default_rng(0).bytes(3 * store.HASH_CHUNK + 123)
    reads: list[int] = []

    class Recording(io.BytesIO):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    f = Recording(data)
    assert store.file_sha256(f) == hashlib.sha256(data).hexdigest()
    assert reads and all(0 < size <= store.HASH_CHUNK for size in reads)
    assert f.tell() == 0  # rewound for the parser that follows


def test_float16_sentence_vectors_rank_and_highlight_like_float32(tiny):
    service = tiny[0]
    snapshot = service.snapshot
    as_float32 = dataclasses.replace(snapshot.index, sentence_vectors=np.asarray(snapshot.index.sentence_vectors, dtype=np.float32))
    reference = Retriever(as_float32, snapshot.documents, snapshot.retriever.lexical, snapshot.retriever.encoder)
    for question in QUESTIONS:
        for mode in ("hybrid", "dense"):
            got = snapshot.retriever.search(service.parse(question, 5, mode))
            want = reference.search(service.parse(question, 5, mode))
            assert [h.passage.id for h in got.hits] == [h.passage.id for h in want.hits], (question, mode)
            assert [h.highlight for h in got.hits] == [h.highlight for h in want.hits], (question, mode)
            assert [h.score for h in got.hits] == pytest.approx([h.score for h in want.hits], abs=2e-2)


def test_pool_vectors_come_from_the_faiss_index_without_a_copy(tiny):
    retriever = tiny[0].snapshot.retriever
    assert not hasattr(retriever, "passage_vectors")
    pool = np.array([0, 2, len(retriever.passages) - 1], dtype=np.int64)
    every = retriever.index.vectors.reconstruct_n(0, retriever.index.vectors.ntotal)
    np.testing.assert_array_equal(retriever.ranker.passage_vectors(pool), every[pool])
    assert retriever.ranker.passage_vectors(np.array([], dtype=np.int64)).shape == (0, every.shape[1])


def test_term_sets_are_computed_lazily_for_what_a_query_touches(tiny):
    service = tiny[0]
    snapshot = service.snapshot
    retriever = Retriever(snapshot.index, snapshot.documents, snapshot.retriever.lexical, snapshot.retriever.encoder)
    terms = retriever.judge.sentences.terms
    total = len(snapshot.index.sentence_vectors)
    assert terms.computed == 0  # nothing tokenized at load
    retriever.search(service.parse(QUESTIONS[0], 1, "dense"))
    touched = terms.computed
    assert 0 < touched < total  # only the sentences of the passages this query read (top three and the hit)
    retriever.search(service.parse(QUESTIONS[0], 1, "dense"))
    assert terms.computed == touched  # the same query again: all from the cache
    p = retriever.passages[1]
    s, e = p.sentences[0]
    row = int(retriever.index.sentence_rows[1, 0])
    assert terms[row] == retriever.lexical.terms(p.text[s - p.start : e - p.start])


@pytest.mark.parametrize("seed", range(5))
def test_top_indices_is_a_stable_full_sort_cut_at_k(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=2_000).astype(np.float32)  # many ties, at the cut too
    for k in (1, 7, 100, 1_999, 2_000, 5_000):
        np.testing.assert_array_equal(top_indices(scores, k), np.argsort(-scores, kind="stable")[:k])


def test_terms_are_exactly_what_bm25s_tokenize_makes(tiny):
    import bm25s

    from rag.index.lexical import STEMMER, STOPWORDS, TOKEN

    lexical = tiny[0].snapshot.retriever.lexical
    stemmer = Stemmer.Stemmer(STEMMER)
    texts = [p.text[s - p.start : e - p.start] for p in tiny[0].snapshot.passages for s, e in p.sentences]
    texts += ["", "Why did how what", "ÉCOLE Straße naïve café’s 1917 x y zz", "The Mensheviks' feudal-economy ... theses!",
              "Lumen 3.7.1 (not 3.7.0) at 192.168.0.1 costs 10.25 euros, v2.4 or 4."]
    for text in texts:
        expected = set(bm25s.tokenize([text], stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False, return_ids=False)[0])
        assert lexical.terms(text) == expected, text


def test_the_stop_words_and_tokens_are_bm25s_own(tiny):
    """rag.index.lexical spells out bm25s's English stop words and tokenizes without bm25s (which would load
    scipy at every start): both equal bm25s's, on every sentence of the index and on awkward text."""
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    from rag.index.lexical import STEMMER, STOPWORDS, TOKEN, tokens
    from rag.index import lexical

    assert lexical.STOPWORDS_EN == tuple(STOPWORDS_EN)
    texts = [p.text[s - p.start : e - p.start] for p in tiny[0].snapshot.passages for s, e in p.sentences]
    texts += ["", "Why did how what", "ÉCOLE Straße naïve café’s 1917 x y zz", "The Mensheviks' feudal-economy ... theses!",
              "Lumen 3.7.1 (not 3.7.0) at 192.168.0.1 costs 10.25 euros, v2.4 or 4.",
              "revolution revolutions revolutionary Revolution"]
    expected = bm25s.tokenize(texts, stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=Stemmer.Stemmer(STEMMER), show_progress=False, return_ids=False)
    assert tokens(texts) == expected
    assert [tokens([t])[0] for t in texts] == expected


def test_bm25_scores_equal_bm25s_own(tiny):
    import bm25s

    from rag.index.lexical import STOPWORDS, TOKEN

    from rag.corpus.passage_text import heading_text
    from rag.index.lexical import BM25, STEMMER

    snapshot = tiny[0].snapshot
    lexical = snapshot.retriever.lexical
    # bm25s's own index over the same texts, built here with bm25s's own API (not the service's copy)
    stemmer = Stemmer.Stemmer(STEMMER)
    texts = [heading_text(snapshot.documents[p.document], p) for p in snapshot.passages]
    reference = bm25s.BM25(**BM25)
    reference.index(bm25s.tokenize(texts, stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False), show_progress=False)
    for question in (*QUESTIONS, "revolution revolution Trotsky", "zebra quartz", "the of and"):
        terms = bm25s.tokenize([question], stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False, return_ids=False)[0]
        expected = np.asarray(reference.get_scores(terms), dtype=np.float32) if terms else np.zeros(len(texts), np.float32)
        np.testing.assert_array_equal(lexical.scores(question), expected)


def test_faiss_runs_single_threaded_only_in_the_querying_thread(tiny):
    import threading

    import faiss

    before = faiss.omp_get_max_threads()
    seen = []
    worker = threading.Thread(target=lambda: (tiny[0].query(tiny[0].parse("Mensheviks feudal economy", 3, "dense")), seen.append(faiss.omp_get_max_threads())))
    worker.start()
    worker.join()
    assert seen == [1] and faiss.omp_get_max_threads() == before
