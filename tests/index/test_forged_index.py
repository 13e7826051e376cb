"""Issue 21, item 5: a forged index is refused (IndexCorrupt), then rebuilt when auto-build allows; never a
RecursionError, a TypeError at query time, or a hang.

Forgeries are real files in a copy of a small real index (tests/reliability_support: `resign` makes the
manifest vouch for a replaced data file, as someone who can write index/ could). Loads that could hang run
in a thread with a deadline, so a regression fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from rag.errors import IndexCorrupt, IndexProblem
from rag.index.build import build
from rag.index.store import MANIFEST, load_index, manifest_digest, remove_strays
from rag.service import Service
from tests.reliability_support import copy_index, manifest, resign, settings_for, write_tiny_seeds


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoders):
    """A pristine small index: (seeds, index_dir, manifest)."""
    root = tmp_path_factory.mktemp("forged")
    seeds = write_tiny_seeds(root / "seeds")
    Service.open(settings_for(seeds, root / "index"), encoders)
    return seeds, root / "index", manifest(root / "index")


@pytest.fixture
def index(tiny, tmp_path) -> Path:
    return copy_index(tiny[1], tmp_path / "index")


def _within(seconds: float, call):
    """call() in a thread; its result or exception, or a failure if it has not returned after `seconds`."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (a hang)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _refused_then_rebuilt(seeds: Path, index: Path, original: dict, encoders, match: str) -> None:
    """The forged index is IndexCorrupt; a refusing service names it; `rag index` (build) rebuilds the original."""
    with pytest.raises(IndexCorrupt, match=match):
        _within(30, lambda: load_index(index, None))
    with pytest.raises(IndexProblem, match="refusing to serve it") as refused:
        _within(60, lambda: Service.open(settings_for(seeds, index, auto_build=False), encoders))
    assert isinstance(refused.value.__cause__, IndexCorrupt)
    report = _within(120, lambda: build(settings_for(seeds, index), encoders))  # what `rag index` runs
    assert report.built and report.manifest["id"] == original["id"]
    assert load_index(index, None).id == original["id"]


