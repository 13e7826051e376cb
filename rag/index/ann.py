"""The approximate-nearest-neighbour stage: which FAISS index, with which parameters.

Exact inner product up to `exact_search_max` vectors, HNSW above, IVF above
IVF_ABOVE, unless the settings force one. `ann_fingerprint` is what the index
manifest records of this choice: the requested type and every parameter that
shapes the FAISS index, so changing any of them makes the index stale.
Recall@10 against exact search is >= 0.98 at 100k and 1M (eval/bench_scale.py).

Every type stores its vectors as float16 (FAISS's scalar quantizer, QT_fp16):
exact search over 20k passages reads 15 MB instead of 30 MB a question (0.86
ms instead of 1.33 ms in eval/bench_querypath.py; recall@10 against float32
exact search 0.998 on random unit vectors; the candidates are re-scored with
the same stored vectors, so only ties at the 100th place can move), and a
million passages take 0.77 GB instead of 1.5 GB. The sentence vectors were
float16 already (rag.index.store).
"""

from __future__ import annotations

import numpy as np

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 256  # recall@10 0.995 at 100k (128: 0.981), eval/bench_scale.py
IVF_ABOVE = 250_000  # index_type=auto: IVF above this (HNSW builds 100k in ~80 s on 2 cores; 1M would take far longer)
IVF_PROBE_SHARE = 4  # search 1/4 of the lists: recall@10 0.985 at 1M (1/8: 0.961), eval/bench_scale.py
IVF_TRAIN_PER_LIST = 64
VECTOR_STORAGE = "fp16"  # how every FAISS type stores the passage vectors (see the module docstring)


def ann_fingerprint(index_type: str, exact_search_max: int) -> dict:
    """Everything that decides the FAISS index besides the vectors."""
    return {
        "requested": index_type,
        "vector_storage": VECTOR_STORAGE,
        "exact_search_max": exact_search_max,
        "ivf_above": IVF_ABOVE,
        "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH},
        "ivf": {"probe_share": IVF_PROBE_SHARE, "train_per_list": IVF_TRAIN_PER_LIST},
    }


def choose_index_type(n: int, index_type: str = "auto", exact_search_max: int = 50_000, ivf_above: int = IVF_ABOVE) -> str:
    if index_type != "auto":
        return index_type
    return "flat" if n <= exact_search_max else "hnsw" if n <= ivf_above else "ivf"


def make_faiss_index(vectors: np.ndarray, index_type: str = "auto", exact_search_max: int = 50_000, ivf_above: int = IVF_ABOVE):
    """The FAISS index over `vectors` (unit rows, inner product) and the type chosen."""
    import faiss

    n = len(vectors)
    chosen = choose_index_type(n, index_type, exact_search_max, ivf_above)
    dim = vectors.shape[1]
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if chosen == "hnsw":
        index = faiss.IndexHNSWSQ(dim, fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif chosen == "ivf":
        # ~sqrt(n) lists, k-means on a sample of 64 per list; the direct map keeps reconstruct() working.
        nlist = int(min(4096, n, max(16, 2 ** round(np.log2(max(np.sqrt(n), 1))))))
        # by_residual=False: each vector is stored as itself (float16), so reconstruct() gives it back
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, fp16, faiss.METRIC_INNER_PRODUCT, False)
        sample = np.random.default_rng(0).choice(n, size=min(n, IVF_TRAIN_PER_LIST * nlist), replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        index.nprobe = max(1, nlist // IVF_PROBE_SHARE)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        index.make_direct_map()
        return index, chosen
    else:
        index = faiss.IndexScalarQuantizer(dim, fp16, faiss.METRIC_INNER_PRODUCT)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, chosen
