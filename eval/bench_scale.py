"""Scale benchmark: the FAISS index the service picks at 10k / 100k / 1M vectors.

For each size, in a fresh process (so memory figures are that size's own):

* synthetic unit vectors, dim 384, *clustered* (below), plus held-out queries from the same
  distribution with extra noise (queries never coincide with stored vectors);
* `rag.index.ann.make_faiss_index(vectors, "auto", exact_search_max)`: the exact same call the
  index build makes, so the type (flat / hnsw / ivf) and its parameters are the service's;
* build time, single-query search latency p50/p99 (top 10, one query per call, as a request
  does), the serialized index size and the process RSS growth over the build;
* recall@10 against exact inner-product search (IndexFlatIP) over the same vectors, and the
  exact search's own single-query latency for comparison.

The data: real sentence embeddings are neither uniform noise (where every neighbour is as
far as any other, and no ANN index works) nor tight separable blobs (where any index is
perfect). Here 64 "topics" in a 64-dimensional latent space each hold 64 sub-topic centres;
a vector is a sub-topic centre plus wide Gaussian spread, mapped into 384 dimensions by a
random orthonormal map, plus full-rank isotropic noise, then normalised.

The parameters were chosen against real embeddings (`--calibrate`, result kept in
eval/results/scale_calibration.json): all-MiniLM-L6-v2 vectors of 12k distinct sentences from
the docstrings of the installed packages vs 12k synthetic vectors, by recall@10 of IVF (128
lists) and HNSW (M 32) at several search depths. Our first, tightly clustered data made IVF
look far better than on real vectors (0.80 vs 0.47 recall at nprobe 1); with the parameters
below the synthetic set is *harder* than the real one for both kinds at every depth (IVF
nprobe 1..32: 0.41-0.93 vs 0.47-0.96; HNSW efSearch 16..128: 0.78-0.996 vs 0.94-0.999), so the
recall figures here are, if anything, pessimistic.

Usage:  python eval/bench_scale.py [--sizes 10000,100000,1000000] [--queries 300] [--json PATH]
        [--index-type auto|flat|hnsw|ivf]   (auto = what the service would choose)
        python eval/bench_scale.py --calibrate   (real vs synthetic recall curves, ~3 minutes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from eval.harness import knn_recall, percentile, proc_status  # noqa: E402

DIM = 384
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
SIZE_TIMEOUT_S = 1500  # per size, hard limit on its subprocess


# --- data --------------------------------------------------------------------------------


def clustered_vectors(n: int, seed: int = 0, dim: int = DIM, latent: int = 64, topics: int = 64,
                      subtopics: int = 64, spread: float = 1.8, noise: float = 0.3, chunk: int = 50_000) -> np.ndarray:
    """`n` unit vectors from a two-level Gaussian mixture in a `latent`-dim subspace, plus noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0].T.astype(np.float32)  # latent x dim
    topic_centres = rng.standard_normal((topics, latent)).astype(np.float32) * 1.0
    centres = (topic_centres[:, None, :] + 0.6 * rng.standard_normal((topics, subtopics, latent))).reshape(-1, latent)
    centres = centres.astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = centres[rng.integers(0, len(centres), m)] + spread * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ basis
        x += noise * np.linalg.norm(z, axis=1, keepdims=True) / np.sqrt(dim) * rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out


