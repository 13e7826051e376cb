"""Chunking: cutting a document's body into passages that follow its structure.

A passage is one paragraph, or part of a long paragraph split at sentence
boundaries, or several short neighbouring paragraphs of one section merged.
It never crosses a section heading (not even between two sections of one title, "### Fixed" under two releases;
nor, merged, a PDF page break) and never holds more word pieces than
`max_tokens`, so the embedding model (which silently truncates past its
window) sees all of it, nor more than `max_tokens * CHARS_PER_TOKEN` characters
(a run of text the tokenizer reads as one unknown word piece, or a 5 MB line
with no spaces, must still be cut). Every passage keeps `start`/`end` offsets into the
document text with `document.text[start:end] == passage.text`, and the
offsets of its sentences, which the highlighter uses.

Time is linear in the text (times a log factor): a piece is grown by galloping
and then bisecting over its candidate ends, so the tokenizer never re-reads a
growing prefix word by word. Where the token count is monotone in the prefix
(true of WordPiece), this cuts exactly where the word-by-word scan did.

Ids are a hash of document id, offsets and text: stable across rebuilds of the
same corpus, different as soon as the passage changes.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rag.corpus.documents import Document
from rag.corpus.extracted import TABLE_CELL_SEPARATOR

TokenCounter = Callable[[str], int]

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets and
# footnote markers like "[5]"), then whitespace, then something that can open a sentence, or the end of the text
# (a paragraph's last sentence keeps its "[7]"). What opens one: a capital of Latin (with Latin-1 and Extended-A/B),
# Greek or Cyrillic, U+0041-U+052F ("Éric", "Łódź"; not Vietnamese's U+1Exx), a digit or a currency sign ("£45 an
# hour, minimum three hours.").
CAPITALS = "".join(sorted({c for c in map(chr, range(0x41, 0x530)) if c.isupper() and c.isalpha()}))
_SENTENCE_END = re.compile(rf"[.!?…][\"'”’)\]]*(?:\s*\[\d+\])*(?=\s+[\"“‘(\[]?[{re.escape(CAPITALS)}0-9£$€¥]|\s*$)")
_RULE_CELL = re.compile(r"[ \t]*:?-+:?[ \t]*")  # one cell of a Markdown table's rule line: ---, :--:
# A list item's opening: a bullet, or a number or letter with . or ), then a space (group 1: through the space)
_LIST_ITEM = re.compile(r"([ \t]*(?:[-*•‣◦▪–]|\d{1,3}[.)]|[a-z][.)])[ \t]+)\S")
CHARS_PER_TOKEN = 10  # English prose runs 4-6 characters a word piece; a passage over 10 per token is not prose
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "e.g", "i.e", "etc", "no", "u.s", "jr", "sr", "cf", "p", "pp"}


@dataclass(frozen=True)
class ChunkerParams:
    max_tokens: int = 200
    min_chars: int = 300

    def as_dict(self) -> dict:
        return {"max_tokens": self.max_tokens, "min_chars": self.min_chars, "version": 7}  # 3: table rows and list items are sentences; 4: no sentence across a blank line; 5: a text's last footnote mark stays with its sentence; 6: two sections of one title are never merged, and Markdown, Word and repeated HTML section titles are paths (rag.corpus.documents); 7: a sentence may open with a non-ASCII capital or a currency sign

    @property
    def max_chars(self) -> int:
        return self.max_tokens * CHARS_PER_TOKEN


@dataclass(frozen=True)
class Passage:
    id: str
    document: str
    section: str | None
    paragraphs: tuple[int, ...]
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]  # absolute offsets into the document text

    def written_sentences(self) -> list[str]:
        """The text of each sentence as the document holds it."""
        return [self.text[s - self.start : e - self.start] for s, e in self.sentences]


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Absolute (start, end) of each sentence in `text`, which starts at `offset` in its document.

    Lines that are records rather than prose are cut apart first (`_line_units`): each line of a table (two or more
    lines in a row whose cells are joined by " | ", as the readers write sheets and tables) is a sentence of its
    own, and each item of a list (two or more lines in a run that open with a bullet or a number, "- ", "2. ",
    with the lines indented under them) starts a new one, so that a highlight is one row or one item and a row is
    embedded alone. A blank line ends a sentence too (two merged paragraphs that end without a full stop, slide
    bullets, "he explains:" before a quotation). Prose, and the text of a list item, is split at sentence ends as
    before; a list item's marker stays with its first sentence ("2. Try it out.", not "2." alone)."""
    spans: list[tuple[int, int]] = []
    for start, end, kind in _line_units(text):
        if kind == "row":
            spans.append((offset + start, offset + end))
            continue
        marker = _LIST_ITEM.match(text, start) if kind == "item" else None
        body = marker.end(1) if marker else start
        sentences = _prose_sentences(text[body:end], offset + body)
        if marker and sentences:
            sentences[0] = (offset + start + len(marker.group(1)) - len(marker.group(1).lstrip()), sentences[0][1])
        spans.extend(sentences)
    return spans


