"""What every benchmark in eval/ shares: paths, percentiles, a free port, k-NN recall, the machine, servers.

Each benchmark module (bench_index, bench_inprocess, bench_quality, bench_http, bench_cold,
bench_scale, bench_encoder) imports its helpers from here instead of carrying its own copy;
eval/bench.py drives them and eval/bench_report.py turns their results into tables and the
tracked summary. Nothing here imports torch or numpy at module level: eval/loadgen.py imports
it in a process that must stay cheap.

Outputs: a full benchmark run goes under eval/runs/ (ignored by git); only compact summaries in
eval/results/ are tracked (see bench_report).
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results"  # tracked: compact summaries only
RUNS = ROOT / "eval" / "runs"  # ignored: full reports
# The `rag` command of THIS checkout (not whatever the venv's console script points at); the CLI lives in
# api/cli.py once the composition root moves there, in rag/cli.py before.
RAG = [sys.executable, "-m", "api.cli"]
PLAIN_SERVER = ROOT / "eval" / "plain_server.py"
LOADGEN = ROOT / "eval" / "loadgen.py"
MODES = ("hybrid", "dense", "lexical")  # rag.config.MODES, spelled out: this module must not import rag (loadgen stays cheap)
PLAINS = ("plain", "plain-1t")  # torch's default thread count, and torch pinned to one thread


def log(message: str = "") -> None:
    print(message, flush=True)


# --- numbers ------------------------------------------------------------------------------


def percentile(values, q: float, scale: float = 1.0, digits: int | None = None) -> float | None:
    """The q-th percentile (0-100) with linear interpolation (numpy's default), times `scale`; None for no values."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    value = (ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)) * scale
    return value if digits is None else round(value, digits)


def pct(values, q: float) -> float | None:
    """Percentile rounded to 3 digits (milliseconds to the microsecond)."""
    return percentile(values, q, digits=3)


def dist(values) -> dict:
    values = list(values)
    return {"p50": pct(values, 50), "p99": pct(values, 99), "mean": round(sum(values) / len(values), 3) if values else None}


def ratio(a, b, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b not in (None, 0) else None


def knn_recall(found, truth, k: int = 10) -> float:
    """Mean share of the true k nearest neighbours that an approximate search found (rows of ids)."""
    rows = [len(set(list(a)[:k]) & set(list(b)[:k])) / k for a, b in zip(found, truth)]
    return sum(rows) / len(rows) if rows else 0.0


# --- the machine and processes ---------------------------------------------------------------


def proc_status(pid: int | str, field: str) -> int | None:
    """A /proc/<pid>/status field in kB (VmHWM = peak RSS, VmRSS = current); pid "self" for this process."""
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


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    versions = {}
    for name in ("onnxruntime", "torch", "sentence_transformers", "faiss", "fastapi", "uvicorn", "httpx", "numpy"):
        try:
            versions[name] = version({"faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers"}.get(name, name))
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "git_commit": git_commit(),
        "loadavg_at_start": loadavg(),
        "note": "shared machine; absolute times drift by up to 10x over hours, only same-run ratios are comparable",
    }


def env_for(index_dir: Path, **extra: str) -> dict:
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.update(extra)
    return env


def write_json(path: Path, data) -> None:
    """Write JSON through a temp file renamed into place (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


# --- the index and questions ---------------------------------------------------------------


def run_rag_index(index_dir: Path, timeout: float = 1200, **env: str) -> tuple[float, dict]:
    """`rag index --force` into `index_dir` in its own process (`env`: more RAG_ settings): wall seconds and the manifest."""
    started = time.perf_counter()
    out = subprocess.run([*RAG, "index", "--force"], env=env_for(index_dir, **env), capture_output=True, text=True, timeout=timeout,
                         cwd=ROOT)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"rag index failed: {out.stderr.strip()[-800:]}")
    return wall, json.loads((index_dir / "manifest.json").read_text())


def open_service(index_dir: Path, encoder: str):
    from rag.config import Settings
    from rag.service import Service

    return Service.open(Settings(index_dir=index_dir, auto_build=False, encoder=encoder))


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


def distinct_questions(seed: int = 6) -> list[str]:
    """The eval questions in many wordings (prefix x suffix x with/without '?'): ~147k, no two alike."""
    from eval.evaluation import load_questions

    variants = set()
    for question in (q.question for q in load_questions()):
        for stem in {question, question.rstrip("?")}:
            for prefix in PREFIXES:
                for suffix in SUFFIXES:
                    variants.add(f"{prefix}{stem[0].lower() + stem[1:] if prefix else stem}{suffix}")
    out = sorted(variants)
    random.Random(seed).shuffle(out)
    return out


# --- servers --------------------------------------------------------------------------------


class Server:
    """`rag serve` ("ours"; "ours-wN": `rag serve --workers N`) or eval/plain_server.py ("plain", "plain-1t") as its own
    process on a free 127.0.0.1 port. `settings`: environment variables for `rag serve` only (RAG_VERIFIER=true, say);
    the plain servers never get them."""

    def __init__(self, kind: str, index_dir: Path, work: Path, settings: dict[str, str] | None = None):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/query"
        if kind.startswith("ours"):
            cmd = [*RAG, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            if kind.startswith("ours-w"):
                cmd += ["--workers", kind.removeprefix("ours-w")]
            env = env_for(index_dir, RAG_AUTO_BUILD="false", **(settings or {}))
        else:
            cmd = [sys.executable, str(PLAIN_SERVER), "--host", "127.0.0.1", "--port", str(self.port)]
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
        """`field` of /proc/<pid>/status; for `--workers N`, summed over the supervisor and its workers."""
        pids = [self.proc.pid]
        if self.kind.startswith("ours-w"):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids += [int(p) for p in children.read_text().split()] if children.exists() else []
        values = [proc_status(pid, field) for pid in pids]
        return None if any(v is None for v in values) else sum(values)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
