"""Query-path benchmark: the whole hybrid query (BM25 + dense + sentence matching + highlight +
answerability) over synthetic corpora of 10k, 100k and 1M passages, built and loaded through the
service's own code and index format.

Per size, two fresh processes (so each peak RSS is its own):

1. **build**: write a corpus of `.txt` documents, then `rag.index.build.build_index`, the function `rag index`
   runs (chunking, embedding texts, FAISS choice, the store's files and manifest), with one stand-in:
   the model. Embedding a million passages and five million sentences with all-MiniLM-L6-v2 would take
   hours on 2 cores, so the build's encoder returns synthetic vectors from `bench_scale.clustered_vectors`
   (the two-level Gaussian mixture calibrated against real all-MiniLM-L6-v2 embeddings, see
   eval/bench_scale.py) and counts tokens as 1.3 per word. Build throughput (passages/s) is reported with
   and without that stand-in's time.
2. **serve**: what `Service.open` does with RAG_AUTO_BUILD=false (load and verify the index, build BM25,
   the real ONNX query encoder), then 300 distinct questions answered one at a time in-process
   (`Retriever.search`, hybrid, top 5) after 20 warm-up questions: p50/p99 and the median of each stage,
   peak RSS (VmHWM), load time, index size on disk; and recall@10 of the ANN stage against exact search
   over the same stored vectors, for held-out synthetic queries from the same mixture.

The text: sentences (40-200 characters) from the seed article and from the docstrings and comments
of the packages installed in this environment (40k distinct sentences), recombined at random into paragraphs of at
least 3 sentences and 320 characters (about 5 sentences; each paragraph becomes one passage), 1,000
paragraphs per document. The questions: the 153 bundled eval questions plus the
opening 6-10 words of random corpus sentences, 300 distinct in all.

The "article" row is the real thing for comparison: the bundled 41-passage article, indexed with the
real model, asked the same 300 questions (the issue's target: query cost at 20k passages <= 1.5x that
at 41).

Usage:  python eval/bench_querypath.py [--sizes article,10000,20000,100000,1000000] [--quick] [--json PATH]
        --quick = article and 10k only. Work files go to a temporary directory, removed per size.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from eval.bench_scale import clustered_vectors, make_queries  # noqa: E402
from eval.harness import knn_recall, pct, proc_status  # noqa: E402


def rss_kb(field: str = "VmRSS") -> int:
    """This process's current (VmRSS) or peak (VmHWM) resident memory, kB."""
    return proc_status("self", field) or 0

DEFAULT_SIZES = ("article", "10000", "20000", "100000", "1000000")
QUICK_SIZES = ("article", "10000")
QUESTIONS = 300
WARMUP = 20
PARAGRAPHS_PER_DOCUMENT = 1_000
RECALL_QUERIES = 300
STEP_TIMEOUT_S = 5_400  # per build or serve step; the 1M build is the long one
ARTICLE = ROOT / "seeds" / "permanent-revolution-1917-and-today.txt"
SENTENCE = re.compile(r"[A-Z][^.\n]{40,200}\.")
PROSE = re.compile(r"(?<![\w.])[A-Z][a-z]+ [a-z][A-Za-z ,;'-]{38,200}[a-z]\.(?=\s)")


# --- text ----------------------------------------------------------------------------------


def sentence_pool(limit: int = 40_000) -> list[str]:
    """Distinct English sentences from the seed article, then from the packages installed here (their
    docstrings and comments: sentences of letters, spaces and light punctuation only, so no code)."""
    sentences = dict.fromkeys(m.strip() for m in SENTENCE.findall(ARTICLE.read_text(encoding="utf-8")))
    for path in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        if len(sentences) >= limit:
            break
        try:
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        sentences.update(dict.fromkeys(m.group(0) for m in PROSE.finditer(text)))
    return list(sentences)[:limit]