def table_lines(text: str) -> list[tuple[int, int, bool]]:
    """`text` as (start, end, is_row) lines, each without its outer spaces; is_row for a line of a table: one
    holding TABLE_CELL_SEPARATOR, a Markdown row ("|a|b|") or a Markdown rule line ("|---|:--:|"), in a run of at
    least two such lines."""
    bounds = [_trimmed(text, a, b) for a, b in _lines(text)]
    celled = [_table_like(text[a:b]) for a, b in bounds]
    return [(a, b, c and ((i > 0 and celled[i - 1]) or (i + 1 < len(celled) and celled[i + 1])))
            for i, ((a, b), c) in enumerate(zip(bounds, celled))]


def is_rule_line(line: str) -> bool:
    """A Markdown table's rule line: "|---|:--:|", "--- | ---", "|-|-|" (a lone "---" is a horizontal rule)."""
    line = line.strip(" \t")
    if "-" not in line or line.strip("|:- \t"):
        return False
    cells = line.strip("|").split("|")
    if not all(_RULE_CELL.fullmatch(c) for c in cells):
        return False
    return len(cells) >= 2 or (line.startswith("|") and line.endswith("|"))


def _table_like(line: str) -> bool:
    if TABLE_CELL_SEPARATOR in line or is_rule_line(line):
        return True
    return len(line) > 2 and line.startswith("|") and line.endswith("|") and line.count("|") >= 3  # |a|b|


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    piece = text[start:end]
    if not piece.strip(" \t"):
        return start, start
    return start + len(piece) - len(piece.lstrip(" \t")), start + len(piece.rstrip(" \t"))


