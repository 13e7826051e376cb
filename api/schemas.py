"""The HTTP contract: request and response models, and the request filter as the library takes it.

These models are what /docs shows. The request models carry the configured
limits and defaults (`request_models(settings)` builds them per app from the
library settings: question length, top_k and its default, batch size, the
default mode), so the schema tells clients the rules that are really enforced
and HTTP, MCP and the CLI accept the same values. The modes are the library's
(`rag.config.MODES`). A validated `FiltersIn` becomes the library's `Filters`
in one function (`library_filters`), for HTTP and MCP alike. Responses are
filled from `rag` results by api.render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from rag.config import MODES, Settings
from rag.query.filters import Filters
from rag.query.verdict import Verdict

# The library's modes as the schema's enum (inline, as the OpenAPI document has always shown them).
ModeName = Literal[MODES]  # type: ignore[valid-type]


# What the library accepts (rag.query.request.clean_question): some visible text and no control characters
# other than tab/newline. Documented in the schema only; the library enforces it with a readable message.
QUESTION_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"


def question_type(max_chars: int):
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=max_chars,
            json_schema_extra={"pattern": QUESTION_PATTERN},
            description="The question, in plain language (not only whitespace, no control characters).",
        ),
    ]


def _integer_only(value: object) -> object:
    """JSON Schema's integer: 5 and 5.0, not true or "5" (pydantic's lax mode would take those as 1 and 5)."""
    if isinstance(value, (bool, str, bytes)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def top_k_type(max_top_k: int):
    return Annotated[int, Field(ge=1, le=max_top_k, description="How many passages to return."), BeforeValidator(_integer_only)]


VERIFY_DESCRIPTION = ("Also read the best evidence with the verifier (a cross-encoder, about 15 ms more a question): a verdict that "
                      "refuses more of the questions written to look answerable, and keeps fewer of the answerable ones "
                      "(docs/quality.md). null: the service's setting (RAG_VERIFIER, off by default).")
MODE_DESCRIPTION = "hybrid (meaning and keywords: dense and BM25 scores z-normalised and added), dense (meaning) or lexical (BM25)."


NonEmpty = Annotated[str, Field(min_length=1, pattern=r"\S")]
# A "YYYY-MM-DD" string (the library parses it and names a date that does not exist).
DATE_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
IsoDate = Annotated[str, Field(pattern=DATE_PATTERN, json_schema_extra={"format": "date"})]


class FiltersIn(BaseModel):
    """Answer only from these passages (all given conditions hold). Checked by the library: an unknown
    document id or a malformed date is a 422 that names it."""

    model_config = ConfigDict(extra="forbid")
    documents: list[NonEmpty] = Field(default_factory=list, description="Document ids (GET /documents).")
    authors: list[NonEmpty] = Field(default_factory=list, description="Author names, matched case-insensitively.")
    published_after: IsoDate | None = Field(None, description="Inclusive lower bound, YYYY-MM-DD.", examples=["2017-01-01"])
    published_before: IsoDate | None = Field(None, description="Inclusive upper bound, YYYY-MM-DD.", examples=["2019-12-31"])
    sections: list[NonEmpty] = Field(default_factory=list, description='Section titles ("Opening" = text before the first heading).')


def library_filters(filters: FiltersIn | None) -> Filters:
    """The library's `Filters` built from a validated request filter (None: no filter), for HTTP and MCP alike.

    The schema has checked the shape; `Filters.of` says what a schema cannot (2019-02-30 matches the pattern,
    bounds out of order), in the library's words. Whether the documents exist is for the snapshot that answers
    (`Filters.check`)."""
    if filters is None:
        return Filters()
    return Filters.of(filters.documents, filters.authors, filters.published_after, filters.published_before, filters.sections)


@dataclass(frozen=True)
class RequestModels:
    """The request models of one app, with its configured limits."""

    query: type[BaseModel]
    batch: type[BaseModel]
    max_question_chars: int
    max_top_k: int
    default_top_k: int


def request_models(settings: Settings) -> RequestModels:
    Question = question_type(settings.max_question_chars)
    TopK = top_k_type(settings.max_top_k)
    default_top_k, default_mode = settings.default_top_k, settings.default_mode

    class QueryRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: Question
        top_k: TopK = default_top_k
        mode: ModeName = Field(default_mode, description=MODE_DESCRIPTION)
        filters: FiltersIn | None = Field(None, description="Answer only from passages that match (documents, authors, dates, sections).")
        verify: StrictBool | None = Field(None, description=VERIFY_DESCRIPTION)

    class BatchQueryRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        # The cap is advertised here and enforced by the library (Service.batch_query), which names it.
        questions: list[Question] = Field(
            ..., min_length=1, description=f"The questions (at most {settings.max_batch_questions}).",
            json_schema_extra={"maxItems": settings.max_batch_questions},
        )
        top_k: TopK = default_top_k
        mode: ModeName = Field(default_mode, description=MODE_DESCRIPTION)
        filters: FiltersIn | None = Field(None, description="One filter for every question of the batch.")
        verify: StrictBool | None = Field(None, description=VERIFY_DESCRIPTION)

    return RequestModels(QueryRequest, BatchQueryRequest, settings.max_question_chars, settings.max_top_k, default_top_k)


class Citation(BaseModel):
    document: str
    title: str
    author: str | None
    published: str | None
    section: str | None = Field(description="Section heading; null for text before the first heading.")
    paragraph: int = Field(description="First body paragraph (1-based) the passage comes from.")
    paragraphs: list[int]
    start: int = Field(description="Character offset into the document text (GET /documents/{id}).")
    end: int = Field(description="document_text[start:end] == passage text.")
    page: int | None = Field(None, description="For a PDF: the 1-based page the passage starts on; null otherwise.")
    page_end: int | None = Field(None, description="For a PDF: the page the passage ends on (equal to `page` unless it spans a page break).")


class HighlightOut(BaseModel):
    text: str
    start: int = Field(description="Offsets into the document text, like the citation's.")
    end: int


class PassageOut(BaseModel):
    id: str
    text: str
    score: float
    citation: Citation
    highlight: HighlightOut = Field(description="The sentence of the passage that best answers the question.")
    highlights: list[HighlightOut] = Field(
        description="Every sentence to mark, in text order: the best one, and its neighbour when the evidence spans both."
    )


class IndexInfo(BaseModel):
    id: str
    model: str


class QueryResponse(BaseModel):
    question: str
    mode: ModeName
    verdict: Verdict = Field(
        description="found: the passages likely answer the question; uncertain: they may not; not_found: the documents "
        "do not seem to answer it (the passages are only the closest ones)."
    )
    verdict_text: str = Field(description="The verdict in plain words, with the confidence.")
    answerable: bool = Field(description="verdict != not_found.")
    confidence: float = Field(description="Estimated probability (0-1) that the documents answer the question: fitted on the "
                              "bundled dev questions, and for a verified question blended with the verifier's model, fitted on "
                              "held-out SQuAD 2.0 articles (how well each is calibrated: docs/quality.md).")
    took_ms: float
    index: IndexInfo
    passages: list[PassageOut]
    verified: bool = Field(False, description="The verifier (a cross-encoder) read the best evidence and its score is in the verdict "
                           "(`verify`, or the service's RAG_VERIFIER).")
    warnings: list[str] = Field(default_factory=list, description="How the question was read, when the caller should know "
                                "(for example: longer than the model reads, so read as its question sentences, or from its start when it "
                                "asks nothing; a name or year the "
                                "best passages or their documents never mention, which keeps the verdict below `found`).")


class SectionOut(BaseModel):
    title: str | None
    start: int
    end: int


class DocumentSummary(BaseModel):
    id: str
    title: str
    subtitle: str | None
    author: str | None
    publication: str | None
    published: str | None
    url: str | None
    characters: int


class DocumentOut(DocumentSummary):
    sections: list[SectionOut]
    text: str = Field(description="The full text that citation offsets index into.")


class PassageDetail(BaseModel):
    id: str
    text: str
    citation: Citation
    previous: str | None = Field(description="Id of the passage before this one in the document, if any.")
    next: str | None
    index: IndexInfo


class Health(BaseModel):
    status: Literal["ok"]


class BatchQueryResponse(BaseModel):
    results: list[QueryResponse] = Field(description="One answer per question, in order.")


class WorkersReloaded(BaseModel):
    total: int = Field(description="Live worker processes (this one included).")
    on_index: int = Field(description="Of those, how many serve `index_id` now.")
    behind: list[int] = Field(default_factory=list, description="Pids of the workers still serving another index when the wait ended.")


class ReloadResponse(BaseModel):
    index_id: str = Field(description="The index served now.")
    previous: str = Field(description="The index served before the reload.")
    changed: bool
    skipped: list[SkippedFile] = Field(default_factory=list, description="Files under seeds/ that are not indexed, with reasons.")
    workers: WorkersReloaded | None = Field(
        None,
        description="Only under `rag serve --workers N`: the reload reached every live worker when `on_index` equals `total` "
        "(the response waits, bounded, for them). Absent for a single process.",
    )


class SkippedFile(BaseModel):
    path: str = Field(description="Path relative to the documents folder.")
    reason: str = Field(description="Why it is not indexed, in one sentence.")


class Load(BaseModel):
    in_flight: int = Field(description="Questions and batches being answered now.")
    queued: int = Field(description="Questions and batches waiting for a worker.")
    capacity: int = Field(description="How many can run or wait before the server answers 503 (both lanes).")
    saturated: bool = Field(description="A new question or batch would be refused with 503 now.")


class VerifierStatus(BaseModel):
    used: bool = Field(description="Whether the verifier (a cross-encoder) reads the evidence of every question for the verdict (RAG_VERIFIER=true).")
    on_request: bool = Field(False, description="Whether a question can ask for it (`verify: true`).")
    reason: str | None = Field(None, description="Why it is not read for every question (RAG_VERIFIER=false), or not at all (another embedding model, weights that fail their check).")
    sha256: str | None = Field(None, description="sha256 of the verifier weights in use (checked at load against their card).")
    layers: int | None = None
    file: str | None = None


class Ready(BaseModel):
    status: Literal["ready"]
    index_id: str
    model: str
    index_type: str
    encoder: str = Field(description="Query encoder in use: onnx (fast path) or torch (sentence-transformers).")
    documents: int
    passages: int
    skipped_count: int = Field(description="How many files under seeds/ are not indexed.")
    skipped: list[SkippedFile] | None = Field(
        description="Files under seeds/ that are not indexed, each with the reason; null when RAG_API_KEY is set "
        "and the request did not carry the key (the paths name the server's files)."
    )
    load: Load
    verifier: VerifierStatus


class ErrorResponse(BaseModel):
    error: str
    detail: list | None = None


# A route's `responses` entry for an error status: the body is an ErrorResponse.
ERROR = {"model": ErrorResponse}
