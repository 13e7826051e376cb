"""The verdict in words, for a chat model (the MCP note) and for a person (the page and the CLI): api.wording."""

from api import wording as V


def test_notes_and_words_follow_the_verdict():
    assert "answer from them and cite" in V.verdict_note("found")
    assert "may not cover it" in V.verdict_note("uncertain")
    assert "do not answer it" in V.verdict_note("not_found")
    assert all(V.QUOTED_DATA in V.verdict_note(v) for v in ("found", "uncertain", "not_found"))
    assert V.verdict_words("found") == "found: the passages likely answer this"
    assert V.verdict_words("not_found", 0.123) == "not found: the documents do not seem to answer this; these are the closest passages (confidence 0.12)"
