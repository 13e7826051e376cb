"""Filters: which passages a question may be answered from (documents, authors, dates, sections).

A filter is applied *before* ranking: dense search runs over the allowed
passages only (a FAISS id selector) and BM25 scores of the others are
dropped, so a filtered query returns the best passages within the filter,
never a global top-k cut down afterwards.

`Filters.parse(raw)` checks a filter's shape once (rag.query.request.Query) and
`Filters.check(documents, passages)` its document ids and sections against the snapshot it runs on,
each saying what is wrong in one sentence (a malformed date, an unknown
document id); `passage_mask` turns it into one boolean per passage.

Dates: `published_after` / `published_before` are inclusive `YYYY-MM-DD`
bounds. A document's `published` may be a year, a month or a day; it is a
span (2018 = 2018-01-01..2018-12-31) and passes a bound if any of the span
does. A document without a date never passes a date filter. Authors match
case-insensitively, any one of a document's authors; sections match by title
("Opening" is the untitled text before the first heading), a Markdown section's path too by its last titles
("Fixed" and "2.2.1 › Fixed" both match "2.2.1 › Fixed").
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rag.errors import InvalidInput
from rag.corpus.documents import SECTION_PATH
from rag.corpus.passage_text import UNTITLED_SECTION

FIELDS = ("documents", "authors", "published_after", "published_before", "sections")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class Filters:
    documents: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    published_after: dt.date | None = None
    published_before: dt.date | None = None
    sections: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in FIELDS)

    @classmethod
    def parse(cls, raw: Mapping | None) -> "Filters":
        """A filter of the right shape from request data (None or {} is no filter; a Filters is taken as it is);
        InvalidInput says what is wrong. Whether its documents exist is a question for one snapshot: `check`."""
        if raw is None:
            return cls()
        if isinstance(raw, Filters):
            return raw
        if not isinstance(raw, Mapping):
            raise InvalidInput("filters must be an object with documents, authors, published_after, published_before, sections")
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise InvalidInput(f"filters: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        return cls.of(*(raw.get(name) for name in FIELDS))

    @classmethod
    def of(cls, documents=None, authors=None, published_after=None, published_before=None, sections=None) -> "Filters":
        """A filter from its five fields (lists of strings, dates as YYYY-MM-DD or `date`), each checked: for a
        caller whose schema has already checked the shape (HTTP, MCP), what a schema cannot say is still said
        here: a date that is not in the calendar, bounds out of order."""
        ids = _strings(documents, "documents")
        after = _bound(published_after, "published_after")
        before = _bound(published_before, "published_before")
        if after and before and after > before:
            raise InvalidInput(f"filters: published_after ({after}) is later than published_before ({before})")
        return cls(ids, _strings(authors, "authors"), after, before, _strings(sections, "sections"))

    def check(self, documents: Mapping, passages=()) -> "Filters":
        """This filter, if every document it names is in `documents` and every section it names is the section of
        one of `passages` (one snapshot's); InvalidInput otherwise: a filter that can match nothing is a mistake
        to say, not an empty answer."""
        missing = [i for i in self.documents if i not in documents]
        if missing:
            raise InvalidInput(f"filters.documents: no document with id {', '.join(map(repr, missing))}")
        if self.sections:
            titles = {p.section or UNTITLED_SECTION for p in passages}
            unknown = [s for s in self.sections if not any(_section_matches(t, {s.casefold()}) for t in titles)]
            if unknown:
                raise InvalidInput(f"filters.sections: no section titled {', '.join(map(repr, unknown))} "
                                   f"(a section is named as citations show it; {UNTITLED_SECTION!r} is the text before the first heading)")
        return self

    def allows_document(self, document) -> bool:
        if self.documents and document.id not in self.documents:
            return False
        if self.authors:
            names = {a.casefold() for a in (getattr(document, "authors", ()) or ((document.author,) if document.author else ()))}
            if document.author:
                names.add(document.author.casefold())
            if not names & {a.casefold() for a in self.authors}:
                return False
        if self.published_after or self.published_before:
            span = date_span(document.published)
            if span is None:
                return False
            if self.published_after and span[1] < self.published_after:
                return False
            if self.published_before and span[0] > self.published_before:
                return False
        return True


def passage_mask(filters: Filters, passages, documents: Mapping) -> np.ndarray | None:
    """One bool per passage (True = may be returned), or None when nothing is filtered."""
    if not filters:
        return None
    allowed = {doc_id for doc_id, doc in documents.items() if filters.allows_document(doc)}
    sections = {s.casefold() for s in filters.sections}
    return np.fromiter(
        (p.document in allowed and (not sections or _section_matches(p.section or UNTITLED_SECTION, sections)) for p in passages),
        dtype=bool,
        count=len(passages),
    )


def _section_matches(title: str, wanted: set[str]) -> bool:
    """`title` (a section's title or Markdown path, rag.corpus.documents.SECTION_PATH) is wanted whole or by its last
    titles."""
    parts = title.casefold().split(SECTION_PATH)
    return any(SECTION_PATH.join(parts[i:]) in wanted for i in range(len(parts)))


def date_span(published: str | None) -> tuple[dt.date, dt.date] | None:
    """The first and last day a (partial) ISO date covers: "2018" -> 2018-01-01..2018-12-31."""
    match = _DATE.match(str(published or ""))
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if day:
            return dt.date(year, month, day), dt.date(year, month, day)
        if month:
            return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    except ValueError:
        return None


def _bound(value, name: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else _fail(name, value)
    except ValueError:
        return _fail(name, value)


def _fail(name: str, value) -> None:
    raise InvalidInput(f"filters.{name} must be a date YYYY-MM-DD; got {str(value)[:40]!r}")


def _strings(value, name: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"filters.{name} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)
