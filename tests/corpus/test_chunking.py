"""Passages: exact offsets, full coverage of the body, the model window, section boundaries."""

from rag.corpus.chunking import ChunkerParams, Passage, chunk_document, sentence_spans
from rag.corpus.documents import load_document
from rag.corpus.passage_text import heading_text, sentence_texts
from tests.conftest import ARTICLE


def _passages(encoder, **params):
    doc = load_document(ARTICLE)
    return doc, chunk_document(doc, encoder.count_tokens, ChunkerParams(**params))


def test_every_passage_is_its_source_slice(service):
    for passage in service.snapshot.passages:
        doc = service.documents[passage.document]
        assert doc.text[passage.start : passage.end] == passage.text
        for start, end in passage.sentences:
            assert passage.start <= start < end <= passage.end


def test_passages_cover_the_whole_body_once(encoder):
    doc, passages = _passages(encoder)
    covered = [0] * len(doc.text)
    for p in passages:
        for i in range(p.start, p.end):
            covered[i] += 1
    assert max(covered) == 1, "passages overlap"
    for para in doc.paragraphs:
        missing = [i for i in range(para.start, para.end) if not covered[i] and not doc.text[i].isspace()]
        assert not missing, f"paragraph {para.number} not fully covered"
    assert {n for p in passages for n in p.paragraphs} == {p.number for p in doc.paragraphs}


def test_no_passage_exceeds_the_model_window(encoder, service):
    limit = encoder.max_seq_length - 2
    for passage in service.snapshot.passages:
        doc = service.documents[passage.document]
        assert encoder.count_tokens(heading_text(doc, passage)) <= limit  # any neighbour context comes after
        assert encoder.count_tokens(passage.text) <= 200


def test_no_passage_crosses_a_heading(encoder):
    doc, passages = _passages(encoder)
    headings = [(s.heading_start, s.heading_end) for s in doc.sections if s.title]
    for p in passages:
        assert all(not (p.start < h_end and h_start < p.end) for h_start, h_end in headings)
        assert {doc.paragraphs[n - 1].section for n in p.paragraphs} == {p.section}


def test_two_sections_of_one_title_stay_apart(encoder, tmp_path):
    """"Fixed" under two releases, in a format whose headings carry no level (a Markdown one names its release:
    test_structure): short paragraphs of same-titled sections were merged across the release heading between them
    (the passage held "Release 2.2.1" and both releases' fixes)."""
    path = tmp_path / "changes.txt"
    path.write_text("Changes\n\nRelease 2.3.0\n\nFixed\n\n- Reminders no longer sent twice.\n\n"
                    "Release 2.2.1\n\nFixed\n\n- Login works on Safari.\n\n- Prices round to pence.\n")
    doc = load_document(path)
    passages = chunk_document(doc, encoder.count_tokens, ChunkerParams())
    assert [(p.section, p.text) for p in passages] == [
        ("Fixed", "- Reminders no longer sent twice."), ("Fixed", "- Login works on Safari.\n\n- Prices round to pence.")]


def test_long_paragraphs_split_at_sentences_and_short_ones_merge(encoder):
    # The article's longest sentence is 128 word pieces: at 130, every split falls between sentences.
    doc, passages = _passages(encoder, max_tokens=130, min_chars=300)
    assert all(encoder.count_tokens(p.text) <= 130 for p in passages)
    split = [p for p in passages if sum(q.paragraphs == p.paragraphs for q in passages) > 1]
    assert split, "a 130-token limit must split some paragraphs"
    sentence_ends = {e for p in passages for _, e in p.sentences}
    for p in split:
        assert p.end in sentence_ends and p.text.rstrip()[-1] in ".!?”]\"’"
    # Below the longest sentence, the last resort cuts between words, still within the limit.
    _, tight = _passages(encoder, max_tokens=40, min_chars=300)
    assert all(encoder.count_tokens(p.text) <= 40 for p in tight)
    _, merged = _passages(encoder, max_tokens=200, min_chars=300)
    assert any(len(p.paragraphs) > 1 for p in merged)


def test_ids_are_stable_and_unique(encoder):
    _, first = _passages(encoder)
    _, second = _passages(encoder)
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == len(first)


def test_sentence_spans_keep_footnotes_and_abbreviations():
    text = "It was won in 1917. [5] Then vs. now it differs. “Quoted.” Next one."
    pieces = [text[s:e] for s, e in sentence_spans(text)]
    assert pieces == ["It was won in 1917. [5]", "Then vs. now it differs.", "“Quoted.”", "Next one."]


def test_a_sentence_may_open_with_a_capital_of_any_alphabet_a_digit_or_a_currency_sign():
    text = "Has a balcony overlooking the river.\n£45 an hour, minimum three hours. Éric booked it. Łódź next. €20 extra. 3 rooms. so no."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Has a balcony overlooking the river.", "£45 an hour, minimum three hours.", "Éric booked it.", "Łódź next.",
        "€20 extra.", "3 rooms. so no."]


