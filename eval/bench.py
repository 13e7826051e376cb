"""Speed benchmarks of the service against "the plain way", all measured in one run: `make bench`.

The machine this runs on is shared and its speed drifts (the same model forward measured 3-35 ms
at different hours), so every target is a RATIO between the service and a baseline measured in
the same run, interleaved wherever possible. Sections (all by default):

  build    `rag index --force` into a fresh temp dir (full build), then again over it (a rebuild
           that reuses unchanged vectors). The index built here is the one every section uses.
  inproc   per-query latency inside one process, p50/p99 per stage (QueryResult.timings_ms) and in
           total, for hybrid / dense / lexical, against SentenceTransformer.encode + IndexFlatIP
           search of the same passage vectors; calls interleaved question by question.
  quality  rag.evaluation over eval/questions.jsonl with the service opened with the ONNX query
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
  scale    eval/bench_scale.py: the FAISS index the service picks at 10k / 100k / 1M vectors.

Writes eval/results/bench.json (a full, non-quick run; anything else goes to bench-partial.json
unless --out says otherwise) and prints the tables and the target ratios.

    python eval/bench.py                       # everything, ~20 minutes
    python eval/bench.py --quick               # short windows, fewer rounds, scale at 10k only
    python eval/bench.py --sections http,cold --duration 10
    python eval/bench.py --skip scale          # or --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

RESULTS = ROOT / "eval" / "results"
BIN = Path(sys.executable).parent
RAG = BIN / "rag"
SECTIONS = ("build", "inproc", "quality", "http", "cold", "scale")
MODES = ("hybrid", "dense", "lexical")
PLAINS = ("plain", "plain-1t")  # torch's default thread count, and torch pinned to one thread
TARGETS = {  # name: (ratio key, comparison, bound)
    "c16 throughput (ours / plain)": ("http_c16_throughput", ">=", 5.0),
    "c16 p99 latency (ours / plain)": ("http_c16_p99", "<=", 0.2),
    "c1 p50 latency (ours / plain)": ("http_c1_p50", "<=", 0.5),
    "in-process per query, hybrid p50 (plain / ours)": ("inproc_speedup_hybrid_p50", ">=", 2.0),
    "cold start (ours / plain)": ("cold_start", "<=", 0.5),
}

PREFIXES = (
    "", "Question: ", "Q: ", "In the article, ", "According to the text, ", "Please tell me: ", "I'd like to know: ",
    "Quick question - ", "Can you find this: ", "From the document: ", "Help me understand: ", "Briefly: ",
    "Search: ", "One more: ", "I was wondering: ", "For my notes: ", "Looking for the passage: ", "Tell me: ",
    "Explain: ", "Reading the essay, ", "In short, ", "Hi! ", "Context needed: ", "Asking again: ",
)
SUFFIXES = (
    "", " Thanks.", " Please cite the passage.", " (short answer)", " Where does it say so?", " Thank you!",
    " Be precise.", " Quote the text.", " I need a source.", " Which section?", " (for a class)", " Cheers.",
    " Keep it brief.", " With a citation please.", " Just the passage.", " (asking for a friend)",
    " Any passage will do.", " Exact words if possible.", " Much appreciated.", " Thanks in advance.",
)


# --- helpers ------------------------------------------------------------------------------


def distinct_questions(seed: int = 6) -> list[str]:
    """The eval questions in many wordings (prefix x suffix x with/without '?'): ~147k, no two alike."""
    from rag.evaluation import load_questions

    base = [q.question for q in load_questions()]
    variants = set()
    for question in base:
        stems = {question, question.rstrip("?")}
        for stem in stems:
            for prefix in PREFIXES:
                for suffix in SUFFIXES:
                    variants.add(f"{prefix}{stem[0].lower() + stem[1:] if prefix else stem}{suffix}")
    out = sorted(variants)
    random.Random(seed).shuffle(out)
    return out


def pct(values, q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 3) if len(values) else None


def dist(values) -> dict:
    return {"p50": pct(values, 50), "p99": pct(values, 99), "mean": round(float(np.mean(values)), 3) if len(values) else None}


def ratio(a, b, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b not in (None, 0) else None


def proc_status(pid: int, field: str) -> int | None:
    """A /proc/<pid>/status field in kB (VmHWM = peak RSS, VmRSS = current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    versions = {}
    for name in ("onnxruntime", "torch", "sentence_transformers", "faiss", "fastapi", "uvicorn", "httpx", "numpy"):
        try:
            from importlib.metadata import version

            versions[name] = version({"faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers"}.get(name, name))
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
            versions[name] = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "git_commit": commit,
        "loadavg_at_start": loadavg(),
        "note": "shared machine; absolute times drift by up to 10x over hours, only same-run ratios are comparable",
    }


