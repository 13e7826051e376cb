"""Skip reasons are said once: `rag index` prints each skipped file once, `rag ask` says nothing of them, and a
server logs every one once (its JSON logs drop repeats of one message template, so each line is its own text),
not again on a reload that finds the same skips. The CLI's citation shows what HTTP's does: no invented section
name for text before the first heading (HTTP: null) and the page of a PDF passage."""

from __future__ import annotations

import logging

import pytest
from fpdf import FPDF

from api.cli import main
from api.observability import RepeatFilter
from rag.corpus.documents import Skipped, log_skipped
from rag.index.build import read_corpus
from tests.reliability_support import settings_for, write_tiny_seeds

PDF_TEXT = ("The lighthouse keeper logged the tide tables every morning at six, and the harbour office "
            "copied them into the ledger kept beside the signal lamp.")


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def server_log():
    """What a server's log handler lets through (with its repeat filter), for the skip logger."""
    handler = _Lines()
    handler.addFilter(RepeatFilter())
    logger = logging.getLogger("rag.corpus.skipped")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def _bad_files(seeds, count: int) -> list[str]:
    names = [f"report-{i}.doc" for i in range(count)]
    for name in names:
        (seeds / name).write_bytes(b"not a document")
    return names


def test_a_server_logs_every_skip_once_and_a_reload_with_the_same_skips_logs_none(tmp_path, server_log):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    names = _bad_files(seeds, 5)
    settings = settings_for(seeds, tmp_path / "index")
    read_corpus(settings)
    assert sorted(line.split(":")[0] for line in server_log) == [f"skipped {name}" for name in sorted(names)]
    read_corpus(settings)  # a reload: the same five
    assert len(server_log) == 5
    (seeds / "late.doc").write_bytes(b"x")
    read_corpus(settings)
    assert server_log[5:] == ["skipped late.doc: late.doc is of an unsupported type (.doc); supported: "
                              + server_log[0].split("supported: ")[1]]


def test_log_skipped_logs_what_is_new_for_its_folder(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rag.corpus.skipped")
    first, second = Skipped("a.doc", "a.doc is bad"), Skipped("b.doc", "b.doc is bad")
    assert log_skipped(tmp_path, [first]) == [first]
    assert log_skipped(tmp_path, [first, second]) == [second]
    assert log_skipped(tmp_path, [second]) == []
    assert log_skipped(tmp_path, [first, second]) == [first]  # fixed, then broken again: said again
    assert caplog.messages == ["skipped a.doc: a.doc is bad", "skipped b.doc: b.doc is bad", "skipped a.doc: a.doc is bad"]


def _pdf(path) -> None:
    pdf = FPDF()
    pdf.set_title("Harbour Notes")
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 5, PDF_TEXT)
    pdf.output(str(path))


def test_rag_index_prints_each_skip_once_and_rag_ask_none(tmp_path, monkeypatch, capsys, caplog, encoders):
    seeds = write_tiny_seeds(tmp_path / "seeds")
    names = _bad_files(seeds, 3)
    _pdf(seeds / "harbour.pdf")
    monkeypatch.setenv("RAG_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    caplog.set_level(logging.WARNING)
    assert main(["index"], encoders=encoders) == 0
    err = capsys.readouterr().err
    for name in names:
        assert err.count(f"skipped {name}:") == 1, err
    assert not [r for r in caplog.records if r.name == "rag.corpus.skipped"]  # printed, not also logged

    caplog.clear()
    assert main(["ask", "When did the lighthouse keeper log the tide tables?", "-k", "3"], encoders=encoders) == 0
    out = capsys.readouterr()
    assert "skipped" not in out.err and not [r for r in caplog.records if r.name == "rag.corpus.skipped"]
    cited = [line for line in out.out.splitlines() if line.startswith("[")]
    assert any(line.startswith("[1] Harbour Notes › ¶1 · p. 1 · chars 0–") for line in cited), cited
    assert not any("Opening" in line for line in cited)  # HTTP's section is null there: no name is made up
    assert any(line.startswith("[") and "Permanent Revolution (excerpt) › ¶" in line and "p. " not in line for line in cited)
