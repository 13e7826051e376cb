"""Speed benchmarks of the service against "the plain way", all measured in one run: `make bench`.

The machine this runs on is shared and its speed drifts (the same model forward measured 3-35 ms
at different hours), so every target is a RATIO between the service and a baseline measured in
the same run, interleaved wherever possible. Sections (all by default):

  build    `rag index --force` into a fresh temp dir (full build), then again over it (a rebuild
           that reuses unchanged vectors). The index built here is the one every section uses.
  inproc   per-query latency inside one process, p50/p99 per stage (QueryResult.timings_ms) and in
           total, for hybrid / dense / lexical, against SentenceTransformer.encode + IndexFlatIP
           search of the same passage vectors; calls interleaved question by question.
  quality  eval.evaluation over eval/questions.jsonl with the service opened with the ONNX query
           encoder and with sentence-transformers (RAG_ENCODER=onnx vs torch): R@1, R@5, MRR, and
           on how many questions the two return the same top 5.
  http     `rag serve` vs eval/plain_server.py (FastAPI, SentenceTransformer.encode in an async
           endpoint, IndexFlatIP), each its own uvicorn process, loaded in turn by a separate
           process (eval/loadgen.py) at concurrency 1, 4, 16, 64 with distinct questions, each
           level cut into slices interleaved across the servers (so drift hits all alike); peak
           RSS (VmHWM) of every server afterwards.

Two baselines, reported side by side: "plain" is the tutorial code as written (torch picks its
own thread count, one per core), "plain-1t" the same with torch pinned to one thread. On a busy
2-core machine torch's default threads can spend most of a call waiting at OpenMP barriers, so
"plain" alone could flatter us; every ratio and target is given against both.
  cold     process start to first answered POST /query (index already built), both servers,
           alternated, median of --cold-rounds.
  startup  eval/bench_startup.py: `rag serve` to the first answer and a cold `rag ask` on an up-to-date index, for
           the seed article and python3-doc pages (a few thousand passages), with the corpus remembered and
           with it read from seeds/ (rag.index.corpus_cache).
  scale    eval/bench_scale.py: the FAISS index the service picks at 10k / 100k / 1M vectors.
  querypath eval/bench_querypath.py: the whole hybrid path (BM25, dense, sentences, highlight, verdict)
           over synthetic corpora of 10k / 100k / 1M passages built through the normal store.
  encoders eval/bench_variants.py: the int8 query encoder against fp32 (speed at batch 1 and 16, the
           quality gate on both splits).
  builds   eval/bench_build.py: index builds with sentence-transformers vs the ONNX build encoder.
  collection  eval/bench_collection.py: Debian's python3-doc HTML pages indexed and queried
           (`apt-get install python3-doc` first; the section reports the error otherwise).

One module per benchmark (bench_index, bench_inprocess, bench_quality, bench_http, bench_cold,
bench_scale), shared helpers in harness.py, tables and targets in bench_report.py; this file only
chooses what runs and in which order. Each module also runs alone: `python eval/bench_http.py --quick`.

Writes the full result to eval/runs/bench-<UTC time>.json (ignored by git; --out to choose) and, for a
full non-quick run, the compact tracked summary eval/results/bench_summary.json; prints the tables
and the target ratios.

    python eval/bench.py                       # everything, ~20 minutes
    python eval/bench.py --quick               # short windows, fewer rounds, scale at 10k only
    python eval/bench.py --sections http,cold --duration 10
    python eval/bench.py --skip scale          # or --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.bench_index import section_build  # noqa: E402
from eval.bench_cold import section_cold  # noqa: E402
from eval.bench_http import section_http  # noqa: E402
from eval.bench_inprocess import section_inproc  # noqa: E402
from eval.bench_quality import section_quality  # noqa: E402
from eval.bench_report import check_targets, compute_ratios, summary_table, write_summary  # noqa: E402
from eval.harness import RUNS, distinct_questions, loadavg, log, machine, open_service, run_rag_index, write_json  # noqa: E402

SECTIONS = ("build", "inproc", "quality", "http", "cold", "startup", "scale", "querypath", "encoders", "builds", "collection")
# Sections that are whole benchmarks of their own, run as their own processes (each owns its memory and
# threads, so one cannot skew another's timings); each writes its JSON into this run's folder.
STANDALONE = {
    "startup": ("bench_startup.py", [], ["--docs", "30", "--rounds", "1"]),  # rag serve / rag ask start-up, seed + python3-doc
    "querypath": ("bench_querypath.py", [], ["--quick"]),  # the whole hybrid query path at 10k, 100k, 1M passages
    "encoders": ("bench_variants.py", [], ["--variants", "fp32,bw128", "--rounds", "1"]),  # int8 vs fp32 speed and gate
    "builds": ("bench_build.py", [], ["--files", "12"]),  # torch vs ONNX builds, seed article and Python docs
    "collection": ("bench_collection.py", ["--limit", "60"], ["--limit", "15"]),  # Debian's python3-doc HTML, served
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s HTTP windows, 80 in-process queries, 1 cold round, scale at 10k")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {','.join(SECTIONS)}")
    parser.add_argument("--skip", default="", help="sections to leave out")
    parser.add_argument("--duration", type=float, default=None, help="seconds per HTTP level (default 15; quick 5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per HTTP slice (default 2; quick 2)")
    parser.add_argument("--levels", default="1,4,16,64", help="HTTP concurrency levels")
    parser.add_argument("--slices", type=int, default=None, help="interleaved slices per HTTP level (default 3; quick 1)")
    parser.add_argument("--queries", type=int, default=None, help="in-process queries per system (default 300; quick 80)")
    parser.add_argument("--cold-rounds", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--sizes", default=None, help="scale sizes (default 10000,100000,1000000; quick 10000)")
    parser.add_argument("--scale-queries", type=int, default=None, help="default 300; quick 100")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    chosen = [s for s in args.sections.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    unknown = (set(chosen) | skip) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    sections_to_run = [s for s in SECTIONS if s in chosen and s not in skip]
    quick = args.quick
    duration = args.duration or (5.0 if quick else 15.0)
    warmup = args.warmup if args.warmup is not None else 2.0
    n_queries = args.queries or (80 if quick else 300)
    cold_rounds = args.cold_rounds or (1 if quick else 3)
    sizes = [int(x) for x in (args.sizes or ("10000" if quick else "10000,100000,1000000")).split(",") if x]
    scale_queries = args.scale_queries or (100 if quick else 300)
    levels = [int(x) for x in args.levels.split(",") if x]
    slices = args.slices or (1 if quick else 3)
    full = sections_to_run == list(SECTIONS) and not quick and args.duration is None and args.sizes is None
    out_path = args.out or RUNS / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"

    started = time.perf_counter()
    result: dict = {
        "command": " ".join([Path(sys.executable).name, "eval/bench.py", *(argv if argv is not None else sys.argv[1:])]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {"quick": quick, "sections": sections_to_run, "http_duration_s": duration, "http_warmup_s": warmup,
                     "levels": levels, "http_slices": slices, "inproc_queries": n_queries, "cold_rounds": cold_rounds, "scale_sizes": sizes,
                     "scale_queries": scale_queries},
        "sections": {},
    }
    log(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, {result['machine']['memory_gb']} GB; "
        f"load average {result['machine']['loadavg_at_start']}")
    questions = distinct_questions()
    loadavg_seen: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        index_dir = work / "index"
        questions_file = work / "questions.jsonl"
        questions_file.write_text("\n".join(json.dumps(q) for q in questions) + "\n", encoding="utf-8")
        log(f"{len(questions):,} distinct questions; index in {index_dir}")

        needs_index = any(s in sections_to_run for s in ("build", "inproc", "quality", "http", "cold"))
        if "build" in sections_to_run:
            log("\n== build ==")
            result["sections"]["build"] = section_build(index_dir)
            loadavg_seen["build"] = loadavg()
        elif needs_index:
            run_rag_index(index_dir)

        offset = 0
        if "inproc" in sections_to_run or "quality" in sections_to_run:
            onnx_service = open_service(index_dir, "onnx")
            if "inproc" in sections_to_run:
                log(f"\n== in-process, {n_queries} distinct questions per system ==")
                result["sections"]["inproc"] = section_inproc(onnx_service, index_dir, questions[offset:], n_queries)
                loadavg_seen["inproc"] = loadavg()
                offset += n_queries + 15 + 3 * 5 * 64
            if "quality" in sections_to_run:  # loads torch into this process: after the timings above
                log("\n== quality: ONNX vs sentence-transformers query encoder ==")
                torch_service = open_service(index_dir, "torch")
                result["sections"]["quality"] = section_quality(onnx_service, torch_service)
                loadavg_seen["quality"] = loadavg()
                del torch_service
            del onnx_service
        if "http" in sections_to_run:
            log(f"\n== HTTP: rag serve vs plain servers, {duration:g} s per level and server in {slices} interleaved slice(s) ==")
            result["sections"]["http"], offset = section_http(index_dir, work, questions_file, levels, duration, warmup,
                                                                slices, offset)
            loadavg_seen["http"] = loadavg()
        if "cold" in sections_to_run:
            log(f"\n== cold start, {cold_rounds} round(s) ==")
            result["sections"]["cold"] = section_cold(index_dir, work, cold_rounds)
            loadavg_seen["cold"] = loadavg()
    for name, (script, full_args, quick_args) in STANDALONE.items():
        if name in sections_to_run:
            log(f"\n== {name}: eval/{script} ==")
            result["sections"][name] = run_standalone(script, (quick_args if quick else full_args), out_path.with_suffix(f".{name}.json"))
            loadavg_seen[name] = loadavg()
    if "scale" in sections_to_run:
        import eval.bench_scale as bench_scale

        log(f"\n== scale: {', '.join(f'{n:,}' for n in sizes)} vectors ==")
        result["sections"]["scale"] = bench_scale.run(sizes, scale_queries, log=log)

    for name, section in result["sections"].items():
        if isinstance(section, dict):
            section.setdefault("loadavg_after", loadavg_seen.get(name))
    result["ratios"] = compute_ratios(result["sections"])
    result["targets"] = check_targets(result["ratios"], result["sections"])
    result["machine"]["loadavg_at_end"] = loadavg()
    result["total_s"] = round(time.perf_counter() - started, 1)
    write_json(out_path, result)
    log("\n" + summary_table(result))
    shown = out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path
    log(f"\nwrote {shown} in {result['total_s']:.0f} s")
    if full:
        log(f"wrote {write_summary(result, shown).relative_to(ROOT)}")
    return 0


def run_standalone(script: str, args: list[str], out: Path) -> dict:
    """Run eval/<script> in its own process with --out; its JSON (or why it failed) becomes the section."""
    import subprocess

    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "eval" / script), *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    section = {"command": f"python eval/{script} {' '.join(args)}", "seconds": round(time.perf_counter() - started, 1)}
    if done.returncode != 0 or not out.exists():
        section["error"] = (done.stderr or done.stdout).strip()[-1500:]
        log(f"eval/{script} failed: {section['error'][-300:]}")
        return section
    section["result"] = json.loads(out.read_text())
    return section


if __name__ == "__main__":
    sys.exit(main())