def write_corpus(seeds: Path, paragraphs: int, pool: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    seeds.mkdir(parents=True, exist_ok=True)
    for d in range(max(1, -(-paragraphs // PARAGRAPHS_PER_DOCUMENT))):
        count = min(PARAGRAPHS_PER_DOCUMENT, paragraphs - d * PARAGRAPHS_PER_DOCUMENT)
        body = "\n\n".join(paragraph(rng, pool) for _ in range(count))
        (seeds / f"doc-{d:05d}.txt").write_text(f"Synthetic document {d}\n\n{body}\n", encoding="utf-8")


def paragraph(rng: random.Random, pool: list[str], min_chars: int = 320) -> str:
    """Random sentences until the paragraph is long enough to be a passage of its own (chunker: >= 300 characters)."""
    sentences: list[str] = []
    while sum(map(len, sentences)) < min_chars or len(sentences) < 3:
        sentences.append(rng.choice(pool))
    return " ".join(sentences)


def questions(pool: list[str], n: int = QUESTIONS, seed: int = 1) -> list[str]:
    bundled = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    out = dict.fromkeys(bundled)
    while len(out) < n:
        words = rng.choice(pool).rstrip(".").split()
        out[" ".join(words[: rng.randint(6, 10)])] = None
    return list(out)[:n]


# --- build (its own process) ----------------------------------------------------------------


class SyntheticEncoder:
    """The build's stand-in for the model: calibrated synthetic vectors, 1.3 tokens per word."""

    max_seq_length = 256

    def __init__(self, recall_queries: int):
        self.recall_queries = recall_queries
        self.calls = 0
        self.seconds = 0.0
        self.queries: np.ndarray | None = None

    def count_tokens(self, text: str) -> int:
        return int(len(text.split()) * 1.3) + 1

    def encode(self, texts: list[str], progress: bool = False, batch_size: int = 32, desc: str = "texts") -> np.ndarray:
        started = time.perf_counter()
        self.calls += 1
        first = self.calls == 1  # passages come first: keep held-out queries from the same mixture
        data = clustered_vectors(len(texts) + (self.recall_queries if first else 0), seed=self.calls)
        if first:
            self.queries = make_queries(data[len(texts):])
            data = data[: len(texts)]
        self.seconds += time.perf_counter() - started
        return data


def run_build(work: Path, paragraphs: int, pool: list[str]) -> dict:
    from rag.index.build import IndexConfig, build_index
    from rag.config import Settings
    from rag.corpus.documents import load_corpus
    from rag.encoding.model import resolve_model

    started = time.perf_counter()
    write_corpus(work / "seeds", paragraphs, pool)
    corpus_s = time.perf_counter() - started
    (work / "questions.json").write_text(json.dumps(questions(pool)))
    settings = Settings(seeds_dir=work / "seeds", index_dir=work / "index", auto_build=False)
    started = time.perf_counter()
    documents = list(load_corpus(settings.seeds_dir, settings.max_document_bytes).documents)
    load_s = time.perf_counter() - started
    encoder = SyntheticEncoder(RECALL_QUERIES)
    config = IndexConfig.of(settings, documents, resolve_model(settings.model))
    started = time.perf_counter()
    manifest = build_index(settings.index_dir, documents, config, encoder, progress=False)
    build_s = time.perf_counter() - started
    np.save(work / "recall-queries.npy", encoder.queries)
    passages = manifest["counts"]["passages"]
    return {
        "passages": passages,
        "sentences": manifest["counts"]["sentences"],
        "documents": len(documents),
        "index_type": manifest["index_type"],
        "write_corpus_s": round(corpus_s, 1),
        "load_corpus_s": round(load_s, 1),
        "build_s": round(build_s, 1),
        "synthetic_embedding_s": round(encoder.seconds, 1),
        "build_passages_per_s": round(passages / build_s, 1),
        "build_passages_per_s_without_embedding": round(passages / max(build_s - encoder.seconds, 1e-9), 1),
        "index_mb": round(sum(f["bytes"] for f in manifest["files"].values()) / 2**20, 1),
        "build_peak_rss_mb": round(rss_kb("VmHWM") / 1024, 1),
    }


# --- serve (its own process) ----------------------------------------------------------------


def run_serve(work: Path | None, pool: list[str]) -> dict:
    """Open the index as a replica would (no build), then answer the questions one at a time."""
    from rag.index.build import IndexConfig, load_or_build
    from rag.config import Settings
    from rag.corpus.documents import load_corpus
    from rag.encoding.encoders import Encoders
    from rag.encoding.model import resolve_model
    from rag.service import make_snapshot
    from rag.query.request import Query

    article = work is None
    settings = Settings() if article else Settings(seeds_dir=work / "seeds", index_dir=work / "index", auto_build=False)
    model = resolve_model(settings.model)
    encoders = Encoders.from_settings(settings, model)
    query_encoder = encoders.query()
    query_encoder.encode(["warm up the encoder"])
    rss_model = rss_kb()
    started = time.perf_counter()
    documents = list(load_corpus(settings.seeds_dir, settings.max_document_bytes).documents)
    loaded, _ = load_or_build(settings, documents, IndexConfig.of(settings, documents, model), encoders, may_build=article)
    load_index_s = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = make_snapshot(settings, documents, loaded, query_encoder)
    snapshot_s = time.perf_counter() - started
    rss_loaded = rss_kb()
    load_peak = rss_kb("VmHWM")  # loading and opening, before any question maps a page of the sentence vectors
    asked = questions(pool) if article else json.loads((work / "questions.json").read_text())
    retriever = snapshot.retriever
    for question in asked[:WARMUP]:
        retriever.search(Query.parse(question + " (warm-up)", 5, "hybrid", settings=settings), snapshot)
    totals, stages = [], {}
    for question in asked:
        started = time.perf_counter()
        result = retriever.search(Query.parse(question, 5, "hybrid", settings=settings), snapshot)
        totals.append((time.perf_counter() - started) * 1000)
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    beyond_embed = [t - e for t, e in zip(totals, stages.get("embed", [0.0] * len(totals)))]
    peak = rss_kb("VmHWM")
    anon, mapped = rss_kb("RssAnon"), rss_kb("RssFile")  # after the questions: private memory vs pages of mapped files
    row = {
        "passages": len(loaded.passages),
        "index_type": loaded.manifest["index_type"],
        "load_index_s": round(load_index_s, 2),
        "snapshot_s": round(snapshot_s, 2),
        "questions": len(totals),
        "p50_ms": pct(totals, 50),
        "p99_ms": pct(totals, 99),
        "p50_ms_without_embed": pct(beyond_embed, 50),
        "p99_ms_without_embed": pct(beyond_embed, 99),
        "stage_p50_ms": {stage: pct(values, 50) for stage, values in stages.items()},
        "rss_model_mb": round(rss_model / 1024, 1),
        "rss_loaded_mb": round(rss_loaded / 1024, 1),
        "load_peak_rss_mb": round(load_peak / 1024, 1),
        "serve_peak_rss_mb": round(peak / 1024, 1),
        "serve_rss_anon_mb": round(anon / 1024, 1),  # private: the process's own memory
        "serve_rss_file_mb": round(mapped / 1024, 1),  # shared, reclaimable: memory-mapped sentence vectors, libraries
        "sentence_vectors": type(loaded.sentence_vectors).__name__ + " " + str(loaded.sentence_vectors.dtype),
    }
    if not article:
        row["ann_recall_at_10"] = ann_recall(loaded.vectors, np.load(work / "recall-queries.npy"))
    return row


def ann_recall(index, queries: np.ndarray, k: int = 10, chunk: int = 100_000) -> float:
    """Recall@k of the FAISS index against exact inner product over its own stored vectors (read in chunks)."""
    _, found = index.search(queries, k)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, index.ntotal, chunk):
        ids = np.arange(start, min(start + chunk, index.ntotal), dtype=np.int64)
        scores = queries @ index.reconstruct_batch(ids).T
        merged_scores = np.hstack([best_scores, scores])
        merged_ids = np.hstack([best_ids, np.broadcast_to(ids, scores.shape)])
        top = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, axis=1)
        best_ids = np.take_along_axis(merged_ids, top, axis=1)
    return round(knn_recall(found.tolist(), best_ids.tolist(), k), 4)


# --- driver ---------------------------------------------------------------------------------


def step(args: list[str], log) -> dict | None:
    cmd = [sys.executable, __file__, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        log(f"  {' '.join(args)}: timed out after {STEP_TIMEOUT_S}s")
        return {"error": f"timed out after {STEP_TIMEOUT_S}s"}
    if out.returncode != 0:
        log(f"  {' '.join(args)}: failed: {out.stderr.strip()[-800:]}")
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes=DEFAULT_SIZES, log=print, workdir: Path | None = None) -> list[dict]:
    """Each size: a build process, then a serve process; returns one row per size (what `make bench` records)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="querypath-", dir=workdir) as tmp:
        pool = Path(tmp) / "sentences.json"
        pool.write_text(json.dumps(sentence_pool()))
        for size in sizes:
            if size == "article":
                row = {"size": "article", **(step(["--pool", str(pool), "--serve-article"], log) or {})}
            else:
                work = Path(tmp) / size
                try:
                    built = step(["--pool", str(pool), "--build", str(work), size], log) or {}
                    served = step(["--pool", str(pool), "--serve", str(work)], log) if "error" not in built else {}
                    row = {"size": int(size), **built, **(served or {})}
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            rows.append(row)
            log(json.dumps(row))
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| passages | ANN | build s (passages/s) | index MB | load s | hybrid p50 / p99 ms | without embed p50 / p99 | "
        "embed / dense / lexical / fusion / highlight p50 ms | peak RSS serve / build MB | ANN recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        if "p50_ms" not in r:
            lines.append(f"| {r.get('size')} | {r.get('error', 'failed')} |||||||||")
            continue
        st = r["stage_p50_ms"]
        stages = " / ".join(f"{st.get(s, 0):.2f}" for s in ("embed", "dense", "lexical", "fusion", "highlight"))
        build = f"{r['build_s']:.0f} ({r['build_passages_per_s']:,.0f})" if "build_s" in r else "–"
        lines.append(
            f"| {r['passages']:,} | {r['index_type']} | {build} | {r.get('index_mb', '–')} | {r['load_index_s'] + r['snapshot_s']:.1f} | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['p50_ms_without_embed']:.1f} / {r['p99_ms_without_embed']:.1f} | {stages} | "
            f"{r['serve_peak_rss_mb']:,.0f} / {r.get('build_peak_rss_mb', '–')} | {r.get('ann_recall_at_10', '–')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="'article' and/or passage counts")
    parser.add_argument("--quick", action="store_true", help="the article and 10k only")
    parser.add_argument("--json", "--out", dest="json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary corpora and indexes go")
    parser.add_argument("--build", nargs=2, metavar=("DIR", "PARAGRAPHS"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-article", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:
        print(json.dumps(run_build(Path(args.build[0]), int(args.build[1]), json.loads(args.pool.read_text()))))
        return 0
    if args.serve or args.serve_article:
        print(json.dumps(run_serve(args.serve, json.loads(args.pool.read_text()))))
        return 0
    sizes = QUICK_SIZES if args.quick else tuple(s.strip().replace("_", "") for s in args.sizes.split(",") if s.strip())
    rows = run(sizes, workdir=args.workdir)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
