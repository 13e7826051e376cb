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


def test_a_folder_with_a_name_that_is_not_utf8_is_remembered(tmp_path, trusting, parses):
    """Such a name reaches Python as a lone surrogate, which UTF-8 cannot write: the cache was never written for
    a folder holding one, so every open read the whole folder again."""
    seeds = write_tiny_seeds(tmp_path / "seeds")
    with open(os.path.join(os.fsencode(seeds), b"caf\xe9.txt"), "wb") as f:
        f.write(b"A note whose file name is Latin-1, not UTF-8.\n")
    settings = _settings(tmp_path, seeds)
    first = read_corpus(settings)
    assert "caf\\xe9.txt" in {d.source for d in first.documents}  # shown escaped
    (settings.index_dir / corpus_cache.CACHE_FILE).read_text(encoding="utf-8")  # valid UTF-8
    corpus_cache._MEMO.clear()  # as a new process finds it
    assert read_corpus(settings) == first and len(parses) == 1


def _one_file_times_out_once(monkeypatch):
    """load_corpus that reports excerpt.txt over its time budget (keeping the other documents); undone by the caller."""
    real = build.load_corpus

    def slow_once(*args, **kwargs):
        corpus = real(*args, **kwargs)
        timed_out = corpus_cache.Skipped("excerpt.txt", "excerpt.txt: reading it took longer than 1 s, the limit per file")
        return corpus_cache.Corpus(tuple(d for d in corpus.documents if d.id != "excerpt"), (*corpus.skipped, timed_out))

    monkeypatch.setattr(build, "load_corpus", slow_once)
    return real


def test_a_process_that_may_not_build_takes_a_passing_skip_as_it_was_read(tmp_path, trusting, parses, monkeypatch):
    """Only a process that may build reads a timed-out file again; one that may not (replicas, RAG_AUTO_BUILD=false)
    takes the reading the index was built from, or a file near its budget would make that index look stale."""
    settings = _settings(tmp_path, write_tiny_seeds(tmp_path / "seeds", extra_doc="A second document, short.\n"))
    real = _one_file_times_out_once(monkeypatch)
    first = read_corpus(settings)
    assert [d.id for d in first.documents] == ["notes"] and "took longer" in first.skipped[-1].reason
    monkeypatch.setattr(build, "load_corpus", real)
    assert read_corpus(settings, retry_transient=False) == first
    assert len(parses) == 1  # not parsed again
    assert sorted(d.id for d in read_corpus(settings).documents) == ["excerpt", "notes"]  # a builder tries again
    assert len(parses) == 2
    assert not read_corpus(settings, retry_transient=False).skipped  # and what it read is what is remembered now


def test_a_service_that_may_not_build_serves_the_index_built_around_a_timed_out_file(tmp_path, trusting, encoders, monkeypatch):
    settings = _settings(tmp_path, write_tiny_seeds(tmp_path / "seeds", extra_doc="A second document, short.\n"))
    real = _one_file_times_out_once(monkeypatch)
    built = Service.open(settings, encoders)
    monkeypatch.setattr(build, "load_corpus", real)
    served = Service.open(settings.model_copy(update={"auto_build": False}), encoders)  # refused as stale before
    assert served.snapshot.id == built.snapshot.id
    assert [s["path"] for s in served.info()["skipped"]] == ["excerpt.txt"]
    rebuilt = Service.open(settings, encoders)  # a builder reads the file again and indexes it
    assert rebuilt.snapshot.id != built.snapshot.id and rebuilt.document("excerpt").text


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
