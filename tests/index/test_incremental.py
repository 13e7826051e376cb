"""Incremental index updates (issue #20 item 5): a reload after one document changed touches only that document.

rag.index.build.update_index (chunk and embed only changed documents, copy everything else from the served
index), rag.index.lexical (BM25 tokens kept per passage, scores built with numpy exactly as bm25s builds them)
and rag.index.corpus_cache (only changed files parsed again), with the real model: what an add embeds and
tokenizes, that other passages keep their ids and vectors, and that the result equals a full rebuild."""

from __future__ import annotations

import json

import bm25s
import numpy as np
import pytest
import Stemmer

from rag import uploads
from rag.corpus.documents import load_corpus
from rag.index import build as build_module
from rag.index import corpus_cache
from rag.index.lexical import BM25, STOPWORDS, TOKEN, LexicalIndex, bm25_from_ids
from rag.service import Service
from tests.reliability_support import article_paragraphs, manifest, settings_for, write_tiny_seeds

LIGHTHOUSE = (
    "# Lighthouse log\n\nThe lighthouse keeper counted seven zebras on the shore at dawn, and wrote the number in the logbook "
    "next to the weather, as the harbour master had asked him to do every morning that winter.\n\n"
    "## The storm\n\nIn February a storm broke the lamp. The keeper climbed the tower with a lantern and kept a fire "
    "burning on the gallery for three nights, until the supply boat brought a new lens from the mainland.\n"
)
QUESTIONS = ("How many zebras did the keeper count?", "What broke the lamp?", "Why could the bourgeoisie not lead the revolution?",
             "What did Trotsky say about the peasants?")


@pytest.fixture
def trusting(monkeypatch):
    """Files a test writes are seconds old: let the corpus cache trust their stat (tests/index/test_corpus_cache.py)."""
    monkeypatch.setattr(corpus_cache, "RACY_SECONDS", 0.0)


@pytest.fixture
def opened(tmp_path, encoders, trusting):
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc="\n\n".join(article_paragraphs()[20:26]) + "\n")
    return Service.open(settings_for(seeds, tmp_path / "index"), encoders), seeds


class Recorder:
    """What the build encoder is asked to embed and to count, while installed."""

    def __init__(self, monkeypatch, encoder):
        self.embedded: list[str] = []
        self.counted: list[str] = []
        real_encode, real_count = encoder.encode, encoder.count_tokens

        def encode(texts, *args, **kwargs):
            self.embedded += list(texts)
            return real_encode(texts, *args, **kwargs)

        def count_tokens(text):
            self.counted.append(text)
            return real_count(text)

        monkeypatch.setattr(encoder, "encode", encode)
        monkeypatch.setattr(encoder, "count_tokens", count_tokens)


def _top(service, question: str, k: int = 5) -> list[tuple[str, float]]:
    return [(h.passage.id, round(h.score, 4)) for h in service.query(service.parse(question, top_k=k)).hits]


def test_an_add_embeds_tokenizes_and_parses_only_the_new_document(opened, encoders, monkeypatch):
    service, seeds = opened
    before = service.snapshot
    vectors_before = {p.id: before.index.vectors.reconstruct(i) for i, p in enumerate(before.passages)}
    sentences_before = {p.id: np.asarray(before.index.sentence_vectors[slice(*_rows(before, i))]) for i, p in enumerate(before.passages)}
    parsed = []
    real_load = corpus_cache.load_document
    monkeypatch.setattr(corpus_cache, "load_document", lambda path, *a, **k: parsed.append(path.name) or real_load(path, *a, **k))
    recorder = Recorder(monkeypatch, encoders.builder())

    written = service.write_document(uploads.Upload(LIGHTHOUSE.encode(), ".md", id="lighthouse"))

    after = service.snapshot
    assert written.status == "created" and after.id != before.id and after.id == manifest(service.settings.index_dir)["id"]
    new = [p for p in after.passages if p.document == "lighthouse"]
    assert new and len(after.passages) == len(before.passages) + len(new)
    document = after.documents["lighthouse"]
    assert parsed == ["lighthouse.md"]  # the other files' documents come from the corpus cache
    # embedded: the new passages and their sentences, nothing else
    sentences = [document.text[s:e] for p in new for s, e in p.sentences]
    assert len(recorder.embedded) == len(new) + len(sentences) and set(sentences) <= set(recorder.embedded)
    assert all(document.text[p.start:p.end] in text for p, text in zip(new, recorder.embedded[: len(new)]))
    assert all(t.startswith("Lighthouse log") or t in document.text for t in recorder.counted)  # chunked: only the new document
    assert after.retriever.lexical.reused == len(before.passages)  # BM25 tokenized only the new passages
    # every other passage keeps its id, its vectors and its sentence vectors
    for i, p in enumerate(after.passages):
        if p.document != "lighthouse":
            assert np.array_equal(after.index.vectors.reconstruct(i), vectors_before[p.id])
            assert np.array_equal(np.asarray(after.index.sentence_vectors[slice(*_rows(after, i))]), sentences_before[p.id])
    assert _top(service, QUESTIONS[0], 1)[0][0] in {p.id for p in new}


