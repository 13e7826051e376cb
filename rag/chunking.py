"""Chunking: cutting a document's body into passages that follow its structure.

A passage is one paragraph, or part of a long paragraph split at sentence
boundaries, or several short neighbouring paragraphs of one section merged.
It never crosses a section heading and never holds more word pieces than
`max_tokens`, so the embedding model (which silently truncates past its
window) sees all of it. Every passage keeps `start`/`end` offsets into the
document text with `document.text[start:end] == passage.text`, and the
offsets of its sentences, which the highlighter uses.

Ids are a hash of document id, offsets and text: stable across rebuilds of the
same corpus, different as soon as the passage changes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rag.documents import Document

TokenCounter = Callable[[str], int]

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets and
# footnote markers like "[5]"), then whitespace, then something that can open a sentence.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?:\s*\[\d+\])*(?=\s+[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "e.g", "i.e", "etc", "no", "u.s", "jr", "sr", "cf", "p", "pp"}


@dataclass(frozen=True)
class ChunkerParams:
    max_tokens: int = 200
    min_chars: int = 300

    def as_dict(self) -> dict:
        return {"max_tokens": self.max_tokens, "min_chars": self.min_chars, "version": 1}


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


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Absolute (start, end) of each sentence in `text`, which starts at `offset` in its document."""
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
        text = document.text[para.start : para.end]
        if count_tokens(text) <= params.max_tokens:
            units.append((para.section, (para.number,), para.start, para.end))
            continue
        for start, end in _split_long(document.text, para.start, para.end, count_tokens, params.max_tokens):
            units.append((para.section, (para.number,), start, end))
    merged = _merge_short(document.text, units, count_tokens, params)
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


def _split_long(text: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int) -> list[tuple[int, int]]:
    """Split text[start:end] at sentence boundaries into near-equal pieces of at most max_tokens."""
    sentences = []
    for s, e in sentence_spans(text[start:end], start):
        if count_tokens(text[s:e]) <= max_tokens:
            sentences.append((s, e))
        else:
            sentences.extend(_split_words(text, s, e, count_tokens, max_tokens))
    total = count_tokens(text[start:end])
    target = total / math.ceil(total / max_tokens)
    pieces: list[tuple[int, int]] = []
    piece_start = sentences[0][0]
    piece_end = sentences[0][1]
    for s, e in sentences[1:]:
        grown = count_tokens(text[piece_start:e])
        if grown > max_tokens or count_tokens(text[piece_start:piece_end]) >= target:
            pieces.append((piece_start, piece_end))
            piece_start = s
        piece_end = e
    pieces.append((piece_start, piece_end))
    return pieces


def _split_words(text: str, start: int, end: int, count_tokens: TokenCounter, max_tokens: int) -> list[tuple[int, int]]:
    """Last resort for a single sentence longer than the window: cut between words."""
    pieces, piece_start, last_end = [], start, start
    for word in re.finditer(r"\S+", text[start:end]):
        w_end = start + word.end()
        if last_end > piece_start and count_tokens(text[piece_start:w_end]) > max_tokens:
            pieces.append((piece_start, last_end))
            piece_start = start + word.start()
        last_end = w_end
    pieces.append((piece_start, last_end))
    return pieces


def _merge_short(text, units, count_tokens: TokenCounter, params: ChunkerParams):
    """Merge a short unit with its neighbour in the same section while the result fits the window."""
    merged: list[tuple[str | None, tuple[int, ...], int, int]] = []
    for unit in units:
        if merged:
            prev = merged[-1]
            short = (prev[3] - prev[2]) < params.min_chars or (unit[3] - unit[2]) < params.min_chars
            if (
                short
                and prev[0] == unit[0]
                and prev[1][-1] != unit[1][0]  # pieces of one split paragraph stay apart
                and count_tokens(text[prev[2] : unit[3]]) <= params.max_tokens
            ):
                merged[-1] = (prev[0], prev[1] + unit[1], prev[2], unit[3])
                continue
        merged.append(unit)
    return merged
