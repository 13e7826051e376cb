"""`Extracted`: what a reader makes of one file's bytes (rag/corpus/formats.py and rag/corpus/office.py return it).

Its own module so that the readers of each format can return it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_CELL_SEPARATOR = " | "  # how the readers write a table row: its cells joined by this, one line a row
ROW_NUMBER_HEADER = "row"  # the header of the row-number column a sheet's lines start with (rag.corpus.office)


@dataclass(frozen=True)
class Extracted:
    text: str  # what every offset indexes into, and what GET /documents/{id} returns
    metadata: dict
    body_floor: int = 0  # the body starts at or after this offset (after front matter)
    kind: str = "text"  # text | markdown | html | pdf | an office kind (office.HEADED_KINDS): how headings are recognised
    headings: frozenset[int] = frozenset()  # html and office kinds: the start offsets of heading blocks
    pages: tuple[int, ...] = ()  # start offset of each page (PDF) or slide (.pptx)
    heading_levels: tuple[tuple[int, int], ...] = ()  # (offset, level 1-9) of the headings whose level the format gives (Word, HTML)
