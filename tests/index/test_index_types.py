"""`make_faiss_index` picks exact search, HNSW or IVF by size, and each kind survives the index file.

The sizes here are small (the thresholds are lowered for the test); recall at 10k-1M is measured by
eval/bench_scale.py.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from rag.index import ann as rag_index
from rag.config import PROJECT_ROOT, Settings
from rag.service import Service


def clustered(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim)).astype(np.float32)
    x = centres[rng.integers(0, 32, n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n, expected", [(800, "flat"), (2_000, "hnsw"), (4_000, "ivf")])
def test_auto_picks_by_size_and_the_index_round_trips(monkeypatch, n, expected):
    vectors = clustered(n + 100)
    data, queries = vectors[:n], vectors[n:]
    built, kind = rag_index.make_faiss_index(data, "auto", exact_search_max=1_000, ivf_above=3_000)
    assert kind == expected

    loaded = faiss.deserialize_index(faiss.serialize_index(built))  # what the index file holds
    assert loaded.ntotal == n
    if kind == "hnsw":
        assert faiss.downcast_index(loaded).hnsw.efSearch == rag_index.HNSW_EF_SEARCH
    if kind == "ivf":
        ivf = faiss.extract_index_ivf(loaded)
        assert ivf.nprobe == max(1, ivf.nlist // rag_index.IVF_PROBE_SHARE)
    # The retriever reads every passage vector back (reconstruct_n): IVF needs its direct map for that.
    # Every type stores float16 (rag.index.ann.VECTOR_STORAGE): what comes back is the vector rounded to float16.
    np.testing.assert_allclose(loaded.reconstruct_n(0, n), data.astype(np.float16).astype(np.float32), atol=1e-4)

    exact = faiss.IndexFlatIP(data.shape[1])
    exact.add(data)
    _, truth = exact.search(queries, 10)
    _, found = loaded.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist())])
    assert recall >= 0.95, recall


def test_index_type_can_be_forced():
    data = clustered(600)
    for forced in ("flat", "hnsw", "ivf"):
        assert rag_index.make_faiss_index(data, forced, exact_search_max=50_000)[1] == forced


def test_service_serves_a_forced_ivf_index(tmp_path, seeds_copy, encoders):
    service = Service.open(Settings(index_dir=tmp_path / "index", seeds_dir=seeds_copy, index_type="ivf"), encoders)
    assert service.snapshot.index.manifest["index_type"] == "ivf"
    assert service.info()["index_type"] == "ivf"
    result = service.query(service.parse("What is the theory of permanent revolution?", 5, "hybrid"))
    assert result.hits and result.hits[0].passage.text