def _lines(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for line in text.split("\n"):
        bounds.append((start, start + len(line)))
        start += len(line) + 1
    return bounds


def _line_units(text: str) -> list[tuple[int, int, str]]:
    """`text` cut into table rows ("row", one line each), list items ("item", a marker line and the lines indented
    under it) and the stretches of other text between them ("prose")."""
    if "\n" not in text:  # one line: a table needs two
        return [(0, len(text), "prose")]
    lines = _lines(text)  # as they stand: a list item's lines keep their indentation
    tabled = table_lines(text) if "|" in text else [(a, b, False) for a, b in lines]
    kinds = ["row" if is_row else "prose" if text[a:b].strip() else "blank" for a, b, is_row in tabled]
    _mark_list_items(text, lines, kinds)
    units: list[tuple[int, int, str]] = []
    previous = "blank"
    for (start, end), (row_start, row_end, _), kind in zip(lines, tabled, kinds):
        if kind == "row":  # a row's span without its outer spaces
            start, end = row_start, row_end
        if kind in ("prose", "more") and previous != "blank" and units and units[-1][2] == ("prose" if kind == "prose" else "item"):
            units[-1] = (units[-1][0], end, units[-1][2])  # prose goes on; an item takes its indented lines
        elif kind != "blank":  # a blank line ends a paragraph: no sentence runs across it
            units.append((start, end, "prose" if kind == "more" else kind))
        previous = kind
    return units


def _mark_list_items(text: str, lines, kinds: list[str]) -> None:
    """Mark the lines of every list of two items or more: "item" where an item opens, "more" for a line indented
    under it."""
    i = 0
    while i < len(lines):
        opening = _LIST_ITEM.match(text, lines[i][0], lines[i][1]) if kinds[i] == "prose" else None
        if not opening:
            i += 1
            continue
        indent, items, j = len(opening.group(0)) - len(opening.group(0).lstrip()), {i}, i + 1
        while j < len(lines) and kinds[j] == "prose":
            a, b = lines[j][0], lines[j][1]
            line = text[a:b]
            if _LIST_ITEM.match(text, a, b):
                items.add(j)
            elif not line.strip() or len(line) - len(line.lstrip()) <= indent:
                break
            j += 1
        if len(items) >= 2:
            for k in range(i, j):
                kinds[k] = "item" if k in items else "more"
        i = j


def _prose_sentences(text: str, offset: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        word = text[max(0, match.start() - 4) : match.start()].split()[-1:] or [""]
        if word[0].lower().lstrip("(“\"") in _ABBREVIATIONS:
            continue
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    result = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        s, e = s + lead, s + len(piece.rstrip())
        if e > s:
            result.append((offset + s, offset + e))
    return result


def chunk_document(document: Document, count_tokens: TokenCounter, params: ChunkerParams) -> list[Passage]:
    """The document's passages in reading order (see the module docstring for the rules)."""
    units: list[tuple[str | None, tuple[int, ...], int, int]] = []
    for para in document.paragraphs:
        if _fits(document.text, para.start, para.end, count_tokens, params):
            units.append((para.section, (para.number,), para.start, para.end))
            continue
        for start, end in _split_long(document.text, para.start, para.end, count_tokens, params):
            units.append((para.section, (para.number,), start, end))
    headings = tuple(sorted(section.heading_start for section in document.sections if section.title is not None))
    merged = _merge_short(document.text, units, count_tokens, params, document.pages, headings)
    return [_passage(document, *unit) for unit in merged]


def chunk_corpus(documents: Iterable[Document], count_tokens: TokenCounter, params: ChunkerParams) -> list[Passage]:
    return [p for doc in documents for p in chunk_document(doc, count_tokens, params)]


def _passage(document: Document, section: str | None, paragraphs: tuple[int, ...], start: int, end: int) -> Passage:
    text = document.text[start:end]
    digest = hashlib.sha256(f"{document.id}\0{start}\0{end}\0{text}".encode()).hexdigest()[:16]
    return Passage(
        id=digest,
        document=document.id,
        section=section,
        paragraphs=paragraphs,
        start=start,
        end=end,
        text=text,
        sentences=tuple(sentence_spans(text, start)),
    )


def _split_long(text: str, start: int, end: int, count_tokens: TokenCounter, params: ChunkerParams) -> list[tuple[int, int]]:
    """Split text[start:end] at sentence boundaries into near-equal pieces of at most max_tokens."""
    max_tokens, max_chars = params.max_tokens, params.max_chars
    sentences: list[tuple[int, int, int]] = []  # (start, end, tokens)
    for s, e in sentence_spans(text[start:end], start):
        tokens = count_tokens(text[s:e]) if e - s <= max_chars else max_tokens + 1
        if tokens <= max_tokens:
            sentences.append((s, e, tokens))
        else:
            sentences.extend((a, b, count_tokens(text[a:b])) for a, b in _split_words(text, s, e, count_tokens, params))
    total = sum(tokens for _, _, tokens in sentences)  # = the paragraph's count for WordPiece, without re-reading it
    target = total / math.ceil(total / max_tokens)
    pieces: list[tuple[int, int]] = []
    piece_start, piece_end, piece_tokens = sentences[0]
    for s, e, tokens in sentences[1:]:
        too_long = e - piece_start > max_chars
        grown = max_tokens + 1 if too_long else count_tokens(text[piece_start:e])
        if grown > max_tokens or piece_tokens >= target:
            pieces.append((piece_start, piece_end))
            piece_start, grown = s, tokens
        piece_end, piece_tokens = e, grown
    pieces.append((piece_start, piece_end))
    return pieces


def _split_words(text: str, start: int, end: int, count_tokens: TokenCounter, params: ChunkerParams) -> list[tuple[int, int]]:
    """Last resort for a single sentence longer than the window: cut between words, and inside a
    word that alone is over the window."""
    words = [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", text[start:end])]
    ends = [e for _, e in words]
    pieces, i, size = [], 0, 1
    while i < len(words):
        j = _last_fit(text, words[i][0], ends, i, i + size - 1, count_tokens, params)
        if j == i and not _fits(text, words[i][0], words[i][1], count_tokens, params):
            pieces.extend(_split_chars(text, *words[i], count_tokens, params))
        else:
            pieces.append((words[i][0], words[j][1]))
        i, size = j + 1, j - i + 1
    return pieces


def _split_chars(text: str, start: int, end: int, count_tokens: TokenCounter, params: ChunkerParams) -> list[tuple[int, int]]:
    """Cut one over-long word into pieces that fit, at character positions."""
    pieces, size = [], params.max_chars
    while start < end:
        stops = range(start + 1, min(end, start + params.max_chars) + 1)
        j = _last_fit(text, start, stops, 0, size - 1, count_tokens, params)
        pieces.append((start, stops[j]))
        start, size = stops[j], j + 1
    return pieces


def _fits(text: str, start: int, end: int, count_tokens: TokenCounter, params: ChunkerParams) -> bool:
    return end - start <= params.max_chars and count_tokens(text[start:end]) <= params.max_tokens


def _last_fit(text, start: int, ends, first: int, guess: int, count_tokens: TokenCounter, params: ChunkerParams) -> int:
    """The largest j >= first with text[start:ends[j]] within the limits (`first` if none is).

    Tries `guess` first (the previous piece's size: in even text, two counts settle it), then
    gallops and bisects, so a call reads a few times the piece it returns, never the rest of the text.
    Exact when the token count grows with the prefix."""
    fits = lambda j: _fits(text, start, ends[j], count_tokens, params)  # noqa: E731
    guess = min(max(guess, first), len(ends) - 1)
    if guess > first and fits(guess):
        good, step = guess, 1
        while good + step < len(ends) and fits(good + step):
            good, step = good + step, step * 2
        bad = min(good + step, len(ends))  # ends[bad] does not fit, or is past the end
    else:
        good, bad = first, guess if guess > first else len(ends)
        step = 1
        while bad == len(ends) and good + step < len(ends):
            if fits(good + step):
                good, step = good + step, step * 2
            else:
                bad = good + step
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def _merge_short(text, units, count_tokens: TokenCounter, params: ChunkerParams, pages: tuple[int, ...] = (),
                 headings: tuple[int, ...] = ()):
    """Merge a short unit with its neighbour in the same section and on the same page while the result fits the
    window (a passage spans a page break only where one paragraph does). `headings`: where each titled section's
    heading starts; none may lie between the two, so two sections of one title ("### Fixed" under two releases)
    stay apart."""
    merged: list[tuple[str | None, tuple[int, ...], int, int]] = []
    for unit in units:
        if merged:
            prev = merged[-1]
            short = (prev[3] - prev[2]) < params.min_chars or (unit[3] - unit[2]) < params.min_chars
            if (
                short
                and prev[0] == unit[0]
                and prev[1][-1] != unit[1][0]  # pieces of one split paragraph stay apart
                and bisect.bisect_right(pages, prev[3]) == bisect.bisect_right(pages, unit[2])  # no page starts between
                and bisect.bisect_right(headings, prev[3]) == bisect.bisect_right(headings, unit[2])  # nor a heading
                and _fits(text, prev[2], unit[3], count_tokens, params)
            ):
                merged[-1] = (prev[0], prev[1] + unit[1], prev[2], unit[3])
                continue
        merged.append(unit)
    return merged
