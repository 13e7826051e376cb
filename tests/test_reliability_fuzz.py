"""Property-based fuzzing of the whole OpenAPI schema with schemathesis (v4), against the ASGI app.

Every operation in /openapi.json gets valid (positive) and invalid (negative)
generated requests, plus schemathesis's coverage phase (boundary values).
Bounded: at most MAX_EXAMPLES fuzzed cases per operation and mode, a fixed
seed derived per operation, no shrinking, no example database; about a
thousand requests in total and well under a minute here. All of
schemathesis's default checks must hold: no 5xx, status codes, content types,
headers and bodies as documented, invalid input rejected, valid input accepted.
"""

from __future__ import annotations


import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from api.app import create_app
from api.settings import ServerSettings
from rag.config import Settings

pytestmark = pytest.mark.slow  # live servers, subprocesses, browsers or whole-set runs: `make test`, not `make test-fast`

MAX_EXAMPLES = 150


# The schema is loaded when this module is imported (schemathesis's lazy `from_fixture` loader does not
# work with pytest 9), so the app is made here and given the session's service by the fixture below.
APP = create_app(Settings(), ServerSettings(api_key=None, rate_limit_per_minute=0, cors_origins=[]))


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


@pytest.fixture(autouse=True, scope="module")
def serve_the_shared_index(service):
    APP.state.service = service
    yield
    APP.state.service = None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_every_operation_holds_its_contract(case):
    case.call_and_validate()