def env_for(index_dir: Path, **extra: str) -> dict:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update(extra)
    return env


def log(message: str = "") -> None:
    print(message, flush=True)


# --- build --------------------------------------------------------------------------------


def run_rag_index(index_dir: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([str(RAG), "index", "--force"], env=env_for(index_dir), capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"rag index failed: {out.stderr.strip()[-800:]}")
    return wall, json.loads((index_dir / "manifest.json").read_text())


def section_build(index_dir: Path) -> dict:
    full_wall, manifest = run_rag_index(index_dir)
    re_wall, re_manifest = run_rag_index(index_dir)
    result = {
        "command": "rag index --force (RAG_INDEX_DIR=<fresh temp dir>)",
        "full_build_wall_s": round(full_wall, 2),
        "full_build_manifest_s": manifest["build_seconds"],
        "rebuild_reusing_vectors_wall_s": round(re_wall, 2),
        "rebuild_reusing_vectors_manifest_s": re_manifest["build_seconds"],
        "counts": manifest["counts"],
        "index_type": manifest["index_type"],
        "note": "wall = process start to exit (imports torch, loads the model); manifest = chunk + embed + write",
    }
    log(f"  full build {full_wall:.1f}s wall ({manifest['build_seconds']:.1f}s in build_index), "
        f"rebuild reusing vectors {re_wall:.1f}s wall; {manifest['counts']['passages']} passages, "
        f"{manifest['counts']['sentences']} sentences, {manifest['index_type']}")
    return result


# --- in-process -----------------------------------------------------------------------------


def open_service(index_dir: Path, encoder: str):
    from rag.config import Settings
    from rag.service import Service

    return Service.open(Settings(index_dir=index_dir, auto_build=False, encoder=encoder))


class PlainWorker:
    """The in-process baseline in its own interpreter (`bench.py --plain-worker`): the plain server's
    SentenceTransformer + IndexFlatIP, driven question by question over a pipe.

    Not in the benchmark's own process, because onnxruntime's and torch's thread pools both spin-wait
    after each call: hosted together and interleaved, each slows the other down (we measured the torch
    path 20x slower that way), which would say nothing about either. Both sides time their own calls.
    """

    def __init__(self, index_dir: Path):
        env = env_for(index_dir, PLAIN_INDEX_DIR=str(index_dir), TQDM_DISABLE="1")
        self.proc = subprocess.Popen([sys.executable, __file__, "--plain-worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.info = self._read(timeout=300)

    def _read(self, timeout: float) -> dict:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise RuntimeError(f"plain worker silent for {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("plain worker exited")
        return json.loads(line)

    def call(self, request: dict, timeout: float = 600) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


def plain_worker_main() -> int:
    """Serve PlainWorker requests on stdin/stdout (one JSON object a line)."""
    import plain_server  # loads the model and the flat index exactly as the plain server does
    import torch

    default_threads = torch.get_num_threads()
    print(json.dumps({"torch_default_threads": default_threads}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        torch.set_num_threads(request.get("threads") or default_threads)
        if request["op"] == "queries":
            rows = []
            for question in request["questions"]:
                t0 = time.perf_counter()
                vector = plain_server.model.encode(question, normalize_embeddings=True)
                t1 = time.perf_counter()
                plain_server.index.search(vector.reshape(1, -1), 5)
                t2 = time.perf_counter()
                rows.append({"embed": (t1 - t0) * 1000, "search": (t2 - t1) * 1000, "total": (t2 - t0) * 1000})
            print(json.dumps(rows), flush=True)
        elif request["op"] == "encode":  # ms per question for one way of calling encode
            qs, batch = request["questions"], request["batch"]
            started = time.perf_counter()
            if batch == 1:
                for q in qs:
                    plain_server.model.encode(q)
            else:
                for i in range(0, len(qs), batch):
                    plain_server.model.encode(qs[i:i + batch], batch_size=batch)
            print(json.dumps({"ms_per_question": (time.perf_counter() - started) * 1000 / len(qs)}), flush=True)
    return 0


def section_inproc(service, index_dir: Path, questions: list[str], n: int, block: int = 20) -> dict:
    """Ours (here) and the plain baseline (PlainWorker) answer the same questions, alternating in blocks."""
    assert "torch" not in sys.modules, "the benchmark process must not host torch while timing the ONNX path"
    worker = PlainWorker(index_dir)
    try:
        names = [*MODES, *PLAINS]
        totals: dict[str, list[float]] = {name: [] for name in names}
        stages: dict[str, dict[str, list[float]]] = {name: {} for name in names}

        def ours(qs: list[str], record: bool) -> None:
            for i, q in enumerate(qs):
                for mode in MODES[i % 3:] + MODES[: i % 3]:  # rotate the modes' order
                    started = time.perf_counter()
                    timings = service.query(q, 5, mode).timings_ms
                    if record:
                        totals[mode].append((time.perf_counter() - started) * 1000)
                        for stage, ms in timings.items():
                            stages[mode].setdefault(stage, []).append(ms)

        def plain(qs: list[str], name: str, record: bool) -> None:
            rows = worker.call({"op": "queries", "threads": 1 if name == "plain-1t" else None, "questions": qs})
            if record:
                for row in rows:
                    totals[name].append(row["total"])
                    for stage in ("embed", "search"):
                        stages[name].setdefault(stage, []).append(row[stage])

        runners = {"ours": lambda qs, rec: ours(qs, rec), "plain": lambda qs, rec: plain(qs, "plain", rec),
                   "plain-1t": lambda qs, rec: plain(qs, "plain-1t", rec)}
        for name, run in runners.items():  # warm up every path
            run(questions[:15], False)
        order = list(runners)
        body = questions[15:15 + n]
        for b, start in enumerate(range(0, len(body), block)):
            for name in order[b % 3:] + order[: b % 3]:
                runners[name](body[start:start + block], True)
        cost = encoder_cost(service, worker, questions[15 + n:])
    finally:
        worker.close()
    result = {"queries": n, "top_k": 5, "block": block, "torch_default_threads": worker.info["torch_default_threads"],
              "systems": {}}
    for name in names:
        result["systems"][name] = {"total_ms": dist(totals[name]), "stages_ms": {s: dist(v) for s, v in stages[name].items()}}
    result["speedup"] = {  # plain total / ours total, per statistic, against each plain variant
        base: {mode: {k: ratio(result["systems"][base]["total_ms"][k], result["systems"][mode]["total_ms"][k])
                      for k in ("p50", "p99", "mean")} for mode in MODES}
        for base in PLAINS
    }
    result["note"] = ("ours = Service.query (ONNX encoder behind the micro-batcher, FAISS, BM25, fusion, highlight, "
                      "answerability) in this process; plain = SentenceTransformer.encode + IndexFlatIP.search in a worker "
                      "process, with torch's default thread count (plain) and pinned to 1 thread (plain-1t); "
                      f"the three take turns in blocks of {block} questions")
    for name in names:
        s = result["systems"][name]
        stage_text = "  ".join(f"{k} {v['p50']:.2f}" for k, v in s["stages_ms"].items())
        log(f"  {name:<8} total p50 {s['total_ms']['p50']:7.2f} ms  p99 {s['total_ms']['p99']:7.2f} ms   stages p50: {stage_text}")
    result["encoder_cost"] = cost
    return result


def encoder_cost(service, worker: PlainWorker, questions: list[str], rounds: int = 3, chunk: int = 64) -> dict:
    """Milliseconds of embedding per question, one per call and in batches of 16: what micro-batching can gain."""
    onnx = service.retriever.encoder.inner  # the OnnxQueryEncoder behind the batcher

    def onnx_case(batch: int):
        def run(qs: list[str]) -> float:
            started = time.perf_counter()
            for i in range(0, len(qs), batch):
                onnx.encode(qs[i:i + batch])
            return (time.perf_counter() - started) * 1000 / len(qs)
        return run

    def torch_case(batch: int, threads: int | None):
        return lambda qs: worker.call({"op": "encode", "questions": qs, "batch": batch, "threads": threads})["ms_per_question"]

    cases = {
        "onnx (ours), one question per call": onnx_case(1),
        "onnx (ours), batches of 16": onnx_case(16),
        "sentence-transformers, default threads, one per call": torch_case(1, None),
        "sentence-transformers, 1 thread, one per call": torch_case(1, 1),
        "sentence-transformers, default threads, batches of 16": torch_case(16, None),
    }
    per_question: dict[str, list[float]] = {name: [] for name in cases}
    k = 0
    for _ in range(rounds):
        for name, run in cases.items():
            per_question[name].append(run(questions[k * chunk:(k + 1) * chunk]))
            k += 1
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(service.model.local_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    tokens = float(np.mean([len(e.ids) for e in tokenizer.encode_batch(questions[: k * chunk])]))
    out = {name: round(statistics.median(v), 2) for name, v in per_question.items()}
    log("  embedding cost per question (median of rounds): " + "; ".join(f"{k} {v:.2f} ms" for k, v in out.items()))
    return {"ms_per_question": out, "questions_per_case": chunk, "rounds": rounds, "mean_tokens_per_question": round(tokens, 1)}


# --- quality --------------------------------------------------------------------------------


def section_quality(onnx_service, torch_service) -> dict:
    from rag.evaluation import evaluate, load_questions, service_system

    questions = load_questions()
    systems = {}
    for mode in ("hybrid", "dense"):
        systems[f"onnx {mode}"] = service_system(onnx_service, mode)
        systems[f"torch {mode}"] = service_system(torch_service, mode)
    report = evaluate(systems, questions)
    metrics = {name: {k: groups["all"][k] for k in ("questions", "r@1", "r@5", "mrr@10")} for name, groups in report["systems"].items()}
    same_top5 = 0
    worst_cos = 1.0
    for q in questions:
        a = onnx_service.query(q.question, 5, "hybrid")
        b = torch_service.query(q.question, 5, "hybrid")
        same_top5 += [h.passage.id for h in a.hits] == [h.passage.id for h in b.hits]
        va = onnx_service.retriever.encoder.encode([q.question])[0]
        vb = torch_service.retriever.encoder.encode([q.question])[0]
        worst_cos = min(worst_cos, float(va @ vb))
    delta = {k: round(abs(metrics["onnx hybrid"][k] - metrics["torch hybrid"][k]), 4) for k in ("r@1", "r@5", "mrr@10")}
    result = {
        "metrics": metrics,
        "hybrid_same_top5": f"{same_top5}/{len(questions)}",
        "hybrid_abs_delta": delta,
        "min_query_cosine_onnx_vs_torch": round(worst_cos, 6),
        "ok": delta["r@5"] <= 0.01,
    }
    for name, m in metrics.items():
        log(f"  {name:<13} R@1 {m['r@1']:.3f}  R@5 {m['r@5']:.3f}  MRR@10 {m['mrr@10']:.3f}")
    log(f"  hybrid: same top 5 on {same_top5}/{len(questions)} questions; min query cosine onnx vs torch {worst_cos:.6f}")
    return result


# --- servers --------------------------------------------------------------------------------


class Server:
    """`rag serve` ("ours") or eval/plain_server.py ("plain", "plain-1t") as its own process on 127.0.0.1."""

    def __init__(self, kind: str, index_dir: Path, work: Path):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/query"
        if kind == "ours":
            cmd = [str(RAG), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            env = env_for(index_dir, RAG_AUTO_BUILD="false")
        else:
            cmd = [sys.executable, str(ROOT / "eval" / "plain_server.py"), "--host", "127.0.0.1", "--port", str(self.port)]
            env = env_for(index_dir, PLAIN_INDEX_DIR=str(index_dir))
            if kind == "plain-1t":
                env["PLAIN_TORCH_THREADS"] = "1"
        self.log_path = work / f"{kind}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def wait_answering(self, limit_s: float = 300) -> float:
        """Poll POST /query until a 200; seconds from process start to that answer."""
        import httpx

        deadline = self.started + limit_s
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} server exited: {self.log_path.read_text(errors='replace')[-800:]}")
                try:
                    response = client.post(self.url, json={"question": "What is permanent revolution?", "top_k": 5})
                    if response.status_code == 200:
                        return time.perf_counter() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise RuntimeError(f"{self.kind} server did not answer within {limit_s}s")

    def status_kb(self, field: str) -> int | None:
        return proc_status(self.proc.pid, field)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def run_loadgen(server: Server, questions_file: Path, offset: int, concurrency: int, duration: float, warmup: float,
                latencies_file: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "eval" / "loadgen.py"), "--url", server.url, "--questions", str(questions_file),
           "--offset", str(offset), "-c", str(concurrency), "-d", str(duration), "--warmup", str(warmup), "--timeout", "60",
           "--latencies-out", str(latencies_file)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pooled(slices: list[dict], latencies: list[float], duration: float) -> dict:
    """One level's figures from its interleaved slices: summed counts, percentiles over all latencies."""
    errors: dict[str, int] = {}
    for r in slices:
        for kind, count in r["error_kinds"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "throughput_rps": round(sum(r["completed_in_window"] for r in slices) / duration, 2),
        "latency_ms": {"p50": pct(latencies, 50), "p90": pct(latencies, 90), "p99": pct(latencies, 99),
                       "max": round(max(latencies), 3) if latencies else None,
                       "mean": round(float(np.mean(latencies)), 3) if latencies else None},
        "ok": sum(r["ok"] for r in slices),
        "errors": sum(r["errors"] for r in slices),
        "error_kinds": errors,
        "slices_rps": [r["throughput_rps"] for r in slices],
        "loadgen_cpu_s": round(sum(r["loadgen_cpu_s"] for r in slices), 2),
        "questions_used": sum(r["questions_used"] for r in slices),
    }


def section_http(index_dir: Path, work: Path, questions_file: Path, levels: list[int], duration: float, warmup: float,
                 slices: int, offset: int) -> tuple[dict, int]:
    """Each level: `slices` rounds of (ours, plain, plain-1t) in rotating order, each duration/slices long, pooled."""
    kinds = ["ours", *PLAINS]
    servers = {kind: Server(kind, index_dir, work) for kind in kinds}
    try:
        for server in servers.values():
            server.wait_answering()
        idle_rss = {k: s.status_kb("VmRSS") for k, s in servers.items()}
        import httpx

        ours_ready = httpx.get(servers["ours"].url.replace("/query", "/ready"), timeout=10).json()  # which encoder, index
        runs: dict[str, dict[str, dict]] = {kind: {} for kind in kinds}
        step = 0
        for c in levels:
            parts: dict[str, list[dict]] = {kind: [] for kind in kinds}
            lat: dict[str, list[float]] = {kind: [] for kind in kinds}
            for _ in range(slices):
                order = kinds[step % len(kinds):] + kinds[: step % len(kinds)]  # rotate who goes first
                step += 1
                for kind in order:
                    lat_file = work / "latencies.json"
                    r = run_loadgen(servers[kind], questions_file, offset, c, duration / slices, warmup, lat_file)
                    offset += r["questions_used"]
                    parts[kind].append(r)
                    lat[kind] += json.loads(lat_file.read_text())
            for kind in kinds:
                run = runs[kind][f"c{c}"] = pooled(parts[kind], lat[kind], duration)
                p = run["latency_ms"]
                log(f"  {kind:<8} c{c:<3} {run['throughput_rps']:8.1f} req/s  p50 {p['p50'] or 0:8.1f} ms  p99 {p['p99'] or 0:8.1f} ms  "
                    f"ok {run['ok']}  errors {run['errors']}{' ' + str(run['error_kinds']) if run['errors'] else ''}  "
                    f"slices {run['slices_rps']} req/s  (loadgen cpu {run['loadgen_cpu_s']:.1f}s)")
        peak = {k: s.status_kb("VmHWM") for k, s in servers.items()}
        alive = {k: s.proc.poll() is None for k, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    result = {
        "endpoint": "POST /query {question, top_k: 5}; ours in its default hybrid mode",
        "servers": {"ours": "rag serve", "plain": "eval/plain_server.py (torch default threads)",
                    "plain-1t": "eval/plain_server.py with PLAIN_TORCH_THREADS=1"},
        "load": ("eval/loadgen.py in its own process, closed loop, keep-alive, one distinct question per request; "
                 f"each level {duration:g} s per server in {slices} slices interleaved across the servers, "
                 f"each slice after {warmup:g} s of unrecorded warm-up"),
        "duration_s": duration,
        "warmup_s_per_slice": warmup,
        "slices": slices,
        "levels": levels,
        "runs": runs,
        "rss_idle_mb": {k: round(v / 1024, 1) if v else None for k, v in idle_rss.items()},
        "rss_peak_mb": {k: round(v / 1024, 1) if v else None for k, v in peak.items()},
        "servers_alive_after_load": alive,
        "ours_ready": ours_ready,
        "distinct_questions_used": offset,
    }
    log("  peak RSS (VmHWM): " + ", ".join(f"{k} {v} MB" for k, v in result["rss_peak_mb"].items()))
    return result, offset


def section_cold(index_dir: Path, work: Path, rounds: int) -> dict:
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    hwm: dict[str, list[int]] = {"ours": [], "plain": []}
    for r in range(rounds):
        for kind in (["ours", "plain"] if r % 2 == 0 else ["plain", "ours"]):
            server = Server(kind, index_dir, work)
            try:
                times[kind].append(server.wait_answering())
                hwm[kind].append(server.status_kb("VmHWM") or 0)
            finally:
                server.stop()
    result = {
        "what": "process start (Popen) to the first 200 from POST /query; index and ONNX export already built",
        "rounds": rounds,
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "median_s": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "rss_peak_at_first_answer_mb": {k: round(statistics.median(v) / 1024, 1) for k, v in hwm.items()},
    }
    log(f"  ours {result['seconds']['ours']} s, plain {result['seconds']['plain']} s (medians "
        f"{result['median_s']['ours']} / {result['median_s']['plain']})")
    return result


# --- report ---------------------------------------------------------------------------------


def compute_ratios(sections: dict) -> dict:
    """For each baseline (plain = torch default threads, plain-1t = torch on one thread): ours vs it."""
    out: dict[str, dict] = {base: {} for base in PLAINS}
    http = sections.get("http")
    for base in PLAINS:
        r = out[base]
        if http:
            ours, plain = http["runs"]["ours"], http["runs"][base]
            for c in http["levels"]:
                key = f"c{c}"
                r[f"http_{key}_throughput"] = ratio(ours[key]["throughput_rps"], plain[key]["throughput_rps"])
                for stat in ("p50", "p99"):
                    r[f"http_{key}_{stat}"] = ratio(ours[key]["latency_ms"][stat], plain[key]["latency_ms"][stat], 3)
            r["rss_peak"] = ratio(http["rss_peak_mb"]["ours"], http["rss_peak_mb"][base])
        if "inproc" in sections:
            for mode in MODES:
                for stat in ("p50", "p99", "mean"):
                    r[f"inproc_speedup_{mode}_{stat}"] = sections["inproc"]["speedup"][base][mode][stat]
        if "cold" in sections and base in sections["cold"]["median_s"]:
            r["cold_start"] = ratio(sections["cold"]["median_s"]["ours"], sections["cold"]["median_s"][base], 3)
    return out


def check_targets(ratios: dict, sections: dict) -> list[dict]:
    rows = []
    for name, (key, op, bound) in TARGETS.items():
        row = {"target": name, "wanted": f"{op} {bound:g}"}
        for base in PLAINS:
            value = ratios[base].get(key)
            row[f"vs_{base}"] = value
            row[f"met_vs_{base}"] = None if value is None else (value >= bound if op == ">=" else value <= bound)
        rows.append(row)
    if "quality" in sections:
        q = sections["quality"]
        rows.append({"target": "quality: |R@5 onnx - torch|, hybrid", "wanted": "<= 0.01", "value": q["hybrid_abs_delta"]["r@5"],
                     "met": q["ok"]})
    for row in (sections.get("scale") or []):
        if "recall_at_10" in row:
            rows.append({"target": f"scale {row['vectors']:,} ({row['index_type']}): recall@10", "wanted": ">= 0.98",
                         "value": row["recall_at_10"], "met": row["recall_at_10"] >= 0.98})
    return rows


def _yes(met) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


def summary_table(result: dict) -> str:
    s = result["sections"]
    r = result["ratios"]
    fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = []
    if "http" in s:
        runs = s["http"]["runs"]
        lines += ["| POST /query | ours req/s | plain | plain-1t | ours p50 ms | plain | plain-1t | ours p99 ms | plain | plain-1t | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in s["http"]["levels"]:
            k = f"c{c}"
            o, p, p1 = runs["ours"][k], runs["plain"][k], runs["plain-1t"][k]
            errors = "/".join(str(runs[x][k]["errors"]) for x in ("ours", *PLAINS))
            lines.append(f"| concurrency {c} | {o['throughput_rps']:.1f} | {p['throughput_rps']:.1f} | {p1['throughput_rps']:.1f} | "
                         f"{fmt(o['latency_ms']['p50'])} | {fmt(p['latency_ms']['p50'])} | {fmt(p1['latency_ms']['p50'])} | "
                         f"{fmt(o['latency_ms']['p99'])} | {fmt(p['latency_ms']['p99'])} | {fmt(p1['latency_ms']['p99'])} | {errors} |")
        lines += ["", "| ours / baseline | throughput | p50 | p99 |", "|---|---:|---:|---:|"]
        for c in s["http"]["levels"]:
            for base in PLAINS:
                lines.append(f"| c{c} vs {base} | {fmt(r[base][f'http_c{c}_throughput'], 2)}x | {fmt(r[base][f'http_c{c}_p50'], 3)} | "
                             f"{fmt(r[base][f'http_c{c}_p99'], 3)} |")
        lines.append("")
    if "inproc" in s:
        lines += ["| in-process, one query | total p50 ms | p99 ms | embed p50 | search/dense p50 | lexical p50 | fusion p50 | "
                  "highlight p50 | plain / ours (p50) | plain-1t / ours (p50) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, v in s["inproc"]["systems"].items():
            st = v["stages_ms"]
            cell = lambda k: f"{st[k]['p50']:.2f}" if k in st else "-"  # noqa: E731
            dense = cell("search") if name in PLAINS else (cell("dense") if name != "lexical" else "-")
            sp = lambda base: f"{s['inproc']['speedup'][base][name]['p50']:.1f}x" if name in MODES else "-"  # noqa: E731
            label = f"ours {name}" if name in MODES else {"plain": "plain: ST.encode + flat", "plain-1t": "plain-1t: same, torch 1 thread"}[name]
            lines.append(f"| {label} | {v['total_ms']['p50']:.2f} | {v['total_ms']['p99']:.2f} | {cell('embed')} | {dense} | "
                         f"{cell('lexical')} | {cell('fusion')} | {cell('highlight')} | {sp('plain')} | {sp('plain-1t')} |")
        cost = s["inproc"].get("encoder_cost")
        if cost:
            lines += ["", f"| embedding only, {cost['mean_tokens_per_question']:.0f} tokens per question on average | ms per question |",
                      "|---|---:|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in cost["ms_per_question"].items()]
        lines.append("")
    other = []
    if "cold" in s:
        m = s["cold"]["median_s"]
        other.append(f"| cold start to first answer, median s | {m['ours']:.2f} | {m['plain']:.2f} | {r['plain'].get('cold_start')} |")
    if "http" in s:
        peak = s["http"]["rss_peak_mb"]
        other.append(f"| peak RSS after the load runs (VmHWM), MB | {peak['ours']:.0f} | {peak['plain']:.0f} (plain-1t {peak['plain-1t']:.0f}) | "
                     f"{r['plain'].get('rss_peak')} |")
    if other:
        lines += ["| | ours | plain | ours / plain |", "|---|---:|---:|---:|", *other, ""]
    if "build" in s:
        b = s["build"]
        lines.append(f"Index build (`rag index --force`, fresh dir): {b['full_build_wall_s']:.1f} s wall "
                     f"({b['full_build_manifest_s']:.1f} s chunk+embed+write), {b['counts']['passages']} passages / "
                     f"{b['counts']['sentences']} sentences; rebuild reusing vectors {b['rebuild_reusing_vectors_wall_s']:.1f} s.")
        lines.append("")
    if "quality" in s:
        lines += ["| quality (eval/questions.jsonl) | R@1 | R@5 | MRR@10 |", "|---|---:|---:|---:|"]
        for name, m in s["quality"]["metrics"].items():
            lines.append(f"| {name} | {m['r@1']:.3f} | {m['r@5']:.3f} | {m['mrr@10']:.3f} |")
        lines.append(f"\nHybrid top 5 identical ONNX vs torch: {s['quality']['hybrid_same_top5']} questions.\n")
    if s.get("scale"):
        from bench_scale import table

        lines += [table(s["scale"]), ""]
    lines += ["| target | wanted | vs plain | met | vs plain-1t | met |", "|---|---|---:|---|---:|---|"]
    for t in result["targets"]:
        if "value" in t:
            lines.append(f"| {t['target']} | {t['wanted']} | {t['value']} | {_yes(t['met'])} | | |")
        else:
            lines.append(f"| {t['target']} | {t['wanted']} | {t['vs_plain']} | {_yes(t['met_vs_plain'])} | "
                         f"{t['vs_plain-1t']} | {_yes(t['met_vs_plain-1t'])} |")
    return "\n".join(lines)


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
    parser.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_worker:
        return plain_worker_main()

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
    out_path = args.out or RESULTS / ("bench.json" if full else "bench-partial.json")

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
    if "scale" in sections_to_run:
        import bench_scale

        log(f"\n== scale: {', '.join(f'{n:,}' for n in sizes)} vectors ==")
        result["sections"]["scale"] = bench_scale.run(sizes, scale_queries, log=log)

    for name, section in result["sections"].items():
        if isinstance(section, dict):
            section.setdefault("loadavg_after", loadavg_seen.get(name))
    result["ratios"] = compute_ratios(result["sections"])
    result["targets"] = check_targets(result["ratios"], result["sections"])
    result["machine"]["loadavg_at_end"] = loadavg()
    result["total_s"] = round(time.perf_counter() - started, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    tmp_path.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp_path, out_path)
    log("\n" + summary_table(result))
    log(f"\nwrote {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path} in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
