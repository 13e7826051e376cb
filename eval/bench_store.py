"""Store benchmark: the default store (FAISS + bm25s in the process) beside Qdrant (rag.index.qdrant_store) at ~20k passages.

Per store, two fresh processes over one synthetic corpus (bench_querypath's: recombined sentences, one passage
per paragraph, the model's stand-in `SyntheticEncoder` for the build's embeddings, since embedding 20k passages
and 100k sentences with the real model would take most of an hour on 2 cores):

1. **build**: `rag.index.build.build_index` with RAG_VECTOR_STORE=faiss or qdrant, the function `rag index` runs;
   build throughput in passages/s with and without the stand-in's time, and for Qdrant the time spent adding
   the points to the engine (`qdrant_store.add_passages`).
2. **serve**: what a replica does with RAG_AUTO_BUILD=false (load and verify the index, open the store, the
   real ONNX query encoder), then the same questions answered one at a time in-process (`Retriever.search`,
   top 5) in each mode, and hybrid again under a filter allowing one document in twenty: p50/p99 in ms, with
   and without the question's embedding, and each stage's median.

The engine is Qdrant's embedded local mode in a temporary folder unless `--uri http://host:6333` names a
server (its collection `bench_store` is dropped first). Local mode is qdrant-client's pure-Python
implementation (exact scans, no payload indexes), meant for development and tests: its figures are those of
the embedded instance, not of a Qdrant server.

Usage:  python eval/bench_store.py [--passages 20000] [--questions 60] [--uri URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.bench_querypath import SyntheticEncoder, questions, rss_kb, sentence_pool, write_corpus  # noqa: E402
from eval.harness import pct  # noqa: E402

STORES = ("faiss", "qdrant")
MODES = ("hybrid", "dense", "lexical")
COLLECTION = "bench_store"
WARMUP = 5
STEP_TIMEOUT_S = 3_600


def store_settings(work: Path, store: str, uri: str | None):
    from rag.config import Settings

    extra = {"vector_store": "qdrant", "vector_store_uri": uri or str(work / "qdrant"), "vector_store_collection": COLLECTION} if store == "qdrant" else {}
    return Settings(seeds_dir=work / "seeds", index_dir=work / f"index-{store}", auto_build=False, **extra)


def run_build(work: Path, store: str, uri: str | None) -> dict:
    from rag.corpus.documents import load_corpus
    from rag.encoding.model import resolve_model
    from rag.index import qdrant_store
    from rag.index.build import IndexConfig, build_index

    settings = store_settings(work, store, uri)
    if store == "qdrant" and uri:
        client = qdrant_store.connect(uri).client
        if client.collection_exists(COLLECTION):
            client.delete_collection(COLLECTION)
    documents = list(load_corpus(settings.seeds_dir, settings.max_document_bytes).documents)
    encoder = SyntheticEncoder(10)
    config = IndexConfig.of(settings, documents, resolve_model(settings.model))
    engine_s = [0.0]
    add = qdrant_store.add_passages

    def timed_add(*args, **kwargs):
        started = time.perf_counter()
        try:
            return add(*args, **kwargs)
        finally:
            engine_s[0] += time.perf_counter() - started

    qdrant_store.add_passages = timed_add
    started = time.perf_counter()
    manifest = build_index(settings.index_dir, documents, config, encoder, progress=False)
    build_s = time.perf_counter() - started
    passages = manifest["counts"]["passages"]
    return {
        "store": store,
        "passages": passages,
        "sentences": manifest["counts"]["sentences"],
        "index_type": manifest["index_type"],
        "build_s": round(build_s, 1),
        "synthetic_embedding_s": round(encoder.seconds, 1),
        "engine_add_s": round(engine_s[0], 1),
        "build_passages_per_s": round(passages / build_s, 1),
        "build_passages_per_s_without_embedding": round(passages / max(build_s - encoder.seconds, 1e-9), 1),
        "engine_add_passages_per_s": round(passages / engine_s[0], 1) if engine_s[0] else None,
        "index_folder_mb": round(sum(f["bytes"] for f in manifest["files"].values()) / 2**20, 1),
        "build_peak_rss_mb": round(rss_kb("VmHWM") / 1024, 1),
    }


def run_serve(work: Path, store: str, uri: str | None, asked: list[str]) -> dict:
    from rag.corpus.documents import load_corpus
    from rag.encoding.encoders import Encoders
    from rag.encoding.model import resolve_model
    from rag.index.build import IndexConfig, load_or_build
    from rag.query.request import Query
    from rag.service import make_snapshot

    settings = store_settings(work, store, uri)
    model = resolve_model(settings.model)
    query_encoder = Encoders.from_settings(settings, model).query()
    query_encoder.encode(["warm up the encoder"])
    started = time.perf_counter()
    documents = list(load_corpus(settings.seeds_dir, settings.max_document_bytes).documents)
    loaded, _ = load_or_build(settings, documents, IndexConfig.of(settings, documents, model), None, may_build=False)
    snapshot = make_snapshot(settings, documents, loaded, query_encoder)
    open_s = time.perf_counter() - started
    retriever = snapshot.retriever
    one_in_twenty = sorted(snapshot.documents)[:: 20] or sorted(snapshot.documents)[:1]
    cases = {mode: (mode, None) for mode in MODES}
    cases["hybrid, filtered"] = ("hybrid", {"documents": one_in_twenty})
    rows = {}
    for name, (mode, filters) in cases.items():
        query_of = lambda q: Query.parse(q, 5, mode, filters, settings=settings)  # noqa: E731
        allowed = snapshot.allowed(query_of("x").filters)
        for question in asked[:WARMUP]:
            retriever.search(query_of(question + " (warm-up)"), snapshot, allowed)
        totals, stages = [], {}
        for question in asked:
            started = time.perf_counter()
            result = retriever.search(query_of(question), snapshot, allowed)
            totals.append((time.perf_counter() - started) * 1000)
            for stage, ms in result.timings_ms.items():
                stages.setdefault(stage, []).append(ms)
        beyond = [t - e for t, e in zip(totals, stages["embed"])]
        rows[name] = {
            "questions": len(totals),
            "p50_ms": pct(totals, 50),
            "p99_ms": pct(totals, 99),
            "p50_ms_without_embed": pct(beyond, 50),
            "p99_ms_without_embed": pct(beyond, 99),
            "stage_p50_ms": {stage: pct(values, 50) for stage, values in stages.items()},
        }
    return {"store": store, "open_s": round(open_s, 2), "serve_peak_rss_mb": round(rss_kb("VmHWM") / 1024, 1), "cases": rows}


def step(args: list[str], log) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=STEP_TIMEOUT_S, cwd=ROOT)
    if out.returncode != 0:
        log(f"  {' '.join(args)}: failed: {out.stderr.strip()[-800:]}")
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| store | passages | build s (passages/s; without the stand-in embedding) | engine add s | open s | "
        + " | ".join(f"{c} p50 / p99 ms" for c in (*MODES, "hybrid, filtered")) + " | peak RSS serve MB |",
        "|---|---:|---:|---:|---:|" + "---:|" * 4 + "---:|",
    ]
    for r in rows:
        if "cases" not in r:
            lines.append(f"| {r.get('store')} | {r.get('error', 'failed')} |")
            continue
        cells = " | ".join(f"{r['cases'][c]['p50_ms']:.1f} / {r['cases'][c]['p99_ms']:.1f}" for c in (*MODES, "hybrid, filtered"))
        lines.append(
            f"| {r['store']} | {r['passages']:,} | {r['build_s']:.0f} ({r['build_passages_per_s']:,.0f}; {r['build_passages_per_s_without_embedding']:,.0f}) | "
            f"{r['engine_add_s'] or '–'} | {r['open_s']:.1f} | {cells} | {r['serve_peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--questions", type=int, default=60, help="questions per mode")
    parser.add_argument("--uri", default=None, help="a Qdrant server's URL (default: the embedded local mode in a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--build", nargs=2, metavar=("WORK", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, metavar=("WORK", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:
        print(json.dumps(run_build(Path(args.build[0]), args.build[1], args.uri)))
        return 0
    if args.serve:
        work = Path(args.serve[0])
        print(json.dumps(run_serve(work, args.serve[1], args.uri, json.loads((work / "questions.json").read_text()))))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        pool = sentence_pool()
        write_corpus(work / "seeds", args.passages, pool)
        (work / "questions.json").write_text(json.dumps(questions(pool, args.questions)))
        uri = ["--uri", args.uri] if args.uri else []
        for store in args.stores.split(","):
            built = step(["--build", str(work), store, *uri], print)
            served = step(["--serve", str(work), store, *uri], print) if "error" not in built else {}
            rows.append({**built, **served})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(work / f"index-{store}", ignore_errors=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"passages": args.passages, "questions_per_mode": args.questions, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
