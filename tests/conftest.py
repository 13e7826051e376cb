"""Shared fixtures: one real index (real model, real FAISS) built once per test session.

Tests that need their own index (staleness, corruption) build into their own
tmp directory from a copy of seeds/; everything else shares `service`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from api.app import create_app  # noqa: E402
from rag.config import PROJECT_ROOT, Settings  # noqa: E402
from rag.encoding.encoders import Encoders  # noqa: E402
from rag.encoding.model import resolve_model  # noqa: E402
from rag.service import Service  # noqa: E402

SEEDS = PROJECT_ROOT / "seeds"
ARTICLE = SEEDS / "permanent-revolution-1917-and-today.txt"
ARTICLE_ID = "permanent-revolution-1917-and-today"


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return Settings(index_dir=tmp_path_factory.mktemp("index"), seeds_dir=SEEDS)


@pytest.fixture(scope="session")
def encoders() -> Encoders:
    """One provider for the default model: each encoder is loaded once per test session, shared by every service."""
    settings = Settings()
    return Encoders.from_settings(settings, resolve_model(settings.model))


@pytest.fixture(scope="session")
def service(settings, encoders) -> Service:
    return Service.open(settings, encoders)


@pytest.fixture(scope="session")
def encoder(encoders):
    """The encoder that builds indexes (the fp32 ONNX export for the packaged model: rag.encoding.build_encoder)."""
    return encoders.builder()


@pytest.fixture(scope="session")
def reference(encoders):
    """sentence-transformers: the yardstick the ONNX paths are checked against."""
    return encoders.reference()


@pytest.fixture(scope="session")
def client(service):
    with TestClient(create_app(service=service)) as test_client:
        yield test_client


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    """A small corpus (ten paragraphs of the article in two sections, with metadata) to build, change and break."""
    from tests.reliability_support import write_tiny_seeds

    return write_tiny_seeds(tmp_path / "seeds")


@pytest.fixture(scope="session")
def live_server(service):
    """The app on a real uvicorn (in a thread, on a free 127.0.0.1 port) over the shared service; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live-uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live uvicorn server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()
