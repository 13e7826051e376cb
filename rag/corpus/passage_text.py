"""What is embedded and indexed per passage: the text rule, versioned.

`heading_text` (title, section, passage) is what BM25 indexes; `embedding_text`
adds the previous passage's opening sentence for the embedding only; `sentence_texts` is what each sentence
is embedded as (a table row under its header). What is
embedded must fit the model window: the chunker keeps every passage within
`max_passage_tokens`, and when the title and section on top of it would not
fit (a 300-word-piece chemical title), `fit_heading` shortens the title first,
then the section, word by word (ending in "…"), down to nothing: the passage
itself is never cut or dropped. `EMBEDDING_TEXT_VERSION` goes into the index
manifest: changing the rule makes every index built with the old one stale
(shortening changes no text that fitted before, so it needs no new version).
"""

from __future__ import annotations

from collections.abc import Callable

from rag.corpus.chunking import Passage, is_rule_line, table_lines
from rag.corpus.documents import Document
from rag.corpus.extracted import ROW_NUMBER_HEADER, TABLE_CELL_SEPARATOR

EMBEDDING_TEXT_VERSION = "title+section+text+previous-opening/2; sentences: table rows under their header/1"


def heading_text(document: Document, passage: Passage) -> str:
    """A passage under its document title and section: what BM25 indexes, and what must fit the window."""
    return _heading(document.title, passage.section, passage)


def fit_heading(document: Document, passage: Passage, count_tokens: Callable[[str], int] | None, limit: int | None) -> str:
    """`heading_text`, with the title and then the section shortened until the whole fits `limit` word pieces:
    the title alone first; if even one word of it does not fit beside the full section, the title keeps its
    first TITLE_WORDS_KEPT words and the section is shortened; then the section goes and the title is
    shortened again; last, the passage alone."""
    text = heading_text(document, passage)
    if count_tokens is None or limit is None or count_tokens(text) <= limit:
        return text

    def fits(candidate: str) -> bool:
        return count_tokens(candidate) <= limit

    title, section = document.title.split(), (passage.section or "").split()
    shortened = lambda words, n: " ".join(words[:n]) + ("…" if n < len(words) else "")  # noqa: E731
    attempts = [
        (lambda n: (shortened(title, n), passage.section), len(title)),
        (lambda n: (shortened(title, TITLE_WORDS_KEPT), shortened(section, n) if n else None), len(section)),
        (lambda n: (shortened(title, n), None), len(title)),
    ]
    for make, most in attempts:
        keep = _most_that_fit(most, lambda n: fits(_heading(*make(n), passage)))
        if keep and fits(candidate := _heading(*make(keep), passage)):
            return candidate
    return passage.text  # not even a word of the title fits beside the passage: it goes in alone


TITLE_WORDS_KEPT = 8


def _heading(title: str, section: str | None, passage: Passage) -> str:
    heading = f"{title}. {section}." if section else f"{title}."
    return f"{heading}\n{passage.text}"


def _most_that_fit(most: int, fits: Callable[[int], bool]) -> int:
    """The largest n in 1..most with fits(n), or 0 (binary search: the count grows with n)."""
    low, high = 0, most
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def embedding_text(document: Document, passage: Passage, previous: Passage | None = None,
                   count_tokens: Callable[[str], int] | None = None, limit: int | None = None) -> str:
    """What the model sees for a passage: title and section, its text, then the opening sentence
    of the passage before it in the same section.

    A paragraph often continues its neighbour's argument without naming its subject ("The
    bourgeoisie had strong ties..." under a paragraph that opens "Trotsky asserted..."); the
    neighbour's opening sentence names it. It comes last, so if the whole does not fit the model
    window, truncation cuts only this context, never the passage. Only the embedding sees it;
    the returned passage is the source slice.
    """
    text = fit_heading(document, passage, count_tokens, limit)
    if previous is not None and previous.document == passage.document and previous.section == passage.section:
        start, end = previous.sentences[0]
        text += "\n" + document.text[start:end]
    return text


