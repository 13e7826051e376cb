"""Property-based fuzzing of the whole OpenAPI schema with schemathesis (v4), against the ASGI app.

Every operation in /openapi.json gets valid (positive) and invalid (negative)
generated requests, plus schemathesis's coverage phase (boundary values).
Bounded: at most MAX_EXAMPLES fuzzed cases per operation and mode, a fixed
seed derived per operation, no shrinking, no example database; about a
thousand requests in total and well under a minute here. Deterministic: the
same cases whatever ran before in the process (`same_cases_whatever_ran_before`). All of
schemathesis's default checks must hold: no 5xx, status codes, content types,
headers and bodies as documented, invalid input rejected, valid input accepted.
"""

from __future__ import annotations


import datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture import providers
from schemathesis import GenerationMode

from api.app import create_app
from api.settings import ServerSettings
from rag.config import Settings
from rag.corpus.passage_text import UNTITLED_SECTION

pytestmark = pytest.mark.slow  # live servers, subprocesses, browsers or whole-set runs: `make test`, not `make test-fast`

MAX_EXAMPLES = 150


# The schema is loaded when this module is imported (schemathesis's lazy `from_fixture` loader does not
# work with pytest 9), so the app is made here and given the session's service by the fixture below.
# Bodies up to 4 MB: generated batches of long questions pass the size limit (tested on its own elsewhere) and reach validation.
APP = create_app(Settings(), ServerSettings(api_key=None, rate_limit_per_minute=0, cors_origins=[], max_body_bytes=4_000_000))


async def without_lifespan(scope, receive, send):
    """The app minus its lifespan: schemathesis runs the lifespan around every call, and the app's (which
    starts the MCP session manager, once per app) is for a server's life. The service is set below instead."""
    if scope["type"] != "lifespan":
        return await APP(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            return await send({"type": "lifespan.shutdown.complete"})


schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, no_shrink=True, deterministic=True
)


def real_date(value):
    """A schema-valid "YYYY-MM-DD" that no calendar has (02-30) made real; anything else as it is."""
    try:
        datetime.date.fromisoformat(value)
        return value
    except (TypeError, ValueError):
        return "2018-02-28" if isinstance(value, str) and len(value) == 10 and value[4] == "-" else value


def with_live_filters(case):
    """In a schema-valid case, filters name documents and sections of the live index and real dates in order: things
    a schema cannot say, which the library answers with a 422 naming them (tests/test_filters.py). Invalid cases are
    left alone."""
    if case.meta is not None and case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    live = sorted(APP.state.service.snapshot.documents)
    sections = sorted({p.section or UNTITLED_SECTION for p in APP.state.service.snapshot.passages})
    if isinstance(case.query, dict):
        for key in ("published_after", "published_before"):
            if key in case.query:
                case.query[key] = real_date(case.query[key])
        order_dates(case.query)
        if "document" in case.query:
            names = case.query["document"] if isinstance(case.query["document"], list) else [case.query["document"]]
            case.query["document"] = [live[0] for _ in names]
        if "section" in case.query:
            names = case.query["section"] if isinstance(case.query["section"], list) else [case.query["section"]]
            case.query["section"] = [sections[0] for _ in names]
    body = case.body
    filters = body.get("filters") if isinstance(body, dict) else None
    if not isinstance(filters, dict):
        return
    for key in ("published_after", "published_before"):
        if key in filters:
            filters[key] = real_date(filters[key])
    names = filters.get("documents")
    if isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names):
        filters["documents"] = live[: len(names)]
    titles = filters.get("sections")
    if isinstance(titles, list) and all(isinstance(t, str) and t.strip() for t in titles):
        filters["sections"] = [sections[i % len(sections)] for i in range(len(titles))]
    order_dates(filters)


def order_dates(where: dict) -> None:
    after, before = where.get("published_after"), where.get("published_before")
    if isinstance(after, str) and isinstance(before, str) and after > before:
        where["published_after"], where["published_before"] = before, after


@pytest.fixture(autouse=True, scope="module")
def same_cases_whatever_ran_before():
    """Derandomized Hypothesis still draws some values from the constants of the project's modules that are
    loaded at the time (`providers._get_local_constants`): a test file that imports more of api/ or rag/ before
    this one, or a new literal anywhere in them, changed every case generated here (the failure only after
    tests/api/test_reliability_live.py: `GET /query?published_after=&q=0&section=11`, an object and an integer
    drawn as invalid values that serialize to a valid query). The pool is empty here, so the cases depend on
    the schema and the Hypothesis and schemathesis versions only."""
    assert hasattr(providers, "_get_local_constants") and hasattr(providers, "CONSTANTS_CACHE"), (
        "Hypothesis moved its local-constants pool: make this test's cases independent of loaded modules again")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_get_local_constants", providers.Constants)
        providers.CONSTANTS_CACHE.cache.clear()  # allowed values cached from the pool of an earlier test
        yield
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture(autouse=True, scope="module")
def serve_the_shared_index(service):
    APP.state.service = service
    yield
    APP.state.service = None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_every_operation_holds_its_contract(case):
    with_live_filters(case)
    case.call_and_validate()
