"""MCP server: the service's retrieval as tools for chat clients (ChatGPT connectors, Claude, IDEs).

Three read-only tools over one `rag.service.Service`:

- `search(query)` and `fetch(id)` in the shape ChatGPT connectors and deep
  research require: search returns `{"results": [{"id", "title", "url", "text"}]}`,
  fetch returns `{"id", "title", "text", "url", "metadata"}`. An id is a passage id.
- `ask(question, top_k, mode)`: the full answer of POST /query (passages, the best
  sentence of each, scores, citations, and whether the document answers at all).

A query is parsed once into a `rag.query.request.Query` (its filter built by
api.schemas.library_filters, as over HTTP) and its result rendered once by
api.render.query_response, the structure HTTP returns; `search` and `ask` take
their fields from it and add only what MCP has of its own: each passage's `url`
on this service's page and the `note` for the model (api.wording). Defaults and
choices are the library's (`Settings.default_top_k`, `default_mode`, `MODES`).

Every result is returned twice, as the spec asks: `structuredContent` checked
against the advertised output schema, and the same JSON (compact) as text
content for clients that only read text. Bad input (empty query, unknown id,
invalid mode) is a tool error (`isError: true`) with a message the model can act
on, never a protocol error or a crash. Queries embed on the CPU, so they run in
a worker thread and the event loop keeps serving other requests.

Two transports, one tool set:
- streamable HTTP at `/mcp` on the FastAPI app (`mount_mcp`), sharing the app's
  `app.state.service`; stateless, JSON responses (no session state to lose
  behind a load balancer or on restart);
- stdio for desktop clients (`rag mcp` -> `run_stdio`). The handshake answers
  at once; the service opens in a background thread meanwhile and tool calls wait
  for it. stdout is the protocol channel: the SDK points fd 1 at stderr while
  serving, and every log line goes to stderr.
"""

import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field
from starlette.routing import Route

from api import render, schemas
from api.security import ANY_INTERFACE, transport_security
from api.settings import ServerSettings
from api.wording import QUOTED_DATA, fetch_note, verdict_note
from rag.config import MODES, Settings
from rag.errors import InvalidInput, NotFound, Overloaded, RagError
from rag.corpus.passage_text import UNTITLED_SECTION, paragraph_mark, titled_location
from rag.query.request import Query
from rag.service import PassageView, Service

log = logging.getLogger(__name__)

SEARCH_RESULTS = 8  # passages per `search` call: about 5,000 characters of context for this corpus
ServiceSource = Callable[[], Awaitable[Service]]

