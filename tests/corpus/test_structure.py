"""Structure kept from real files: headings as sections, the document's own title and dates, code kept as
blocks, navigation and contents lines out of the body (issue #20 item 4).

The files are Debian's own: an excerpt of Vim's help (tests/corpus/data/vim-version8-excerpt.txt, from
/usr/share/vim/vim90/doc/version8.txt), and HTML and PDF manuals from /usr/share/doc when the machine has them
(each such test says which package ships the file), else small files written here with the same markup.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.corpus.documents import load_document

DATA = Path(__file__).parent / "data"


def _sections(doc) -> list:
    return [s.title for s in doc.sections]


def test_vim_help_headings_ruled_or_tagged_are_sections_and_ordinary_lines_are_not(tmp_path):
    doc = load_document(DATA / "vim-version8-excerpt.txt")
    assert _sections(doc) == [None, "VERSION 8.1", "The terminal window", "Changed", "Added"]
    by_section = {p.section: doc.text[p.start : p.end] for p in reversed(doc.paragraphs)}  # the first of each
    assert by_section["The terminal window"].startswith("You can now open a window which functions as a terminal.")
    assert by_section["VERSION 8.1"] == "This section is about improvements made between version 8.0 and 8.1."
    heading = next(s for s in doc.sections if s.title == "The terminal window")
    assert doc.text[heading.heading_start : heading.heading_end] == "The terminal window\t\t\t\t*new-terminal-window*\n-------------------"
    # a short line alone in its block that reads like a sentence, or a block of several lines, stays a paragraph
    assert "For more information see |terminal-window|." in [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert doc.text[doc.paragraphs[0].start : doc.paragraphs[0].end].startswith("Patch 7.4.2366\nProblem:")