def _rows(snapshot, i: int) -> tuple[int, int]:
    first, count = snapshot.index.sentence_rows[i]
    return int(first), int(first + count)


def test_an_update_writes_what_a_full_rebuild_writes(opened, encoders, tmp_path):
    """Add, replace and remove; after each, the index equals a forced full rebuild over the same index folder (the same
    files: the same index id) and a build from nothing in another folder (same passages, same answers)."""
    service, seeds = opened
    steps = [
        lambda: service.write_document(uploads.Upload(LIGHTHOUSE.encode(), ".md", {"title": "Lighthouse log"}, "lighthouse")),
        lambda: service.write_document(uploads.Upload(LIGHTHOUSE.replace("seven", "nine").encode(), ".md", {"title": "Log"}),
                                       "lighthouse", replace=True),
        lambda: service.remove_document("notes"),
    ]
    for number, step in enumerate(steps):
        step()
        updated = service.snapshot
        answers = {q: _top(service, q) for q in QUESTIONS}
        fresh = Service.open(settings_for(seeds, tmp_path / f"fresh-{number}"), encoders)
        assert [(p.id, p.text, p.sentences) for p in fresh.snapshot.passages] == [(p.id, p.text, p.sentences) for p in updated.passages]
        assert fresh.snapshot.index.embedded_keys == updated.index.embedded_keys
        for q in QUESTIONS:
            assert [pid for pid, _ in _top(fresh, q)] == [pid for pid, _ in answers[q]], q
        assert service.reload(force=True) == updated.id  # the full build over the same folder writes the very same files
        assert {q: _top(service, q) for q in QUESTIONS} == answers


def test_bm25_from_ids_is_bm25s_bit_for_bit():
    texts = [" ".join(article_paragraphs()[i : i + 2]) for i in range(0, 60, 2)] + ["", "the of and", "zebras zebras zebra lighthouse"]
    tokenized = bm25s.tokenize(texts, stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=Stemmer.Stemmer("english"), show_progress=False)
    vocab = dict(tokenized.vocab)
    reference = bm25s.BM25(**BM25)
    reference.index(tokenized, show_progress=False)
    ours = bm25_from_ids([np.asarray(ids, dtype=np.int32) for ids in tokenized.ids], vocab)
    for key in ("data", "indices", "indptr"):
        assert ours.scores[key].dtype == reference.scores[key].dtype and np.array_equal(ours.scores[key], reference.scores[key]), key
    assert ours.scores["num_docs"] == reference.scores["num_docs"] and ours.vocab_dict == reference.vocab_dict


def test_a_lexical_index_made_from_a_previous_one_scores_like_a_fresh_one():
    texts = [" ".join(article_paragraphs()[i : i + 2]) for i in range(0, 40, 2)]
    first = LexicalIndex(texts, keys=list(range(len(texts))))
    changed = texts[3:] + ["A lighthouse keeper counted zebras on the shore.", texts[0] + " Zebras again."]
    keys = list(range(3, len(texts))) + ["new-1", "new-2"]
    again = LexicalIndex(changed, keys=keys, previous=first, passage_texts=changed)
    fresh = LexicalIndex(changed)
    assert again.reused == len(texts) - 3
    for question in ("zebras on the shore", "permanent revolution bourgeoisie", "peasants Trotsky", "nothing matches qwxz"):
        assert np.array_equal(again.scores(question), fresh.scores(question)), question
    assert all(again.terms(t) == fresh.terms(t) for t in changed)


