"""The verdict in words, for a chat model (the MCP note) and for a person (the page and the CLI): api.wording."""

from api import wording as V


def test_notes_and_words_follow_the_verdict():
    assert "answer from them and cite" in V.verdict_note("found")
    assert "may not cover it" in V.verdict_note("uncertain")
    assert "do not answer it" in V.verdict_note("not_found")
    assert all(V.QUOTED_DATA in V.verdict_note(v) for v in ("found", "uncertain", "not_found"))
    assert V.verdict_words("found") == "found: the passages likely answer this"
    assert V.verdict_words("not_found", 0.123) == "not found: the documents do not seem to answer this; these are the closest passages (confidence 0.12)"


def test_a_citation_line_cuts_a_long_title_at_a_word():
    from types import SimpleNamespace

    from api.cli import CITED_TITLE_CHARS, cited_at

    long_title = ("The Complete and Definitive Larkspur Guide to Safe, Scenic and Family-Friendly Cycling Routes Between "
                  "Bristol, Bath and the Surrounding Villages (2025 Edition)")
    cited = SimpleNamespace(title=long_title, section="Refreshments", paragraphs=[2], page=None, page_end=None, start=475, end=579)
    line = cited_at(cited)
    title = line.split(" › ")[0]
    assert title.endswith("…") and len(title) <= CITED_TITLE_CHARS + 1 and long_title.startswith(title[:-1])
    assert line.endswith(" › Refreshments › ¶2 · chars 475–579")
    short = SimpleNamespace(title="Changelog", section=None, paragraphs=[6], page=None, page_end=None, start=1, end=9)
    assert cited_at(short) == "Changelog › ¶6 · chars 1–9"
