"""Documents and passages: reading them (GET /documents, /documents/{id}, /passages/{id}, each from one snapshot)
and writing them (POST /documents, PUT and DELETE /documents/{id}), all through `rag.service.Service`.

Reading a document takes a slot of the query lane (api.limits.Admission) to look it up and render its head
off the event loop, then streams its text as JSON in `TEXT_CHUNK`-character pieces, each encoded in a worker
thread: however big the document and however many read it at once, no request holds more than a piece of it
encoded and the loop only moves bytes. A removed or replaced document is 404 at once, from any snapshot.

Writing needs the API key when one is set; without one, only a client on this machine (as /admin/reload).
A write takes a slot of the batch lane (a re-index costs about what a batch does; 503 + Retry-After when it
is full), counts against the rate limit like any request, and its body against `max_upload_bytes`
(api.limits.BodySizeLimit). Bodies:
- `multipart/form-data`: a `file` field (its file name gives the type, and the id unless an `id` field is
  sent); any other field is metadata (`title`, `author`, `published`, ...), kept in the document's sidecar.
- `application/json`: `{"text", "id"?, "title"?, "format": "md" | "txt", ...metadata}`.
The answer says what was indexed (title, characters, sections, passages) or, 422, why it would not be.
`Service.write_document` / `remove_document` check, place, re-index and undo (rag.uploads).
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from api import render, schemas
from api.deps import get_admission, get_service
from api.limits import Admission
from api.security import local_or_key
from rag import uploads
from rag.errors import InvalidInput
from rag.service import Service, Written

NOT_FOUND = {404: {"model": schemas.ErrorResponse, "description": "Unknown id"}}
TEXT_CHUNK = 64 * 1024  # characters of a document's text encoded at a time
MAX_FORM_FIELDS = 32
FORMATS = {"md": ".md", "txt": ".txt"}


class DocumentText(BaseModel):
    """A document sent as JSON; any field besides these is metadata (author, published, url, ...)."""

    model_config = ConfigDict(extra="allow")

    text: str = Field(min_length=1, description="The document's text (Markdown or plain).")
    id: str | None = Field(None, description="Its id (lower-case words joined by hyphens); default: from the title, else required.")
    title: str | None = None
    format: Literal["md", "txt"] = "txt"


class DocumentWritten(BaseModel):
    id: str
    status: Literal["created", "replaced", "unchanged", "duplicate"] = Field(
        description="`duplicate`: the same content is already served, under `id`; nothing was written."
    )
    index_id: str = Field(description="The index serving the document now.")
    source: str = Field(description="Its file under seeds/.")
    title: str
    characters: int
    sections: int
    passages: int = Field(description="Passages indexed from it.")


class DocumentRemoved(BaseModel):
    id: str
    status: Literal["removed"]
    index_id: str
    source: str


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                    },
                    "additionalProperties": {"type": "string"},
                }
            },
            "application/json": {"schema": DocumentText.model_json_schema()},
        },
    }
}
WRITE_ERRORS = {
    403: {"model": schemas.ErrorResponse, "description": "No API key is set and the client is not on this machine"},
    409: {"model": schemas.ErrorResponse, "description": "The id is taken (POST), the same content is another document (PUT), or another file gives the id (DELETE)"},
    415: {"model": schemas.ErrorResponse, "description": "A body that is neither multipart/form-data nor JSON"},
}


require_writer = local_or_key("adding, replacing and removing documents")  # writes: the key, or this machine


def router() -> APIRouter:
    routes = APIRouter(tags=["documents"])

    @routes.get("/documents", response_model=list[schemas.DocumentSummary])
    async def list_documents(service: Service = Depends(get_service)) -> list[schemas.DocumentSummary]:
        return [render.document_summary(d) for d in service.snapshot.live_documents()]

    @routes.get("/documents/{document_id}", response_model=schemas.DocumentOut, responses=NOT_FOUND)
    async def get_document(document_id: str, service: Service = Depends(get_service), admission: Admission = Depends(get_admission)):
        """Metadata, sections and the full text that citation offsets index into (streamed)."""
        async with admission.query.slot():
            document = service.snapshot.document(document_id)
            head = await run_in_threadpool(_document_head, document)
        return StreamingResponse(_document_json(head, document.text), media_type="application/json")

    @routes.get("/passages/{passage_id}", response_model=schemas.PassageDetail, responses=NOT_FOUND)
    async def get_passage(passage_id: str, service: Service = Depends(get_service)) -> schemas.PassageDetail:
        """One passage with its citation and the ids of its neighbours in the document."""
        return render.passage_detail(service.snapshot.passage(passage_id))

    @routes.post(
        "/documents", status_code=201, response_model=DocumentWritten, summary="Add a document",
        responses={200: {"model": DocumentWritten, "description": "Already served: nothing written"}, **WRITE_ERRORS},
        openapi_extra=UPLOAD_BODY, dependencies=[Depends(require_writer)],
    )
    async def add_document(request: Request, service: Service = Depends(get_service), admission: Admission = Depends(get_admission)):
        """Write a document into seeds/ and index it; 201 with what was indexed, 200 when the same content is
        already served (its id is returned), 409 when the id is taken (PUT replaces), 422 with the reason when it
        would not be indexed."""
        return await _write(request, service, admission, None, replace=False)

    @routes.put(
        "/documents/{document_id}", response_model=DocumentWritten, summary="Add or replace a document",
        responses={201: {"model": DocumentWritten, "description": "Created"}, **NOT_FOUND, **WRITE_ERRORS},
        openapi_extra=UPLOAD_BODY, dependencies=[Depends(require_writer)],
    )
    async def replace_document(
        document_id: str, request: Request, service: Service = Depends(get_service), admission: Admission = Depends(get_admission)
    ):
        """The same bodies as POST: the document with this id (its file and metadata) is replaced, or created."""
        return await _write(request, service, admission, document_id, replace=True)

    @routes.delete(
        "/documents/{document_id}", response_model=DocumentRemoved, summary="Remove a document",
        responses={**NOT_FOUND, **WRITE_ERRORS}, dependencies=[Depends(require_writer)],
    )
    async def remove_document(document_id: str, service: Service = Depends(get_service), admission: Admission = Depends(get_admission)):
        """Delete its file (and sidecar) from seeds/ and re-index; from then on no answer cites it."""
        async with admission.batch.slot():
            written = await run_in_threadpool(service.remove_document, document_id)
        return DocumentRemoved(id=written.id, status="removed", index_id=written.snapshot.id, source=written.source)

    return routes


# --- reading ------------------------------------------------------------------------------------------


def _document_head(document) -> bytes:
    """The document's JSON up to its text's opening quote (the text is the last field and follows in pieces)."""
    encoded = render.document_out(document).model_copy(update={"text": ""}).model_dump_json().encode()
    if not encoded.endswith(b'"text":""}'):  # the shape changed: say so loudly rather than send wrong JSON
        raise RuntimeError("DocumentOut no longer ends with its text; update api.routers.documents._document_head")
    return encoded[: -len(b'""}')]


def _document_json(head: bytes, text: str):
    """The head, then the text as one JSON string in pieces (a sync generator: Starlette runs each step in a thread)."""
    yield head + b'"'
    for start in range(0, len(text), TEXT_CHUNK):
        yield json.dumps(text[start : start + TEXT_CHUNK], ensure_ascii=False)[1:-1].encode()
    yield b'"}'


# --- writing ------------------------------------------------------------------------------------------


async def _write(request: Request, service: Service, admission: Admission, document_id: str | None, replace: bool):
    form = None
    try:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
            upload_of = await _from_form(form)
        elif kind == "application/json" or kind.endswith("+json"):
            upload_of = _from_json(await request.body())
        else:
            raise HTTPException(415, "send the document as multipart/form-data (a 'file' field) or as JSON ({\"text\": ...})")
        async with admission.batch.slot():
            upload = await upload_of() if callable(upload_of) else upload_of
            written = await run_in_threadpool(service.write_document, upload, document_id, replace)
    finally:
        if form is not None:
            await form.close()
    status = 201 if written.status == "created" else 200
    return JSONResponse(_summary(written).model_dump(), status_code=status)


async def _from_form(form):
    """The upload in a multipart form; the file's bytes are read only once a slot is held (returns a coroutine function)."""
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidInput("a multipart upload needs a 'file' field holding the file")
    fields = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"field {key!r} must be text; only 'file' holds a file")
        if key in fields:
            raise InvalidInput(f"field {key!r} is sent twice")
        fields[key] = value
    wanted = fields.pop("id", None) or None
    suffix = uploads.suffix_of(file.filename or "")

    async def read() -> uploads.Upload:
        return uploads.Upload(await file.read(), suffix, fields, wanted, file.filename)

    return read


def _from_json(body: bytes) -> uploads.Upload:
    try:
        sent = DocumentText.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]) from None
    metadata = {k: v for k, v in (sent.model_extra or {}).items()}
    if sent.title is not None:
        metadata["title"] = sent.title
    try:
        data = sent.text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("text is not valid Unicode (it holds a lone surrogate)") from None
    wanted = sent.id
    if wanted is None and sent.title:
        wanted = uploads.id_from_title(sent.title)
    if wanted is None:
        raise InvalidInput("a JSON document needs an 'id' (or a 'title' to make one from)")
    return uploads.Upload(data, FORMATS[sent.format], metadata, wanted, None)


def _summary(written: Written) -> DocumentWritten:
    document = written.document
    return DocumentWritten(
        id=written.id,
        status=written.status,
        index_id=written.snapshot.id,
        source=document.source if document else written.source,
        title=document.title if document else "",
        characters=len(document.text) if document else 0,
        sections=len(document.sections) if document else 0,
        passages=written.passages,
    )
