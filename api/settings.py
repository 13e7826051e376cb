"""The server's settings: how the service is reached. Read once from the environment (prefix `RAG_`).

Apart from the library's settings (`rag.config.Settings`: corpus, model,
index, retrieval and query limits) because none of this changes what an
answer is, only who may ask and how: host and port, the API key, CORS, the
rate limit, the request body limit, the public URL used in links, and the
limits that keep a crowd from stalling everyone (admission of query work,
key guesses, slow and idle connections, the size of an upload), whether
the server follows seeds/ by itself (`watch`), and, in the workers of
`rag serve --workers N` only, the runtime folder they share (`workers_dir`).

The defaults suit the 2-core machine this runs on: four questions are
answered at once (the CPU has two cores; a few more keep the micro-batcher
fed) with 64 waiting (about a second of work at 50-90 questions a second;
enough for the benchmark's 64 concurrent clients), and one batch at a time
with two waiting (a maximal batch, 32 x 2,000 characters at top_k 50, takes
about 14 s here), so a crowd of batches cannot make a single /query wait
behind all of them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_upload_bytes: int = Field(
        21 * 1024 * 1024, ge=1024, description="Body limit of POST and PUT /documents (the file with its form fields); other routes keep max_body_bytes."
    )
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(0, ge=0, description="Requests per minute per client; 0 = off.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose X-Forwarded-For is believed (none by default)."
    )
    public_url: str | None = Field(None, description="Base URL used in links (MCP results); defaults to the request's own.")
    # admission of query work (api.limits.Admission): beyond workers + queue, a fast 503 with Retry-After
    query_workers: int = Field(4, ge=1, description="Single questions (/query) answered at once.")
    query_queue: int = Field(64, ge=0, description="Single questions waiting for a worker; more get 503.")
    batch_workers: int = Field(1, ge=1, description="Batches (/query/batch) answered at once, apart from single questions.")
    batch_queue: int = Field(2, ge=0, description="Batches waiting; more get 503.")
    key_guesses_per_minute: int = Field(
        10, ge=1, description="Wrong API keys per client per minute before 429 (applies whenever RAG_API_KEY is set)."
    )
    # connections (api.server)
    header_timeout_seconds: float = Field(10.0, gt=0, description="A connection that has not sent a complete request head by then is closed.")
    max_connections: int = Field(512, ge=1, description="Open connections; more are answered 503 and closed at once.")
    max_connections_per_client: int = Field(
        0, ge=0, description="Open connections one client address may hold (api.connections); 0 = a quarter of max_connections."
    )
    # following the disk (rag.watch, started by api.server): `rag serve --watch` or RAG_WATCH=true
    watch: bool = Field(False, description="Re-index when files in seeds/ change (debounced), as `rag serve --watch`.")
    watch_interval_seconds: float = Field(2.0, gt=0, le=3600, description="How often the watcher looks at seeds/ and the index manifest.")
    watch_debounce_seconds: float = Field(2.0, ge=0, le=3600, description="seeds/ must stay unchanged this long before a re-index.")
    # several worker processes (api.worker_share): set by `rag serve --workers N` for its workers, never by hand
    workers_dir: Path | None = Field(
        None, description="The supervisor's private runtime folder: the workers' shared rate limits and records (RAG_WORKERS_DIR)."
    )


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    return ServerSettings()
