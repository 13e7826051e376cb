"""The server's settings: how the service is reached. Read once from the environment (prefix `RAG_`).

Apart from the library's settings (`rag.config.Settings`: corpus, model,
index, retrieval and query limits) because none of this changes what an
answer is, only who may ask and how: host and port, the API key, CORS, the
rate limit, the request body limit and the public URL used in links.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(0, ge=0, description="Requests per minute per client; 0 = off.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose X-Forwarded-For is believed (none by default)."
    )
    public_url: str | None = Field(None, description="Base URL used in links (MCP results); defaults to the request's own.")


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    return ServerSettings()