def embedding_texts(passages: list[Passage], documents: dict[str, Document],
                    count_tokens: Callable[[str], int] | None = None, limit: int | None = None) -> list[str]:
    """Each passage's embedded text; with `count_tokens` and `limit`, headings shortened to fit (`fit_heading`)."""
    return [embedding_text(documents[p.document], p, passages[i - 1] if i else None, count_tokens, limit)
            for i, p in enumerate(passages)]


def sentence_texts(passage: Passage) -> list[str]:
    """What the model sees for each of the passage's sentences: the sentence itself, except a table row (a line of
    a table, rag.corpus.chunking.table_lines), which is read under its table's header cell by cell:
    "row | Name | Department" over "4 | Chen Wei | Engineering" gives "Name: Chen Wei; Department: Engineering"
    (a sheet's row numbers left out: on the walkthrough's staff sheet they cost the question "Which department does
    Chen Wei work in?" 0.12 of its cosine with the row). A row alone does not say what its cells are, so neither a
    question about a department nor the verdict's masked question ("Which department does ... work in") found
    anything in it. A row with more cells than its header, a rule line ("|---|---|") and the header itself are read
    as they are."""
    return [_under_header(header, text) if header is not None and header != text else text
            for text, header in zip(passage.written_sentences(), row_headers(passage))]


def row_headers(passage: Passage) -> list[str | None]:
    """For each of the passage's sentences, the header of its table when it is a table row (the header's own
    line gives itself), else None. The header is the first line of the table's run of lines in the passage: the
    office readers start every group of rows with it. A Markdown table ("| a | b |" lines) has one only where its
    rule line follows: a passage cut from the middle of a long one starts with a data row, which is no header."""
    if "|" not in passage.text:  # no table line (rag.corpus.chunking.table_lines) without one
        return [None] * len(passage.sentences)
    header_of: dict[int, str | None] = {}  # a row's start in the passage -> its table's header
    run: list[tuple[int, int]] = []
    for start, end, is_row in [*table_lines(passage.text), (0, 0, False)]:
        if is_row:
            run.append((start, end))
            continue
        if run:
            first = passage.text[run[0][0] : run[0][1]]
            markdown = first.startswith("|")
            headed = not markdown or (len(run) > 1 and is_rule_line(passage.text[run[1][0] : run[1][1]]))
            header_of.update((a, first if headed else None) for a, _ in run)
            run = []
    return [header_of.get(start - passage.start) for start, _ in passage.sentences]


def _under_header(header: str, row: str) -> str:
    names, cells = _cells(header), _cells(row)
    if len(cells) > len(names) or is_rule_line(row) or is_rule_line(header):
        return row
    return "; ".join(f"{name}: {cell}" if name else cell for name, cell in zip(names, cells) if cell and name != ROW_NUMBER_HEADER)


def _cells(line: str) -> list[str]:
    """A table line's cells; a Markdown row's outer bars ("| a | b |") are not cells."""
    line = line.strip()
    if line.startswith("|") and line.endswith("|") and len(line) > 1:
        line = line[1:-1]
    return [c.strip() for c in line.split(TABLE_CELL_SEPARATOR.strip())]


UNTITLED_SECTION = "Opening"  # what citations call the text before a document's first heading


def paragraph_mark(passage: Passage) -> str:
    """"¶9" or "¶9–10": the body paragraphs a passage spans."""
    return "¶" + "–".join(map(str, sorted({passage.paragraphs[0], passage.paragraphs[-1]})))


def location(passage: Passage) -> str:
    """Section › paragraphs, as every transport prints a citation: "Opening › ¶2"."""
    return f"{passage.section or UNTITLED_SECTION} › {paragraph_mark(passage)}"


def titled_location(title: str, passage: Passage) -> str:
    """Document title › section › paragraphs: "Permanent Revolution in 1917 Russia and Today › Opening › ¶2"."""
    return f"{title} › {location(passage)}"
