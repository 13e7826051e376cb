"""Rendering: `rag` results as the response shapes of api.schemas, one function per shape, for every transport.

A query result is rendered once, by `query_response`, into the one structure HTTP returns
(POST/GET /query, each answer of /query/batch); the MCP tools (api.mcp_server) build theirs from
it, adding only their url and their note, and the CLI (api.cli) prints it or dumps it as JSON.
Everything is read from the snapshot the result carries (`result.snapshot`), never from the
service's current one, so a reload between the search and the rendering can never mix two index
versions. Documents and passages (`document_out`, `passage_detail`) are rendered the same way.
"""

from __future__ import annotations

from api.schemas import Citation, DocumentOut, DocumentSummary, HighlightOut, IndexInfo, PassageDetail, PassageOut, QueryResponse, SectionOut
from api.wording import verdict_words
from rag.corpus.documents import Document, page_of
from rag.query.retrieval import Hit, QueryResult
from rag.service import PassageView


def query_response(result: QueryResult, took_ms: float | None = None) -> QueryResponse:
    """The answer to a query, from the snapshot it was computed on; `took_ms` defaults to the library's own stage
    timings (a caller that measured the whole request passes that)."""
    documents, model = result.snapshot.documents, result.snapshot.model
    took_ms = sum(result.timings_ms.values()) if took_ms is None else took_ms
    return QueryResponse(
        question=result.question,
        mode=result.mode,
        verdict=result.verdict,
        verdict_text=verdict_words(result.verdict, result.confidence),
        answerable=result.answerable,
        confidence=result.confidence,
        took_ms=round(took_ms, 2),
        index=IndexInfo(id=result.index_id, model=model),
        passages=[passage_out(hit, documents[hit.passage.document]) for hit in result.hits],
        verified=result.verified,
        warnings=list(result.warnings),
    )


def passage_out(hit: Hit, document: Document) -> PassageOut:
    return PassageOut(
        id=hit.passage.id,
        text=hit.passage.text,
        score=hit.score,
        citation=citation(document, hit.passage),
        highlight=highlight_out(hit.highlight),
        highlights=[highlight_out(h) for h in (hit.highlights or (hit.highlight,))],
    )


def citation(document: Document, passage) -> Citation:
    return Citation(
        document=document.id,
        title=document.title,
        author=document.author,
        published=document.published,
        section=passage.section,
        paragraph=passage.paragraphs[0],
        paragraphs=list(passage.paragraphs),
        start=passage.start,
        end=passage.end,
        page=page_of(document, passage.start),
        page_end=page_of(document, max(passage.start, passage.end - 1)),
    )


def highlight_out(highlight) -> HighlightOut:
    return HighlightOut(text=highlight.text, start=highlight.start, end=highlight.end)


def document_summary(document: Document) -> DocumentSummary:
    return DocumentSummary(**_summary_fields(document))


def document_out(document: Document) -> DocumentOut:
    sections = [SectionOut(title=s.title, start=s.heading_start, end=s.end) for s in document.sections]
    return DocumentOut(**_summary_fields(document), sections=sections, text=document.text)


def _summary_fields(document: Document) -> dict:
    return {**document.metadata(), "characters": len(document.text)}


def passage_detail(view: PassageView) -> PassageDetail:
    return PassageDetail(
        id=view.passage.id,
        text=view.passage.text,
        citation=citation(view.document, view.passage),
        previous=view.previous_id,
        next=view.next_id,
        index=IndexInfo(id=view.snapshot.id, model=view.snapshot.model),
    )
