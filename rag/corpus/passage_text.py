"""What is embedded and indexed per passage: the text rule, versioned.

`heading_text` (title, section, passage) is what BM25 indexes and what must fit
the model window; `embedding_text` adds the previous passage's opening sentence
for the embedding only. `EMBEDDING_TEXT_VERSION` goes into the index manifest:
changing the rule makes every index built with the old one stale.
"""

from __future__ import annotations

from rag.corpus.chunking import Passage
from rag.corpus.documents import Document

EMBEDDING_TEXT_VERSION = "title+section+text+previous-opening/2"


def heading_text(document: Document, passage: Passage) -> str:
    """A passage under its document title and section: what BM25 indexes, and what must fit the window."""
    heading = f"{document.title}. {passage.section}." if passage.section else f"{document.title}."
    return f"{heading}\n{passage.text}"


def embedding_text(document: Document, passage: Passage, previous: Passage | None = None) -> str:
    """What the model sees for a passage: title and section, its text, then the opening sentence
    of the passage before it in the same section.

    A paragraph often continues its neighbour's argument without naming its subject ("The
    bourgeoisie had strong ties..." under a paragraph that opens "Trotsky asserted..."); the
    neighbour's opening sentence names it. It comes last, so if the whole does not fit the model
    window, truncation cuts only this context, never the passage. Only the embedding sees it;
    the returned passage is the source slice.
    """
    text = heading_text(document, passage)
    if previous is not None and previous.document == passage.document and previous.section == passage.section:
        start, end = previous.sentences[0]
        text += "\n" + document.text[start:end]
    return text


def embedding_texts(passages: list[Passage], documents: dict[str, Document]) -> list[str]:
    return [embedding_text(documents[p.document], p, passages[i - 1] if i else None) for i, p in enumerate(passages)]


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
