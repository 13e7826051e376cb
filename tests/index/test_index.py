"""The index on disk: round trip, staleness, refusal, corruption, atomic writes, reuse of vectors (on a small corpus)."""

import json
import logging

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexCorrupt, IndexProblem, IndexStale
from rag.index.build import IndexConfig, build_index
from rag.index.store import MANIFEST, load_index
from rag.service import Service
from rag.corpus.chunking import chunk_corpus
from rag.corpus.documents import load_corpus
from rag.corpus.passage_text import embedding_texts


def _settings(tmp_path, seeds, **overrides) -> Settings:
    return Settings(index_dir=tmp_path / "index", seeds_dir=seeds, **overrides)


def _build(settings, encoder):
    documents = list(load_corpus(settings.seeds_dir).documents)
    config = IndexConfig.of(settings, documents, encoder.spec)
    return documents, config, build_index(settings.index_dir, documents, config, encoder, progress=False)


def test_build_save_load_round_trip(tmp_path, seeds_copy, encoder):
    settings = _settings(tmp_path, seeds_copy)
    documents, config, manifest = _build(settings, encoder)
    loaded = load_index(settings.index_dir, config.fingerprint())
    assert loaded.id == manifest["id"]
    assert manifest["model"]["weights_sha256"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert manifest["dimension"] == 384 and manifest["counts"]["passages"] == len(loaded.passages)
    assert manifest["chunker"] == {"max_tokens": 200, "min_chars": 300, "version": 7}
    assert manifest["verifier"]["available"] is True and len(manifest["verifier"]["sha256"]) == 64  # recorded, not fingerprinted
    assert "verifier" not in config.fingerprint()
    expected = chunk_corpus(documents, encoder.count_tokens, config.chunker)
    assert [(p.id, p.start, p.end) for p in loaded.passages] == [(p.id, p.start, p.end) for p in expected]
    stored = loaded.vectors.reconstruct_n(0, loaded.vectors.ntotal)
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-4)
    fresh = encoder.encode(embedding_texts(expected, {d.id: d for d in documents}))
    assert np.allclose(stored, fresh, rtol=2**-10, atol=1e-7)  # stored as float16 (rag.index.ann): within one step of it
    names = sorted(p.name for p in settings.index_dir.iterdir())
    assert not [n for n in names if n.startswith(".tmp-")]
    assert len([n for n in names if n != ".lock"]) == 4  # manifest + three data files


def test_stale_index_is_rebuilt_or_refused(tmp_path, seeds_copy, encoder, encoders):
    settings = _settings(tmp_path, seeds_copy)
    _, _, first = _build(settings, encoder)
    article = next(seeds_copy.glob("*.txt"))
    article.write_text(article.read_text(encoding="utf-8") + "\nA new closing paragraph about something else.\n", encoding="utf-8")
    documents = list(load_corpus(seeds_copy).documents)
    with pytest.raises(IndexStale, match="the documents in seeds/ changed"):
        load_index(settings.index_dir, IndexConfig.of(settings, documents, encoder.spec).fingerprint())
    with pytest.raises(IndexProblem, match="refusing to serve"):
        Service.open(settings.model_copy(update={"auto_build": False}), encoders)
    rebuilt = Service.open(settings, encoders)
    assert rebuilt.snapshot.index.id != first["id"]
    assert rebuilt.snapshot.passages[-1].text.endswith("A new closing paragraph about something else.")


def test_changed_chunker_makes_the_index_stale(tmp_path, seeds_copy, encoder):
    settings = _settings(tmp_path, seeds_copy)
    documents, _, _ = _build(settings, encoder)
    other = IndexConfig.of(settings.model_copy(update={"max_passage_tokens": 120}), documents, encoder.spec)
    with pytest.raises(IndexStale, match="chunker parameters changed"):
        load_index(settings.index_dir, other.fingerprint())


def test_manifest_that_does_not_match_its_files_is_refused(tmp_path, seeds_copy, encoder):
    settings = _settings(tmp_path, seeds_copy)
    _, config, manifest = _build(settings, encoder)
    passages_file = settings.index_dir / manifest["files"]["passages"]["name"]
    data = bytearray(passages_file.read_bytes())
    data[100] ^= 0x01
    passages_file.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="does not match its manifest checksum"):
        load_index(settings.index_dir, config.fingerprint())
    vectors_file = settings.index_dir / manifest["files"]["vectors"]["name"]
    vectors_file.write_bytes(vectors_file.read_bytes()[:1000])
    with pytest.raises(IndexCorrupt, match="truncated or corrupted"):
        load_index(settings.index_dir, config.fingerprint())
    (settings.index_dir / MANIFEST).write_text("{ not json")
    with pytest.raises(IndexCorrupt, match="not valid JSON"):
        load_index(settings.index_dir, config.fingerprint())