def _unblock(path: Path) -> None:
    """Release a reader blocked on the FIFO at `path` (only needed if the loader regressed)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# --- the manifest ------------------------------------------------------------------------------


def test_a_manifest_of_100k_nested_brackets_is_corrupt_and_rebuilt(tiny, index, encoders):
    seeds, _, original = tiny
    (index / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    assert remove_strays(index) == []  # housekeeping reads the manifest too: no RecursionError
    _refused_then_rebuilt(seeds, index, original, encoders, "nested too deeply")


def test_a_manifest_that_is_a_fifo_is_refused_without_waiting(tiny, index, encoders):
    seeds, _, original = tiny
    (index / MANIFEST).unlink()
    os.mkfifo(index / MANIFEST)
    try:
        assert _within(10, lambda: remove_strays(index)) == []
        _refused_then_rebuilt(seeds, index, original, encoders, "not a regular file")
    finally:
        _unblock(index / MANIFEST)


# --- data files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["vectors", "passages", "sentences"])
def test_a_fifo_in_place_of_a_data_file_is_refused_without_waiting(tiny, index, encoders, key):
    seeds, _, original = tiny
    path = index / original["files"][key]["name"]
    path.unlink()
    os.mkfifo(path)
    try:
        _refused_then_rebuilt(seeds, index, original, encoders, f"index file {path.name} is not a regular file")
    finally:
        _unblock(path)


# --- a re-signed passages file ---------------------------------------------------------------------


def _rows(index: Path) -> list[dict]:
    name = manifest(index)["files"]["passages"]["name"]
    return json.loads((index / name).read_bytes())["passages"]


def _resign_rows(index: Path, rows) -> None:
    resign(index, "passages", json.dumps({"format_version": 3, "passages": rows}).encode())


def test_passages_nested_100k_deep_are_corrupt_and_rebuilt(tiny, index, encoders):
    seeds, _, original = tiny
    resign(index, "passages", b'{"format_version": 3, "passages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    _refused_then_rebuilt(seeds, index, original, encoders, "passages file is nested too deeply")


def test_a_passage_naming_an_unknown_document_is_corrupt_and_rebuilt(tiny, index, encoders):
    seeds, _, original = tiny
    rows = _rows(index)
    rows[1]["document"] = "ghost"
    _resign_rows(index, rows)
    _refused_then_rebuilt(seeds, index, original, encoders, "passage 1 names a document that is not in the manifest's document list")


def test_a_document_list_that_does_not_match_the_corpus_hash_is_corrupt(tiny, index):
    forged = manifest(index)
    forged["documents"].append({"id": "ghost", "sha256": "0" * 64})  # to make a passage about 'ghost' pass
    forged["manifest_sha256"] = manifest_digest({k: v for k, v in forged.items() if k != "manifest_sha256"})
    (index / MANIFEST).write_text(json.dumps(forged))
    with pytest.raises(IndexCorrupt, match="its document list does not match its corpus hash"):
        load_index(index, None)


def _set(field, value):
    def mutate(row):
        row[field] = value

    return mutate


WRONG_ROWS = {
    "start as text": (_set("start", "0"), "offsets that do not frame its text"),
    "start as a boolean": (_set("start", True), "offsets that do not frame its text"),
    "end past the text": (lambda r: r.update(end=r["end"] + 5), "offsets that do not frame its text"),
    "text as a number": (_set("text", 5), "wrong type"),
    "id as null": (_set("id", None), "wrong type"),
    "section as a number": (_set("section", 7), "section that is not text"),
    "paragraphs as text": (_set("paragraphs", "12"), "paragraphs that are not a list of numbers"),
    "sentences as a number": (_set("sentences", 5), "sentences that are not a list"),
    "a sentence of one offset": (_set("sentences", [[0]]), "sentence that is not a pair of offsets inside the passage"),
    "a sentence outside the passage": (lambda r: r.update(sentences=[[r["end"], r["end"] + 10]]), "sentence that is not a pair"),
    "a sentence of nested lists": (_set("sentences", [[[0], [1]]]), "sentence that is not a pair"),
    "a missing field": (lambda r: r.pop("text"), "lacks the field 'text'"),
}


@pytest.mark.parametrize("case", list(WRONG_ROWS))
def test_passages_with_wrong_field_types_are_corrupt(tiny, index, case):
    mutate, why = WRONG_ROWS[case]
    rows = _rows(index)
    mutate(rows[2])
    _resign_rows(index, rows)
    with pytest.raises(IndexCorrupt, match=f"passage 2 .*{why}"):
        load_index(index, None)


def test_other_malformed_passage_files_are_corrupt(tiny, index):
    rows = _rows(index)
    for data, why in [
        ([*rows[:3], rows[2]], "passage 3 repeats the id of an earlier passage"),
        ([*rows[:2], ["a", "list"], *rows[3:]], "passage 2 is not an object"),
        ({"no": "list"}, "no list of passages"),
    ]:
        _resign_rows(index, data)
        with pytest.raises(IndexCorrupt, match=why):
            load_index(index, None)
    resign(index, "passages", b"[1, 2, 3]")
    with pytest.raises(IndexCorrupt, match="no list of passages"):
        load_index(index, None)


def test_a_wrong_type_is_rebuilt_by_rag_index(tiny, index, encoders):
    seeds, _, original = tiny
    rows = _rows(index)
    rows[0]["start"] = "0"
    _resign_rows(index, rows)
    _refused_then_rebuilt(seeds, index, original, encoders, "passage 0 has offsets that do not frame its text")


def test_rows_re_signed_unchanged_still_load(tiny, index):
    _, _, original = tiny
    _resign_rows(index, _rows(index))  # the same rows, re-signed: a valid index, so the checks refuse nothing real
    assert load_index(index, None).id == original["id"]