def test_reading_file_by_file_gives_what_reading_everything_gives(tmp_path, trusting):
    """corpus_cache.read_reusing against rag.corpus.documents.load_corpus: folders, sidecars, a skip, a duplicate id,
    an orphan sidecar, then a file edited, one added, one removed and a sidecar changed."""
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc="A second document, short.\n")
    (seeds / "guides").mkdir()
    (seeds / "guides" / "setup.md").write_text("# Setup\n\nInstall it, then run it twice.\n", encoding="utf-8")
    (seeds / "guides" / "setup.meta.json").write_text(json.dumps({"title": "Set up"}), encoding="utf-8")
    (seeds / "picture.png").write_bytes(b"\x89PNG")
    (seeds / "notes.md").write_text("# Notes\n\nThe same id as notes.txt.\n", encoding="utf-8")
    (seeds / "lonely.meta.json").write_text("{}", encoding="utf-8")
    settings = settings_for(seeds, tmp_path / "index")
    settings.index_dir.mkdir()
    (settings.index_dir / "manifest.json").write_text("{}")  # the cache is kept only beside an index
    assert build_module.read_corpus(settings) == load_corpus(seeds)
    (seeds / "notes.txt").write_text("A second document, edited.\n", encoding="utf-8")
    (seeds / "guides" / "setup.meta.json").write_text(json.dumps({"title": "Setting up"}), encoding="utf-8")
    (seeds / "added.txt").write_text("A document added later.\n", encoding="utf-8")
    (seeds / "notes.md").unlink()
    listed = corpus_cache.fingerprint(seeds, settings.max_document_bytes)
    known = corpus_cache.reusable(settings.index_dir, listed)
    assert sorted(known) == ["excerpt.txt"]  # the unchanged one; the edited, re-titled, new and removed ones are read
    again = build_module.read_corpus(settings)
    reference = load_corpus(seeds)
    assert again == reference and [d.extra for d in again.documents] == [d.extra for d in reference.documents]
    assert again.documents[[d.id for d in again.documents].index("guides.setup")].title == "Setting up"


def test_a_served_index_changed_on_disk_is_not_copied(opened, monkeypatch):
    """The sentence vectors are mapped from their file: one changed in place is caught before anything is copied from
    it, and the index is built from nothing (which, finding the file corrupt, embeds again) instead."""
    service, _ = opened
    entry = service.snapshot.index.manifest["files"]["sentences"]
    last = service.snapshot.passages[-1].id  # the passage whose last sentence vector the flipped byte is in
    original = np.asarray(service.snapshot.index.sentence_vectors[-1], dtype=np.float32).copy()
    updates = []
    real_update = build_module.update_index
    monkeypatch.setattr(build_module, "update_index", lambda *a, **k: updates.append(1) or real_update(*a, **k))
    with open(service.settings.index_dir / entry["name"], "r+b") as f:
        f.seek(entry["bytes"] - 2)
        byte = f.read(1)
        f.seek(entry["bytes"] - 2)
        f.write(bytes([byte[0] ^ 0x40]))
    service.write_document(uploads.Upload(LIGHTHOUSE.encode(), ".md", id="lighthouse"))
    assert not updates
    from rag.index.store import load_index

    rebuilt = load_index(service.settings.index_dir, None)  # verified: every file matches its manifest
    assert rebuilt.id == service.snapshot.id and "lighthouse" in service.snapshot.documents
    position = [p.id for p in rebuilt.passages].index(last)
    first, count = rebuilt.sentence_rows[position]
    again = np.asarray(rebuilt.sentence_vectors[int(first + count - 1)], dtype=np.float32)
    assert np.allclose(again, original, atol=2e-3)  # embedded again, not the changed bytes copied


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_an_approximate_index_is_updated_from_its_stored_vectors(tmp_path, encoders, trusting, monkeypatch, index_type):
    """HNSW and IVF give their vectors back: an update embeds only the new document and builds the ANN index again."""
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc="\n\n".join(article_paragraphs()[20:26]) + "\n")
    service = Service.open(settings_for(seeds, tmp_path / "index", index_type=index_type), encoders)
    recorder = Recorder(monkeypatch, encoders.builder())
    service.write_document(uploads.Upload(LIGHTHOUSE.encode(), ".md", id="lighthouse"))
    new = [p for p in service.snapshot.passages if p.document == "lighthouse"]
    assert service.snapshot.index.manifest["index_type"] == index_type
    assert len(recorder.embedded) == len(new) + sum(len(p.sentences) for p in new)
    assert _top(service, QUESTIONS[0], 1)[0][0] in {p.id for p in new}


def test_an_index_whose_documents_are_not_each_in_one_run_is_not_updated():
    from rag.corpus.chunking import Passage

    def passage(i, document):
        return Passage(f"p{i}", document, None, (1,), 0, 1, "x", ((0, 1),))

    assert build_module._document_spans([passage(0, "a"), passage(1, "a"), passage(2, "b")]) == {"a": (0, 2), "b": (2, 3)}
    with pytest.raises(build_module.CannotUpdate):
        build_module._document_spans([passage(0, "a"), passage(1, "b"), passage(2, "a")])