def test_format_version_mismatch_is_stale(tmp_path, seeds_copy, encoder):
    settings = _settings(tmp_path, seeds_copy)
    _, config, _ = _build(settings, encoder)
    path = settings.index_dir / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexStale, match="format version 99"):
        load_index(settings.index_dir, config.fingerprint())


def test_rebuild_reuses_vectors_of_unchanged_passages(tmp_path, seeds_copy, encoder, caplog):
    settings = _settings(tmp_path, seeds_copy)
    _, _, first = _build(settings, encoder)
    article = next(seeds_copy.glob("*.txt"))
    text = article.read_text(encoding="utf-8")
    # a sentence that is not a passage opening: only its own passage embeds it (openings are neighbour context)
    article.write_text(text.replace("interpretation of traditional Marxism", "interpretation of orthodox Marxism"), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="rag.index.build"):
        _build(settings, encoder)
    assert f"embedded 1 passages, reused {first['counts']['passages'] - 1}" in caplog.text
    leftovers = {p.name for p in settings.index_dir.iterdir()} - {MANIFEST, ".lock"}
    manifest = json.loads((settings.index_dir / MANIFEST).read_text())
    assert leftovers == {f["name"] for f in manifest["files"].values()}, "old build files are removed"


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_switching_the_index_type_reuses_every_vector(tmp_path, seeds_copy, encoder, caplog, index_type):
    _, _, first = _build(_settings(tmp_path, seeds_copy), encoder)  # flat at this size
    stored = load_index(tmp_path / "index", None).vectors.reconstruct_n(0, first["counts"]["passages"])
    with caplog.at_level(logging.INFO, logger="rag.index.build"):
        _, _, second = _build(_settings(tmp_path, seeds_copy, index_type=index_type), encoder)
    assert second["index_type"] == index_type
    assert f"embedded 0 passages, reused {first['counts']['passages']}" in caplog.text
    again = load_index(tmp_path / "index", None).vectors.reconstruct_n(0, second["counts"]["passages"])
    assert np.array_equal(again, stored)  # float16 in, float16 out: the same vectors, bit for bit


def test_a_reload_with_nothing_changed_keeps_the_served_index_and_one_with_changes_loads(seeds_copy, tmp_path, encoders):
    service = Service.open(_settings(tmp_path, seeds_copy), encoders)
    served = service.snapshot
    assert service.reload() == served.id and service.snapshot.retriever is served.retriever  # no-op: nothing reloaded
    (seeds_copy / "notes.bin").write_bytes(b"\x00\x01")  # an unsupported file: listed, the index is unchanged
    assert service.reload() == served.id and service.snapshot.retriever is served.retriever
    assert [s.path for s in service.snapshot.skipped] == ["notes.bin"]
    article = next(seeds_copy.glob("*.txt"))
    article.write_text(article.read_text(encoding="utf-8") + "\nOne more paragraph about the soviets.\n", encoding="utf-8")
    assert service.reload() != served.id  # the corpus changed: rebuilt and loaded
    assert service.reload(force=True) == service.snapshot.id


def test_old_sentence_vectors_are_keyed_by_what_their_own_index_embedded():
    """A rebuild reuses an old index's sentence vectors by the text they were embedded from. An index made before
    table rows were embedded under their header embedded each row as it stands, so its row vector must not be
    reused for the row read under its header (it is embedded again); prose sentences are reused either way."""
    from types import SimpleNamespace

    from rag.corpus.chunking import Passage, sentence_spans
    from rag.corpus.passage_text import EMBEDDING_TEXT_VERSION
    from rag.index.build import _old_sentence_texts

    text = "Staff list.\nrow | Name | Office\n2 | Ann | Porto\n3 | Bob | Tallinn"
    passage = Passage("p", "staff", None, (1,), 0, len(text), text, tuple(sentence_spans(text)))
    current = SimpleNamespace(manifest={"embedding_text": EMBEDDING_TEXT_VERSION}, passages=[passage])
    older = SimpleNamespace(manifest={"embedding_text": "title+section+text+previous-opening/2"}, passages=[passage])
    assert list(_old_sentence_texts(current)) == ["Staff list.", "row | Name | Office", "Name: Ann; Office: Porto", "Name: Bob; Office: Tallinn"]
    assert list(_old_sentence_texts(older)) == ["Staff list.", "row | Name | Office", "2 | Ann | Porto", "3 | Bob | Tallinn"]