INSTRUCTIONS = (
    "Cited passage retrieval over the documents indexed by this service. Use `search` to find passages and "
    "`fetch` to read one in context with its full citation, or `ask` for ranked passages with the best sentence "
    "of each and a verdict (found / uncertain / not_found) saying whether the documents answer the question at all. Quote and cite passages by "
    "section and paragraph, and link their `url`. " + QUOTED_DATA
)
FILTERS_DESCRIPTION = (
    "Optional: answer only from some passages: {\"documents\": [ids], \"authors\": [names], "
    "\"published_after\": \"YYYY-MM-DD\", \"published_before\": \"YYYY-MM-DD\", \"sections\": [titles]}."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


# --- output models (advertised as each tool's outputSchema) ----------------------------------


class SearchResult(BaseModel):
    id: str = Field(description="Passage id: pass it to `fetch` to read the passage in context.")
    title: str = Field(description="Document title › section › paragraph number(s).")
    url: str = Field(description="The passage, highlighted in its document, on this service's web page.")
    text: str = Field(description="The passage, quoted verbatim from the document.")


class SearchOutput(BaseModel):
    results: list[SearchResult] = Field(description="Best first.")
    verdict: schemas.Verdict = Field(description="found / uncertain / not_found: whether the documents seem to answer the query.")
    confidence: float = Field(description="Probability (0-1) that the documents answer it.")
    note: str = Field(description="How to use these passages, following the verdict.")


class FetchMetadata(schemas.Citation):
    publication: str | None
    source_url: str | None = Field(description="Where the document was originally published, if known.")
    previous_id: str | None = Field(description="Id of the passage before this one in the document, if any.")
    next_id: str | None = Field(description="Id of the passage after this one in the document, if any.")
    context_start: int = Field(description="Offset where `text` starts in the document (the previous passage, if any).")
    context_end: int = Field(description="Offset where `text` ends (the next passage, if any).")
    index_id: str
    block_marker: str = Field(
        description="The random marker of this response: each block header of `text` begins '=== <marker> '."
    )


class FetchOutput(BaseModel):
    id: str
    title: str
    text: str = Field(
        description="The passage between its previous and next passages, each block headed by a line "
        "'=== <marker> ... ===' saying which it is (`metadata.block_marker`, random per response, so no document "
        "text can forge a header); only the block headed '=== <marker> CITED PASSAGE' is the passage with this id. "
        "A line of passage text that begins with '===' is shown behind '> '."
    )
    url: str
    metadata: FetchMetadata
    note: str = Field(description="How to use this text.")


class AskPassage(BaseModel):
    id: str
    rank: int
    score: float = Field(description="Ranking score: higher ranks first; comparable only within one answer.")
    url: str
    text: str
    highlight: schemas.HighlightOut = Field(description="The sentence of the passage that best answers the question.")
    citation: schemas.Citation


class AskOutput(BaseModel):
    question: str
    mode: schemas.ModeName
    verdict: schemas.Verdict = Field(description="found / uncertain / not_found: whether the documents seem to answer the question.")
    answerable: bool = Field(description="verdict != not_found.")
    confidence: float = Field(description="Probability (0-1) that the documents answer the question.")
    verified: bool = Field(False, description="The verifier read the best evidence for this verdict (`verify`).")
    note: str = Field(description="How to use these passages, following the verdict.")
    index_id: str
    passages: list[AskPassage]


# --- the server -----------------------------------------------------------------------------


def build_server(get_service: ServiceSource, settings: Settings, server_settings: ServerSettings, lane=None) -> MCPServer:
    """The MCP server with its three tools, answering from whatever service `get_service` yields.

    `lane` (api.limits admission lane, over HTTP) bounds query work like POST /query: when it is full a
    tool call is a tool error saying when to retry, at once."""

    async def run(function, *args):
        if lane is None:
            return await _run(function, *args)
        try:
            async with lane.slot():
                return await _run(function, *args)
        except Overloaded as exc:
            raise ToolError(str(exc)) from exc

    async def answer(question: str, top_k, mode, filters, ctx: Context, output, verify=None) -> CallToolResult:
        """`search` and `ask` alike: parse once, query in the lane, render once, shape with `output`."""
        service = await get_service()
        parsed = _parse(service, question, top_k, mode, filters, verify)
        response = render.query_response(await run(service.query, parsed))
        return _result(output(response, _base_url(server_settings, ctx)))

    server = MCPServer(
        "ask-the-document",
        title="Ask the document",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        log_level="WARNING",
    )

    @server.tool(
        title="Search the document",
        description=(
            f"Search the indexed documents; returns up to {SEARCH_RESULTS} passages, best first, each with an id, "
            "a title naming its document, section and paragraph, a url to the passage on this service's web page, "
            "and the passage text. " + QUOTED_DATA
        ),
        annotations=READ_ONLY,
    )
    async def search(
        query: Annotated[str, Field(description="What to look for: a question or keywords, in plain language.")],
        ctx: Context,
        filters: Annotated[schemas.FiltersIn | None, Field(description=FILTERS_DESCRIPTION)] = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        if not query.strip():
            raise ToolError("query is empty: pass the question or words to search for")
        return await answer(query, SEARCH_RESULTS, settings.default_mode, filters, ctx, search_output)

    @server.tool(
        title="Fetch a passage in context",
        description=(
            "Read one passage (by the id from `search` or `ask`) together with the passages just before and after "
            "it, with its full citation in `metadata`: document, title, author, publication date, section, "
            "paragraph(s) and character offsets into the document. " + QUOTED_DATA
        ),
        annotations=READ_ONLY,
    )
    async def fetch(
        id: Annotated[str, Field(description="A passage id returned by `search` or `ask`.")],
        ctx: Context,
    ) -> Annotated[CallToolResult, FetchOutput]:
        if not id.strip():
            raise ToolError("id is empty: pass a passage id returned by `search`")
        snapshot = (await get_service()).snapshot  # passage, neighbours and index id from one index version
        try:
            view = _call(snapshot.passage, id.strip())
        except ToolError as exc:
            raise ToolError(f"{exc}; pass an id returned by `search` or `ask` (ids change when the index is rebuilt)") from exc
        previous = snapshot.passage(view.previous_id) if view.previous_id else None
        following = snapshot.passage(view.next_id) if view.next_id else None
        passage, document = view.passage, view.document
        marker = secrets.token_hex(4)
        metadata = FetchMetadata(
            **render.citation(document, passage).model_dump(),
            publication=document.publication,
            source_url=document.url,
            previous_id=view.previous_id,
            next_id=view.next_id,
            context_start=(previous or view).passage.start,
            context_end=(following or view).passage.end,
            index_id=snapshot.id,
            block_marker=marker,
        )
        output = FetchOutput(
            id=passage.id,
            title=titled_location(document.title, passage),
            text=_in_context(view, previous, following, marker),
            url=passage_url(_base_url(server_settings, ctx), passage.id),
            metadata=metadata,
            note=fetch_note(marker),
        )
        return _result(output)

    @server.tool(
        title="Ask the document",
        description=(
            "Answer a question from the indexed documents: the most relevant passages, best first, each with the "
            "sentence that best answers the question (`highlight`), its score, its full citation and a url; and a "
            "`verdict`: found (answer from the passages and cite them), uncertain (say the documents may not cover it) "
            "or not_found (the passages are only the closest ones: say the documents do not answer it). `note` says "
            "the same in words. Pass `verify: true` for a stricter check when being wrong would matter: a second model "
            "reads the best evidence (slower; it refuses more questions that only look answerable, and some that are). "
            + QUOTED_DATA
        ),
        annotations=READ_ONLY,
    )
    async def ask(
        question: Annotated[str, Field(description="The question, in plain language.")],
        ctx: Context,
        # Type, bounds and choices are advertised in the schema and checked by the library, which says what is
        # wrong in one plain sentence (pydantic's own messages carry type codes and links). `top_k` is taken
        # as sent: pydantic's lax int would read "5" as 5 and true as 1, which HTTP refuses (api.schemas).
        top_k: Annotated[
            object,
            Field(
                description="How many passages to return.",
                json_schema_extra={"type": "integer", "minimum": 1, "maximum": settings.max_top_k},
            ),
            AfterValidator(_json_integer),
        ] = settings.default_top_k,
        mode: Annotated[
            str,
            Field(description=schemas.MODE_DESCRIPTION, json_schema_extra={"enum": list(MODES)}),
        ] = settings.default_mode.value,
        filters: Annotated[schemas.FiltersIn | None, Field(description=FILTERS_DESCRIPTION)] = None,
        verify: Annotated[object, Field(description=schemas.VERIFY_DESCRIPTION, json_schema_extra={"type": ["boolean", "null"]})] = None,
    ) -> Annotated[CallToolResult, AskOutput]:
        if not question.strip():
            raise ToolError("question is empty: pass the question to answer")
        if top_k is None:  # the library would read null as "the default"; the schema says integer, as over HTTP
            raise ToolError(f"top_k must be an integer from 1 to {settings.max_top_k}; got null")
        return await answer(question, top_k, mode, filters, ctx, ask_output, verify)

    return server


def search_output(response: schemas.QueryResponse, base: str) -> SearchOutput:
    """`search`'s answer from the rendered query response: ChatGPT's `results`, with the url and the note."""
    results = [
        # the citation holds the passage's section and paragraphs, which is all a location names
        SearchResult(id=p.id, title=titled_location(p.citation.title, p.citation), url=passage_url(base, p.id), text=p.text)
        for p in response.passages
    ]
    return SearchOutput(results=results, verdict=response.verdict, confidence=response.confidence, note=note_for(response))


def note_for(response: schemas.QueryResponse) -> str:
    """The verdict's note, what the model should know of how the question was read, and the quoted-data warning."""
    return verdict_note(response.verdict, response.warnings)


def ask_output(response: schemas.QueryResponse, base: str) -> AskOutput:
    """`ask`'s answer: the rendered query response's fields, each passage with its rank and url, and the note."""
    passages = [
        AskPassage(id=p.id, rank=rank, score=p.score, url=passage_url(base, p.id), text=p.text, highlight=p.highlight, citation=p.citation)
        for rank, p in enumerate(response.passages, start=1)
    ]
    return AskOutput(
        question=response.question,
        mode=response.mode,
        verdict=response.verdict,
        answerable=response.answerable,
        confidence=response.confidence,
        verified=response.verified,
        note=note_for(response),
        index_id=response.index.id,
        passages=passages,
    )


def passage_url(base: str, passage_id: str) -> str:
    """The web page's view of one passage, highlighted in its document (see api/static/index.html)."""
    return f"{base}/?passage={passage_id}"


def _in_context(view: PassageView, previous: PassageView | None, following: PassageView | None, marker: str) -> str:
    """The passage between its neighbours, each block headed so the cited one cannot be mistaken.

    Document text cannot forge a header (issue #21 item 8): every header carries `marker`, random per response,
    and a line of passage text that begins with '===' (after any indent, at any of the line breaks
    `str.splitlines` knows, U+2028 included) is shown behind '> '. What a header says of the document (id,
    section) is folded onto its one line."""

    def block(kind: str, v: PassageView) -> str:
        p = v.passage
        where = f"id {p.id}; {p.section or UNTITLED_SECTION}, {paragraph_mark(p)}, characters {p.start}–{p.end}"
        return f"=== {marker} {kind} ({_one_line(where)}) ===\n{_quoted(p.text)}"

    blocks = [block("previous passage, context only", previous)] if previous else []
    blocks.append(block("CITED PASSAGE", view))
    if following:
        blocks.append(block("next passage, context only", following))
    return "\n\n".join(blocks)


def _quoted(text: str) -> str:
    """`text` with each line that could pass for a block header (its first characters '===') behind '> '."""
    return "".join(f"> {line}" if line.lstrip().startswith("===") else line for line in text.splitlines(keepends=True))


def _one_line(text: str) -> str:
    return " ".join(text.split())  # every Unicode line break and space run becomes one space


def _result(output: BaseModel) -> CallToolResult:
    """structuredContent and the same JSON as text (compact: it costs the model tokens)."""
    data = output.model_dump(mode="json")
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _parse(service: Service, question: str, top_k, mode, filters: schemas.FiltersIn | None, verify=None) -> Query:
    """The tool's arguments as one `Query`, parsed once; what the library refuses is a tool error in its words."""
    return _call(lambda: service.parse(question, top_k, mode, schemas.library_filters(filters), verify))


def _json_integer(value: object) -> object:
    """JSON Schema's integer as HTTP takes it: 5.0 is 5; anything else goes to the library as sent."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _call(function, *args):
    """Run a quick library call, turning its refusals into tool errors the model can read."""
    try:
        return function(*args)
    except (InvalidInput, NotFound) as exc:
        raise ToolError(str(exc)) from exc
    except RagError as exc:
        raise ToolError(f"the service cannot answer right now: {exc}") from exc


async def _run(function, *args):
    """`_call` in a worker thread: queries embed on the CPU and must not block the event loop."""
    return await anyio.to_thread.run_sync(lambda: _call(function, *args))


def _base_url(settings: ServerSettings, ctx: Context) -> str:
    """Where this service's web page is: RAG_PUBLIC_URL, else the HTTP request's own base, else host:port."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    request = getattr(ctx.request_context, "request", None)
    base_url = getattr(request, "base_url", None)  # a Starlette Request on HTTP; None on stdio
    if base_url is not None:
        return str(base_url).rstrip("/")
    host = settings.host if settings.host not in ANY_INTERFACE else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


# --- streamable HTTP on the FastAPI app ---------------------------------------------------------


def mount_mcp(app, settings: Settings, server_settings: ServerSettings, security=None) -> StreamableHTTPSessionManager:
    """Serve MCP at /mcp (and /mcp/) on `app`, over `app.state.service`; `security`: the app's
    `api.security.transport_security(server_settings)` when it has computed it already (computed here otherwise).

    Returns the session manager, which the app's lifespan must run
    (`async with manager.run(): ...`): Starlette runs no lifespan of its own for it.
    Plain routes, not a Mount, so POST /mcp is answered directly instead of
    being redirected to /mcp/ (which many clients do not follow for POST).
    """

    async def app_service() -> Service:
        service = app.state.service
        if service is None:
            raise ToolError("the index is still loading; try again in a few seconds")
        return service

    server = build_server(app_service, settings, server_settings, app.state.admission.query)
    # Builds (and keeps on `server.session_manager`) a fresh session manager; the Starlette app it returns is unused.
    server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security if security is not None else transport_security(server_settings))
    manager = server.session_manager
    endpoint = StreamableHTTPASGIApp(manager)
    for path in ("/mcp", "/mcp/"):
        # POST only: the server is stateless, so it offers no GET event stream and no session to DELETE;
        # the spec allows answering those with 405 (a GET stream would otherwise stay open forever).
        app.router.routes.append(Route(path, endpoint=endpoint, methods=["POST"], include_in_schema=False))
    return manager


# --- stdio (`rag mcp`) -----------------------------------------------------------------------


class _BackgroundService:
    """Opens the service in a daemon thread; tool calls wait for it (or get the reason it failed).

    A daemon thread rather than an anyio worker: when the client closes stdin while
    the model is still loading (or the index building), the process exits at once
    instead of waiting for the load to finish.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.ready = anyio.Event()
        self.service: Service | None = None
        self.error: str | None = None

    def start(self) -> None:
        token = anyio.lowlevel.current_token()

        def load() -> None:
            try:
                self.service = Service.open(self.settings)
            except RagError as exc:
                self.error = str(exc)
                log.error("rag mcp: %s", exc)
            except Exception as exc:  # noqa: BLE001 - reported to the client instead of killing the server
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("rag mcp: cannot open the service")
            try:
                anyio.from_thread.run_sync(self.ready.set, token=token)
            except RuntimeError:  # the event loop is gone: the server has stopped
                pass

        threading.Thread(target=load, name="rag-mcp-open", daemon=True).start()

    async def get(self) -> Service:
        await self.ready.wait()
        if self.service is None:
            raise ToolError(f"the service could not start: {self.error}")
        return self.service


def run_stdio(settings: Settings, server_settings: ServerSettings) -> None:
    """Serve MCP over stdin/stdout until the client closes stdin (`rag mcp`)."""
    background = _BackgroundService(settings)
    server = build_server(background.get, settings, server_settings)

    async def main() -> None:
        background.start()
        await server.run_stdio_async()

    anyio.run(main)

