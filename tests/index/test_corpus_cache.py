"""The corpus remembered by stat (rag.index.corpus_cache): an unchanged seeds/ is not parsed again, any change is.

Files written by a test are seconds old at most, which the cache refuses to trust (the racy-stat guard), so most
tests set `RACY_SECONDS` to 0; one test keeps it and checks that fresh files are never remembered.
"""

import json
import os

import pytest

import rag.index.build as build
from rag.index import corpus_cache
from rag.index.build import read_corpus
from rag.service import Service
from tests.reliability_support import settings_for, write_tiny_seeds


@pytest.fixture
def trusting(monkeypatch):
    monkeypatch.setattr(corpus_cache, "RACY_SECONDS", 0.0)


@pytest.fixture
def parses(monkeypatch):
    """How many times seeds/ is really read."""
    calls = []
    real = build.load_corpus

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "load_corpus", counted)
    return calls


def _settings(tmp_path, seeds):
    """Settings whose index folder holds a (stand-in) manifest: the cache is kept only beside a built index."""
    (tmp_path / "index").mkdir(exist_ok=True)
    (tmp_path / "index" / "manifest.json").write_text("{}")
    return settings_for(seeds, tmp_path / "index")


def test_nothing_is_written_where_no_index_was_built(tmp_path):
    """A process that may not build (a replica, RAG_AUTO_BUILD=false) leaves a missing index folder missing."""
    settings = settings_for(write_tiny_seeds(tmp_path / "seeds"), tmp_path / "no-index")
    assert read_corpus(settings).documents
    assert not (tmp_path / "no-index").exists()


def test_an_unchanged_folder_is_not_read_again_and_gives_the_same_corpus(tmp_path, trusting, parses):
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc="A second document, short.\n")
    (seeds / "picture.png").write_bytes(b"\x89PNG")  # skipped: the skip is remembered too
    settings = _settings(tmp_path, seeds)
    first = read_corpus(settings)
    second = read_corpus(settings)
    assert len(parses) == 1
    assert second == first and [d.extra for d in second.documents] == [d.extra for d in first.documents]
    assert [s.path for s in second.skipped] == ["picture.png"]


@pytest.mark.parametrize("change", ["same size, new mtime", "same size, mtime set back", "added", "removed", "sidecar"])
def test_any_change_is_read_again(tmp_path, trusting, parses, change):
    seeds = write_tiny_seeds(tmp_path / "seeds", extra_doc="A second document, short.\n")
    settings = _settings(tmp_path, seeds)
    before = read_corpus(settings)
    notes = seeds / "notes.txt"
    stat = notes.stat()
    if change.startswith("same size"):
        notes.write_text("A second document, SHORT.\n", encoding="utf-8")  # same bytes count, new content
        assert notes.stat().st_size == stat.st_size
        if change.endswith("set back"):
            os.utime(notes, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only the ctime still tells
    elif change == "added":
        (seeds / "more.txt").write_text("Another document.\n", encoding="utf-8")
    elif change == "removed":
        notes.unlink()
        (seeds / "notes.meta.json").unlink()
    else:
        (seeds / "notes.meta.json").write_text(json.dumps({"title": "Other"}), encoding="utf-8")
    after = read_corpus(settings)
    assert len(parses) == 2
    assert after != before
    assert read_corpus(settings) == after and len(parses) == 2  # and the new state is remembered in its turn


def test_fresh_files_are_never_remembered(tmp_path, parses):
    settings = _settings(tmp_path, write_tiny_seeds(tmp_path / "seeds"))
    read_corpus(settings)
    read_corpus(settings)
    assert len(parses) == 2  # written just now: a same-tick edit could hide behind an unchanged stat
    assert not (settings.index_dir / corpus_cache.CACHE_FILE).exists()


def test_a_file_skipped_for_a_passing_reason_is_tried_again(tmp_path, trusting, parses, monkeypatch):
    settings = _settings(tmp_path, write_tiny_seeds(tmp_path / "seeds"))
    real = build.load_corpus

    def slow_once(*args, **kwargs):
        corpus = real(*args, **kwargs)
        timed_out = corpus_cache.Skipped("excerpt.txt", "excerpt.txt: reading it took longer than 1 s, the limit per file")
        return corpus_cache.Corpus((), (timed_out,))

    monkeypatch.setattr(build, "load_corpus", slow_once)
    read_corpus(settings)
    monkeypatch.setattr(build, "load_corpus", real)
    assert [d.id for d in read_corpus(settings).documents] == ["excerpt"]


@pytest.mark.parametrize("forged", [b"not json", b"[]", b'{"fingerprint": 1}', "with a document of the wrong shape"])
def test_a_forged_or_broken_cache_is_ignored(tmp_path, trusting, parses, forged):
    settings = _settings(tmp_path, write_tiny_seeds(tmp_path / "seeds"))
    expected = read_corpus(settings)
    cache = settings.index_dir / corpus_cache.CACHE_FILE
    if isinstance(forged, str):
        data = json.loads(cache.read_text(encoding="utf-8"))
        data["documents"][0]["sections"] = [["Opening", "zero", 1, 2]]
        forged = json.dumps(data).encode()
    cache.write_bytes(forged)
    assert read_corpus(settings) == expected
    assert len(parses) == 2


def test_an_up_to_date_index_opens_without_reading_and_a_changed_file_is_rebuilt(tmp_path, trusting, parses, encoders):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    settings = _settings(tmp_path, seeds)
    first = Service.open(settings, encoders)  # builds; the corpus is remembered
    again = Service.open(settings.model_copy(update={"auto_build": False}), encoders)
    assert again.snapshot.id == first.snapshot.id and len(parses) == 1
    assert again.document("excerpt").text == first.document("excerpt").text
    article = seeds / "excerpt.txt"
    text = article.read_text(encoding="utf-8")
    edited = text.replace(" the ", " THE ", 1)  # same size, new content
    assert edited != text and len(edited) == len(text)
    article.write_text(edited, encoding="utf-8")
    rebuilt = Service.open(settings, encoders)
    assert len(parses) == 2 and rebuilt.snapshot.id != first.snapshot.id
    assert " THE " in rebuilt.document("excerpt").text
