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
  http-verifier  the same with RAG_VERIFIER=true in every `rag serve` (the opt-in cross-encoder in the
           verdict; the plain servers ignore it): the ratios with the verifier on (issue #22 item 3).

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
  tutorial eval/bench_langchain.py: `rag index --force` (fp32 and bf16) against the LangChain tutorial pipeline
           (RecursiveCharacterTextSplitter 1000/200, HuggingFaceEmbeddings, FAISS.from_documents; its own
           virtualenv, `make bench-env`) on the 497 python3.11 reST sources (quick: the first 40), and both
           pipelines' answers to the bundled questions.
  upload   documents written over HTTP into a running `rag serve` (issue #20 item 5): a corpus of
           --upload-files of Debian's python3.11 reST sources (all 497: ~21,000 passages; quick: 60),
           then POST, PUT and DELETE /documents of a 35 KB licence text (~10 pages), --upload-rounds
           times: seconds per write, seconds from the POST returning (and from it being sent) until
           GET /query cites the new document, /ready's index id before and after each write. The base
           index gets stand-in vectors (real chunking and model identity, seeded random unit vectors:
           a real build of 21k passages takes 20+ minutes here) unless --upload-real-vectors;
           --upload-dir keeps (or reuses) the corpus and its index. Every upload embeds for real.

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

SECTIONS = ("build", "inproc", "quality", "http", "http-verifier", "cold", "startup", "scale", "querypath", "encoders", "builds", "collection", "upload",
            "tutorial")
# Sections that are whole benchmarks of their own, run as their own processes (each owns its memory and
# threads, so one cannot skew another's timings); each writes its JSON into this run's folder.
STANDALONE = {
    "startup": ("bench_startup.py", [], ["--docs", "30", "--rounds", "1"]),  # rag serve / rag ask start-up, seed + python3-doc
    "querypath": ("bench_querypath.py", [], ["--quick"]),  # the whole hybrid query path at 10k, 100k, 1M passages
    "encoders": ("bench_variants.py", [], ["--variants", "fp32,bw128", "--rounds", "1"]),  # int8 vs fp32 speed and gate
    "builds": ("bench_build.py", [], ["--files", "12"]),  # torch vs ONNX builds, seed article and Python docs
    "collection": ("bench_collection.py", ["--limit", "60"], ["--limit", "15"]),  # Debian's python3-doc HTML, served
    "tutorial": ("bench_langchain.py", [], ["--files", "40"]),  # python3-doc sources: our build vs the LangChain tutorial's
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s HTTP windows, 80 in-process queries, 1 cold round, scale at 10k")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {','.join(SECTIONS)}")
    parser.add_argument("--skip", default="", help="sections to leave out")
    parser.add_argument("--duration", type=float, default=None, help="seconds per HTTP level (default 15; quick 5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per HTTP slice (default 2; quick 2)")
    parser.add_argument("--levels", default="1,4,16,64", help="HTTP concurrency levels")
    parser.add_argument("--http-workers", type=int, default=2,
                        help="also serve with `rag serve --workers N` in the HTTP section (default 2; 0 or 1: not)")
    parser.add_argument("--slices", type=int, default=None, help="interleaved slices per HTTP level (default 3; quick 1)")
    parser.add_argument("--queries", type=int, default=None, help="in-process queries per system (default 300; quick 80)")
    parser.add_argument("--cold-rounds", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--sizes", default=None, help="scale sizes (default 10000,100000,1000000; quick 10000)")
    parser.add_argument("--scale-queries", type=int, default=None, help="default 300; quick 100")
    parser.add_argument("--upload-files", type=int, default=None, help="upload: reST files in the corpus (default all 497; quick 60)")
    parser.add_argument("--upload-rounds", type=int, default=None, help="upload: add/replace/remove rounds (default 3; quick 1)")
    parser.add_argument("--upload-real-vectors", action="store_true", help="upload: embed the base corpus for real (slow)")
    parser.add_argument("--upload-dir", type=Path, default=None, help="upload: keep the corpus and its index here (reused when built)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tutorial-files", type=int, default=None,
                        help="tutorial: the first N reST files (default all 497; quick 40)")
    parser.add_argument("--write-summary", action="store_true",
                        help="write eval/results/bench_summary.json even for a partial run (its settings name the sections)")
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

        needs_index = any(s in sections_to_run for s in ("build", "inproc", "quality", "http", "http-verifier", "cold"))
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
                                                                slices, offset, args.http_workers)
            loadavg_seen["http"] = loadavg()
        if "http-verifier" in sections_to_run:  # the same, every `rag serve` reading the verifier (issue #22 item 3)
            log(f"\n== HTTP with RAG_VERIFIER=true: rag serve vs plain servers, {duration:g} s per level and server ==")
            result["sections"]["http_verifier"], offset = section_http(index_dir, work, questions_file, levels, duration, warmup,
                                                                       slices, offset, 0, {"RAG_VERIFIER": "true"})
            loadavg_seen["http_verifier"] = loadavg()
        if "cold" in sections_to_run:
            log(f"\n== cold start, {cold_rounds} round(s) ==")
            result["sections"]["cold"] = section_cold(index_dir, work, cold_rounds)
            loadavg_seen["cold"] = loadavg()
    for name, (script, full_args, quick_args) in STANDALONE.items():
        if name in sections_to_run:
            log(f"\n== {name}: eval/{script} ==")
            script_args = quick_args if quick else full_args
            if name == "tutorial" and args.tutorial_files:
                script_args = ["--files", str(args.tutorial_files)]
            result["sections"][name] = run_standalone(script, script_args, out_path.with_suffix(f".{name}.json"))
            loadavg_seen[name] = loadavg()
    if "upload" in sections_to_run:
        files = args.upload_files or (60 if quick else None)
        rounds = args.upload_rounds or (1 if quick else 3)
        log(f"\n== upload: documents written over HTTP, {files or 'all'} reST files, {rounds} round(s) ==")
        result["sections"]["upload"] = section_upload(files, rounds, args.upload_real_vectors, args.upload_dir)
        loadavg_seen["upload"] = loadavg()
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
    if full or args.write_summary:
        log(f"wrote {write_summary(result, shown).relative_to(ROOT)}")
    return 0


# --- upload: documents written over HTTP ---------------------------------------------------------------

UPLOAD_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")  # Debian's python3.11-doc: 497 .rst.txt files
UPLOAD_DOCUMENT = Path("/usr/share/common-licenses/GPL-3")  # 35 KB, about 10 pages
UPLOAD_QUESTION = "What must you do to convey a covered work in object code form under the GNU General Public License?"
REPLACE_QUESTION = "How many lighthouse keepers signed the harbour licence addendum?"
REPLACE_TEXT = ("\n\nHarbour addendum. Eleven lighthouse keepers signed this addendum to the licence at the harbour office, "
                "agreeing that every copy of the program conveyed by boat carries a printed copy of the licence.\n")


def section_upload(files: int | None, rounds: int, real_vectors: bool, keep: Path | None) -> dict:
    """Time POST, PUT and DELETE /documents against `rag serve` over a corpus of Python's reST sources (see the docstring)."""
    import shutil
    import statistics

    if not UPLOAD_SOURCES.is_dir() or not UPLOAD_DOCUMENT.is_file():
        return {"error": f"needs {UPLOAD_SOURCES} (apt-get install python3.11-doc) and {UPLOAD_DOCUMENT}"}
    with tempfile.TemporaryDirectory(prefix="rag-bench-upload-") as tmp:
        root = keep or Path(tmp)
        seeds, index_dir = root / "seeds", root / "index"
        if not (index_dir / "manifest.json").is_file():
            shutil.rmtree(seeds, ignore_errors=True)
            for source in sorted(UPLOAD_SOURCES.rglob("*.rst.txt"))[:files]:
                target = seeds / source.relative_to(UPLOAD_SOURCES)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
            started = time.perf_counter()
            built = _upload_base_index(seeds, index_dir, real_vectors)
            log(f"base index: {built['counts']['passages']:,} passages from {built['counts']['documents']} documents in "
                f"{time.perf_counter() - started:.0f} s ({'real' if real_vectors else 'stand-in'} vectors)")
        for stale in ("gpl-three.txt", "gpl-three.meta.json"):  # a kept folder from an interrupted run
            (seeds / stale).unlink(missing_ok=True)
        built = json.loads((index_dir / "manifest.json").read_text())
        section = {"files": files or "all", "documents": built["counts"]["documents"], "passages": built["counts"]["passages"],
                   "base_vectors": "real" if real_vectors else "stand-in", "document_bytes": UPLOAD_DOCUMENT.stat().st_size,
                   "rounds": _upload_rounds(seeds, index_dir, rounds, root)}
    done = section["rounds"]
    for what in ("add_s", "answerable_after_return_s", "answerable_after_send_s", "replace_s", "replace_answerable_after_return_s",
                 "remove_s"):
        section[what] = round(statistics.median(r[what] for r in done), 3) if done else None
    section["index_id_moved"] = all(r["index_ids_moved"] for r in done)
    log(f"{section['passages']:,} passages ({section['base_vectors']} base vectors), one {section['document_bytes'] / 1000:.0f} KB document, "
        f"median of {len(done)}: add {section['add_s']} s, answerable {section['answerable_after_return_s']} s after the POST returned "
        f"({section['answerable_after_send_s']} s after it was sent), replace {section['replace_s']} s, remove {section['remove_s']} s; "
        f"/ready's index id moved on every write: {section['index_id_moved']}")
    return section


def _upload_base_index(seeds: Path, index_dir: Path, real_vectors: bool) -> dict:
    """Build the corpus's index the way `rag index` does, with stand-in vectors unless `real_vectors`."""
    import hashlib

    import numpy as np

    from rag.config import Settings
    from rag.encoding.encoders import Encoders
    from rag.encoding.model import resolve_model
    from rag.index.build import IndexConfig, build_index, read_corpus

    settings = Settings(seeds_dir=seeds, index_dir=index_dir, max_extract_seconds=300)
    model = resolve_model(settings.model)
    builder = Encoders.from_settings(settings, model).builder()
    documents = list(read_corpus(settings).documents)

    class StandIn:  # the real tokenizer and window (so chunking is real), seeded random unit vectors per text
        count_tokens, max_seq_length, spec = builder.count_tokens, builder.max_seq_length, builder.spec

        @staticmethod
        def encode(texts, *args, **kwargs):
            out = np.empty((len(texts), builder.dimension), dtype=np.float32)
            for i, text in enumerate(texts):
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
                row = np.random.default_rng(seed).standard_normal(builder.dimension)
                out[i] = row / np.linalg.norm(row)
            return out

    manifest = build_index(index_dir, documents, IndexConfig.of(settings, documents, model), builder if real_vectors else StandIn,
                           progress=real_vectors)
    read_corpus(settings)  # remembered beside the index, as after a `rag index`
    return manifest


def _upload_rounds(seeds: Path, index_dir: Path, rounds: int, work: Path) -> list[dict]:
    import httpx

    from eval.harness import RAG, env_for, free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / f"upload-serve-{port}.log"
    env = env_for(index_dir, RAG_SEEDS_DIR=str(seeds), RAG_MAX_EXTRACT_SECONDS="300")
    with open(log_path, "wb") as server_log:
        import subprocess

        started = time.perf_counter()
        proc = subprocess.Popen([*RAG, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=server_log,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            with httpx.Client(timeout=600) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"rag serve exited: {log_path.read_text(errors='replace')[-800:]}")
                    try:
                        if client.get(base + "/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.perf_counter() - started > 600:
                        raise RuntimeError("rag serve did not become ready within 600 s")
                    time.sleep(0.1)
                log(f"rag serve ready in {time.perf_counter() - started:.1f} s")
                text = UPLOAD_DOCUMENT.read_bytes()
                done = []
                for number in range(rounds):
                    done.append(_upload_round(client, base, text, number))
                    r = done[-1]
                    log(f"round {number + 1}: add {r['add_s']} s (answerable {r['answerable_after_return_s']} s after it returned), "
                        f"replace {r['replace_s']} s, remove {r['remove_s']} s, index ids {' -> '.join(r['index_ids'])}")
                return done
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _upload_round(client, base: str, text: bytes, number: int) -> dict:
    def ready_id() -> str:
        return client.get(base + "/ready").json()["index_id"]

    def cites(question: str) -> bool:
        passages = client.get(base + "/query", params={"q": question, "top_k": 3}).json()["passages"]
        return bool(passages) and passages[0]["citation"]["document"] == "gpl-three"

    def until_cited(question: str, since: float, limit_s: float = 120) -> float | None:
        while time.perf_counter() - since < limit_s:
            if cites(question):
                return round(time.perf_counter() - since, 3)
            time.sleep(0.05)
        return None

    ids = [ready_id()]
    sent = time.perf_counter()
    added = client.post(base + "/documents", files={"file": ("gpl-three.txt", text)}, data={"title": "GNU General Public License"})
    returned = time.perf_counter()
    if added.status_code != 201:
        raise RuntimeError(f"POST /documents: {added.status_code} {added.text[:300]}")
    after_return = until_cited(UPLOAD_QUESTION, returned)
    ids.append(ready_id())
    sent_replace = time.perf_counter()
    replaced = client.put(base + "/documents/gpl-three", files={"file": ("gpl-three.txt", text + REPLACE_TEXT.encode())},
                          data={"title": "GNU General Public License"})  # an edit: one paragraph added, the rest as it was
    replace_returned = time.perf_counter()
    if replaced.status_code != 200:
        raise RuntimeError(f"PUT /documents/gpl-three: {replaced.status_code} {replaced.text[:300]}")
    replace_answerable = until_cited(REPLACE_QUESTION, replace_returned)
    ids.append(ready_id())
    sent_remove = time.perf_counter()
    removed = client.delete(base + "/documents/gpl-three")
    remove_returned = time.perf_counter()
    if removed.status_code != 200:
        raise RuntimeError(f"DELETE /documents/gpl-three: {removed.status_code} {removed.text[:300]}")
    ids.append(ready_id())
    return {
        "round": number + 1,
        "add_s": round(returned - sent, 3),
        "passages_added": added.json()["passages"],
        "answerable_after_return_s": after_return,
        "answerable_after_send_s": None if after_return is None else round(returned - sent + after_return, 3),
        "replace_s": round(replace_returned - sent_replace, 3),
        "replace_answerable_after_return_s": replace_answerable,
        "remove_s": round(remove_returned - sent_remove, 3),
        "cited_after_remove": cites(UPLOAD_QUESTION) or cites(REPLACE_QUESTION),
        "index_ids": ids,
        "index_ids_moved": ids[1] != ids[0] and ids[2] != ids[1] and ids[3] != ids[2],  # the last is the first again: same corpus
    }


def run_standalone(script: str, args: list[str], out: Path) -> dict:
    """Run eval/<script> in its own process with --out; its JSON (or why it failed) becomes the section."""
    import subprocess

    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)  # eval/runs/ is ignored by git: a fresh clone has none
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
