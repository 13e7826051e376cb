"""A served snapshot follows what is on disk (rag.watch): a second process's newer build, and, with
`seeds=True`, documents added to or removed from seeds/ (debounced), with real indexes and real reloads."""

from __future__ import annotations

import pytest

from rag.service import Service
from rag.watch import Watcher
from tests.reliability_support import EXTRA_PARAGRAPH, settings_for, write_tiny_seeds


@pytest.fixture()
def shared(tmp_path, encoders):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    settings = settings_for(seeds, tmp_path / "index")
    return Service.open(settings, encoders), Service.open(settings, encoders), seeds


def test_a_second_server_moves_to_the_newer_build_another_one_made(shared):
    builder, follower, seeds = shared
    watcher = Watcher(follower)
    assert follower.snapshot.id == builder.snapshot.id
    assert watcher.check() is False  # nothing changed: no reload
    (seeds / "notes.txt").write_text(EXTRA_PARAGRAPH + "\n", encoding="utf-8")
    builder.reload()
    assert builder.snapshot.id != follower.snapshot.id
    assert watcher.check() is True
    assert follower.snapshot.id == builder.snapshot.id and "notes" in follower.snapshot.documents
    assert watcher.check() is False and watcher.reloads == 1


def test_watching_seeds_reindexes_once_the_folder_is_quiet(shared):
    service, _, seeds = shared
    watcher = Watcher(service, seeds=True, debounce=5.0)
    before = service.snapshot.id
    (seeds / "notes.txt").write_text(EXTRA_PARAGRAPH + "\n", encoding="utf-8")
    assert watcher.check(now=100.0) is False  # the change is seen, then waited out
    assert watcher.check(now=102.0) is False  # still within the debounce
    assert service.snapshot.id == before
    assert watcher.check(now=106.0) is True
    assert service.snapshot.id != before and "notes" in service.snapshot.documents
    (seeds / "notes.txt").unlink()
    watcher.check(now=200.0)
    assert watcher.check(now=206.0) is True
    assert "notes" not in service.snapshot.documents and service.snapshot.id == before  # same corpus, same index id


def test_the_watcher_thread_starts_and_stops(shared):
    service, _, _ = shared
    watcher = Watcher(service, interval=0.05).start()
    watcher.stop()
    assert not watcher._thread.is_alive()


@pytest.mark.slow
def test_rag_serve_watch_reindexes_what_is_added_to_and_removed_from_seeds(tmp_path):
    """`rag serve` with RAG_WATCH=true (what `--watch` sets), as a real process: a file copied into seeds/ is
    answered from without a reload being asked for, and a file deleted stops being cited."""
    import time

    import httpx

    from tests.reliability_support import rag_serve

    seeds = write_tiny_seeds(tmp_path / "seeds")
    env = {"RAG_AUTO_BUILD": "true", "RAG_WATCH": "true", "RAG_WATCH_INTERVAL_SECONDS": "0.2", "RAG_WATCH_DEBOUNCE_SECONDS": "0.5"}
    with rag_serve(seeds, tmp_path / "index", tmp_path / "server.log", **env) as (_, base):

        def documents_when(predicate) -> list[str]:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ids = [d["id"] for d in httpx.get(base + "/documents", timeout=10).json()]
                if predicate(ids):
                    return ids
                time.sleep(0.2)
            raise AssertionError(f"seeds/ changed but the served documents did not follow: {ids}")

        first = httpx.get(base + "/ready").json()["index_id"]
        (seeds / "notes.txt").write_text(EXTRA_PARAGRAPH + "\n", encoding="utf-8")
        documents_when(lambda ids: "notes" in ids)
        answer = httpx.get(base + "/query", params={"q": "How many zebras did the lighthouse keeper count?"}).json()
        assert answer["passages"][0]["citation"]["document"] == "notes"
        assert httpx.get(base + "/ready").json()["index_id"] != first
        (seeds / "notes.txt").unlink()
        documents_when(lambda ids: "notes" not in ids)
        assert httpx.get(base + "/ready").json()["index_id"] == first  # the same corpus again: the same index