def make_queries(pool: np.ndarray, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """Held-out points pushed off the data a little (a question is not a copy of a passage)."""
    rng = np.random.default_rng(seed)
    q = pool + noise * rng.standard_normal(pool.shape, dtype=np.float32) / np.sqrt(pool.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


# --- one size, in this process -------------------------------------------------------------


def _trim_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def single_query_ms(index, queries: np.ndarray, k: int = 10) -> list[float]:
    out = []
    for row in queries:
        started = time.perf_counter()
        index.search(row[None, :], k)
        out.append((time.perf_counter() - started) * 1000)
    return out


def run_size(n: int, n_queries: int, index_type: str, exact_search_max: int) -> dict:
    import faiss

    from rag.index.ann import make_faiss_index

    t0 = time.perf_counter()
    data = clustered_vectors(n + n_queries)
    vectors, queries = data[:n], make_queries(data[n:])
    del data
    generate_s = time.perf_counter() - t0

    _trim_heap()  # hand freed temporaries back to the OS, so the RSS growth below is the index's
    rss_before = proc_status("self", "VmRSS")
    started = time.perf_counter()
    index, chosen = make_faiss_index(vectors, index_type, exact_search_max)
    build_s = time.perf_counter() - started
    rss_after = proc_status("self", "VmRSS")
    params = index_params(index, chosen)

    single_query_ms(index, queries[: min(20, n_queries)])  # warm up
    latencies = single_query_ms(index, queries)
    _, found = index.search(queries, 10)

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    sims, truth = exact.search(queries, 10)
    recall = knn_recall(found, truth)
    sweep = recall_sweep(index, chosen, queries, truth)
    exact_lat = latencies if chosen == "flat" else single_query_ms(exact, queries[: min(60, n_queries)])
    index_bytes = len(faiss.serialize_index(index))
    return {
        "vectors": n,
        "dim": int(vectors.shape[1]),
        "index_type": chosen,
        "params": params,
        "generate_s": round(generate_s, 2),
        "build_s": round(build_s, 2),
        "search_ms_p50": percentile(latencies, 50, digits=4),
        "search_ms_p99": percentile(latencies, 99, digits=4),
        "queries": len(latencies),
        "recall_at_10": round(recall, 4),
        "recall_sweep": sweep,
        "exact_search_ms_p50": percentile(exact_lat, 50, digits=4),
        "index_bytes": index_bytes,
        "index_mb": round(index_bytes / 2**20, 1),
        "raw_vectors_mb": round(vectors.nbytes / 2**20, 1),
        "rss_delta_mb": round((rss_after - rss_before) / 1024, 1),
        "neighbour_cosine_top1_mean": round(float(sims[:, 0].mean()), 3),
        "neighbour_cosine_top10_mean": round(float(sims[:, 9].mean()), 3),
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def recall_sweep(index, chosen: str, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Recall@10 at other search depths than the service's (how much margin the setting has)."""
    import faiss

    if chosen == "hnsw":
        target, name, values = faiss.downcast_index(index).hnsw, "efSearch", (16, 32, 64, 128, 256, 512)
    elif chosen == "ivf":
        target, name, values = faiss.extract_index_ivf(index), "nprobe", (16, 32, 64, 128, 256, 512)
    else:
        return {}
    kept = getattr(target, name)
    out = {}
    for value in values:
        setattr(target, name, value)
        out[f"{name}={value}"] = round(knn_recall(index.search(queries, 10)[1], truth), 4)
    setattr(target, name, kept)
    return out


def index_params(index, chosen: str) -> dict:
    import faiss

    if chosen == "hnsw":
        hnsw = faiss.downcast_index(index).hnsw
        return {"M": (hnsw.nb_neighbors(1)), "efConstruction": hnsw.efConstruction, "efSearch": hnsw.efSearch}
    if chosen == "ivf":
        ivf = faiss.extract_index_ivf(index)
        return {"nlist": ivf.nlist, "nprobe": ivf.nprobe}
    return {}


# --- driver --------------------------------------------------------------------------------


def run(sizes, n_queries: int = 300, index_type: str = "auto", exact_search_max: int | None = None,
        log=print) -> list[dict]:
    """Each size in its own subprocess (bounded by SIZE_TIMEOUT_S); returns one row per size."""
    if exact_search_max is None:
        from rag.config import Settings

        exact_search_max = Settings().exact_search_max
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--queries", str(n_queries),
               "--index-type", index_type, "--exact-search-max", str(exact_search_max)]
        started = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=SIZE_TIMEOUT_S, cwd=ROOT)
        except subprocess.TimeoutExpired:
            rows.append({"vectors": n, "error": f"timed out after {SIZE_TIMEOUT_S}s"})
            log(f"  {n:>9,}: timed out")
            continue
        if out.returncode != 0:
            rows.append({"vectors": n, "error": out.stderr.strip().splitlines()[-1:] or ["failed"]})
            log(f"  {n:>9,}: failed: {out.stderr.strip()[-500:]}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["wall_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        log(f"  {n:>9,} {row['index_type']:<5} build {row['build_s']:7.1f}s  search p50 {row['search_ms_p50']:.3f} ms "
            f"p99 {row['search_ms_p99']:.3f} ms  recall@10 {row['recall_at_10']:.4f}  index {row['index_mb']:.0f} MB  "
            f"RSS +{row['rss_delta_mb']:.0f} MB  (exact p50 {row['exact_search_ms_p50']:.2f} ms)")
    return rows


def calibrate(limit: int = 12_000, n_queries: int = 500) -> dict:
    """Recall curves (IVF and HNSW) of real all-MiniLM-L6-v2 embeddings vs synthetic vectors of the same count.

    The real text: distinct sentences (40-200 characters) from the docstrings of the modules installed
    in this environment, embedded with the service's ONNX query encoder.
    """
    import ast
    import random
    import re
    import sysconfig

    import faiss

    from rag.config import Settings
    from rag.encoding.onnx_encoder import ensure_onnx
    from rag.encoding.torch_encoder import SentenceTransformerEncoder
    from rag.encoding.model import resolve_model
    from rag.encoding.onnx_encoder import OnnxEncoder

    sentences: set[str] = set()
    for path in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                sentences.update(m.strip() for m in re.findall(r"[A-Z][^.\n]{40,200}\.", doc))
        if len(sentences) >= 3 * limit:
            break
    texts = sorted(sentences)
    random.Random(0).shuffle(texts)
    texts = texts[:limit]
    settings = Settings()
    spec = resolve_model(settings.model)
    encoder = OnnxEncoder(ensure_onnx(settings.encoder_dir, spec, lambda: SentenceTransformerEncoder(spec)), spec.local_dir)
    real = encoder.encode(texts)
    synthetic = clustered_vectors(len(real))
    synthetic = np.vstack([synthetic[:-n_queries], make_queries(synthetic[-n_queries:])])

    def curves(x: np.ndarray) -> dict:
        base, queries = x[:-n_queries], x[-n_queries:]
        exact = faiss.IndexFlatIP(x.shape[1])
        exact.add(base)
        sims, truth = exact.search(queries, 10)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], 128, faiss.METRIC_INNER_PRODUCT)
        ivf.train(base)
        ivf.add(base)
        hnsw = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 200
        hnsw.add(base)
        out = {"top1_cosine": round(float(sims[:, 0].mean()), 3), "top10_cosine": round(float(sims[:, 9].mean()), 3)}
        for p in (1, 2, 4, 8, 16, 32):
            ivf.nprobe = p
            out[f"ivf128 nprobe={p}"] = round(knn_recall(ivf.search(queries, 10)[1], truth), 3)
        for ef in (16, 32, 64, 128):
            hnsw.hnsw.efSearch = ef
            out[f"hnsw efSearch={ef}"] = round(knn_recall(hnsw.search(queries, 10)[1], truth), 3)
        return out

    result = {"vectors": len(real), "real": curves(real), "synthetic": curves(synthetic)}
    for key in result["real"]:
        print(f"  {key:<20} real {result['real'][key]:.3f}   synthetic {result['synthetic'][key]:.3f}")
    return result


def table(rows: list[dict]) -> str:
    lines = ["| vectors | index (params) | build s | search p50 ms | p99 ms | recall@10 | exact p50 ms | index MB | RSS +MB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['vectors']:,} | {r['error']} |||||||| ")
            continue
        params = ", ".join(f"{k} {v}" for k, v in r["params"].items())
        lines.append(f"| {r['vectors']:,} | {r['index_type']}{f' ({params})' if params else ''} | {r['build_s']:.1f} | "
                     f"{r['search_ms_p50']:.3f} | {r['search_ms_p99']:.3f} | {r['recall_at_10']:.4f} | "
                     f"{r['exact_search_ms_p50']:.2f} | {r['index_mb']:.0f} | {r['rss_delta_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--index-type", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    parser.add_argument("--exact-search-max", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--calibrate", action="store_true", help="compare the synthetic data with real embeddings")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calibrate:
        result = calibrate()
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    if args.one is not None:  # the per-size subprocess
        print(json.dumps(run_size(args.one, args.queries, args.index_type, args.exact_search_max)))
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    rows = run(sizes, args.queries, args.index_type, args.exact_search_max)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