def test_each_table_row_is_a_sentence_and_the_prose_around_it_splits_as_before():
    text = ("Stock on hand. Counted in May.\nrow | SKU | Product\n2 | A-1 | Oak desk\n3 | A-2 | Steel chair\n"
            "Counted again in June. Done.")
    pieces = [text[s - 100 : e - 100] for s, e in sentence_spans(text, 100)]  # offsets are absolute
    assert pieces == ["Stock on hand.", "Counted in May.", "row | SKU | Product", "2 | A-1 | Oak desk", "3 | A-2 | Steel chair",
                      "Counted again in June.", "Done."]
    one_bar = "Either | or. That is one line, not a table."  # a single line with a bar is prose
    assert [one_bar[s:e] for s, e in sentence_spans(one_bar)] == ["Either | or.", "That is one line, not a table."]
    prose = "A wrapped line\nthat goes on. And a second sentence."  # without a table nothing changes
    assert [prose[s:e] for s, e in sentence_spans(prose)] == ["A wrapped line\nthat goes on.", "And a second sentence."]


def test_a_table_row_is_embedded_under_its_header_cell_by_cell():
    text = "row | Name | Department | Office\n4 | Chen Wei | Engineering | Warsaw\n5 | Dana Scott | | Madrid\n6 | a | b | c | d"
    passage = Passage("p", "staff", None, (1,), 0, len(text), text, tuple(sentence_spans(text)))
    assert sentence_texts(passage) == [
        "row | Name | Department | Office",  # the header as it is
        "Name: Chen Wei; Department: Engineering; Office: Warsaw",  # the sheet's row number left out
        "Name: Dana Scott; Office: Madrid",  # an empty cell left out
        "6 | a | b | c | d",  # more cells than the header: as it is
    ]
    markdown = "Intro.\n\n| Tool | Use |\n|---|---|\n| grep | search |"
    start = markdown.index("|")
    passage = Passage("q", "tools", None, (2,), start, len(markdown), markdown[start:], tuple(sentence_spans(markdown[start:], start)))
    assert sentence_texts(passage) == ["| Tool | Use |", "|---|---|", "Tool: grep; Use: search"]


def test_each_list_item_starts_a_sentence_and_keeps_its_marker_and_indented_lines():
    text = ("Before you leave:\n- Close the valve. Wait a minute.\n- Lock the lid\n  with the brass key\n- Switch off the light\n"
            "Then go home.\n\n1. Find the parameters\n2. Try it out. Then report.")
    pieces = [text[s:e] for s, e in sentence_spans(text)]
    assert pieces == ["Before you leave:", "- Close the valve.", "Wait a minute.", "- Lock the lid\n  with the brass key",
                      "- Switch off the light", "Then go home.", "1. Find the parameters", "2. Try it out.", "Then report."]
    dash = "A wrapped line\n- with a dash in it\nand more. Next."  # one line opening with a dash is not a list
    assert [dash[s:e] for s, e in sentence_spans(dash)] == ["A wrapped line\n- with a dash in it\nand more.", "Next."]
    changelog = "[ Marc ]\n  * improve the docs.\n  * fix a typo\n    in the manual"
    assert [changelog[s:e] for s, e in sentence_spans(changelog)] == ["[ Marc ]", "* improve the docs.", "* fix a typo\n    in the manual"]


def test_no_sentence_runs_across_a_blank_line():
    text = "Kickoff agenda for the partner meeting\n\nThe Falcon budget is 900 EUR\n\nIn 1919 he explains:\n\n“Once in power.” Then more."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Kickoff agenda for the partner meeting", "The Falcon budget is 900 EUR", "In 1919 he explains:", "“Once in power.”", "Then more."]


def test_markdown_tables_compact_or_spaced_and_a_passage_cut_from_the_middle_of_one():
    compact = "|a|b|\n|-|-|\n|1|2|"
    assert [compact[s:e] for s, e in sentence_spans(compact)] == ["|a|b|", "|-|-|", "|1|2|"]
    spaced = "| a | b |\n|---|---| \n  | 1 | 2 |  "  # a rule line with a trailing space; spans without outer spaces
    assert [spaced[s:e] for s, e in sentence_spans(spaced)] == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    middle = "| Person7 | Dept7 | 49 |\n| Person8 | Dept8 | 50 |"  # no rule line: its first line is a row, not a header
    passage = Passage("m", "t", None, (1,), 0, len(middle), middle, tuple(sentence_spans(middle)))
    assert sentence_texts(passage) == ["| Person7 | Dept7 | 49 |", "| Person8 | Dept8 | 50 |"]


def test_a_line_of_spaces_between_table_lines_is_read_in_linear_time():
    text = "a | b\n" + " " * 200_000 + "x\nc | d"  # a rule-line test that backtracks would take minutes
    assert [text[s:e] for s, e in sentence_spans(text)] == ["a | b\n" + " " * 200_000 + "x\nc | d"]


def test_a_last_footnote_mark_stays_with_its_sentence():
    text = "It becomes a permanent revolution.\u201d\u00a0[7]"  # the end of a passage: no next sentence to look at
    assert [text[s:e] for s, e in sentence_spans(text)] == [text]


def test_a_list_is_read_the_same_beside_a_bar():
    """A bar anywhere in the text (a table's, or "a | b" in prose) must not cost a list item its indented lines."""
    for opening in ("Steps:", "Steps (a | b):"):
        text = f"{opening}\n- Lock the lid\n  with the brass key\n- Leave"
        assert [text[s:e] for s, e in sentence_spans(text)] == [opening, "- Lock the lid\n  with the brass key", "- Leave"]
