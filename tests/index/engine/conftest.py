"""The shared fixtures again, on Qdrant's embedded (local) mode instead of FAISS + bm25s (rag.index.qdrant_store).

`settings`, `service` and `client` are redefined here, so every test in this folder, including the HTTP
contract suite it imports from tests/api/test_api.py, runs against an index whose vectors and BM25 live
in the engine. The folder is skipped when qdrant-client is not installed.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("qdrant_client")

from api.app import create_app  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Service  # noqa: E402
from tests.conftest import SEEDS  # noqa: E402


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("qdrant")


@pytest.fixture(scope="session")
def settings(tmp_path_factory, engine_dir) -> Settings:
    return Settings(index_dir=tmp_path_factory.mktemp("engine-index"), seeds_dir=SEEDS, vector_store="qdrant", vector_store_uri=str(engine_dir))


@pytest.fixture(scope="session")
def service(settings, encoders) -> Service:
    return Service.open(settings, encoders)


@pytest.fixture(scope="session")
def client(service):
    with TestClient(create_app(service=service)) as test_client:
        yield test_client
