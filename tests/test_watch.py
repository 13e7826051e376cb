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
