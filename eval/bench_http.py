"""Benchmark: `rag serve` against eval/plain_server.py over HTTP (POST /query), each its own uvicorn
process, loaded in turn by eval/loadgen.py (a separate process) at several concurrency levels with
distinct questions; each level cut into slices interleaved across the servers so drift hits all
alike; peak RSS (VmHWM) of every server afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import LOADGEN, PLAINS, Server, log, pct  # noqa: E402


def run_loadgen(server: Server, questions_file: Path, offset: int, concurrency: int, duration: float, warmup: float,
                latencies_file: Path) -> dict:
    cmd = [sys.executable, str(LOADGEN), "--url", server.url, "--questions", str(questions_file),
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
                       "mean": round(sum(latencies) / len(latencies), 3) if latencies else None},
        "ok": sum(r["ok"] for r in slices),
        "errors": sum(r["errors"] for r in slices),
        "error_kinds": errors,
        "slices_rps": [r["throughput_rps"] for r in slices],
        "loadgen_cpu_s": round(sum(r["loadgen_cpu_s"] for r in slices), 2),
        "questions_used": sum(r["questions_used"] for r in slices),
    }


def section_http(index_dir: Path, work: Path, questions_file: Path, levels: list[int], duration: float, warmup: float,
                 slices: int, offset: int, workers: int = 0, settings: dict[str, str] | None = None) -> tuple[dict, int]:
    """Each level: `slices` rounds of (ours, [ours-wN,] plain, plain-1t) in rotating order, each duration/slices long,
    pooled. `workers` > 1 also runs `rag serve --workers N` ("ours-wN"); `settings` go to every `rag serve` (Server)."""
    workers_kind = f"ours-w{workers}" if workers > 1 else None
    kinds = ["ours", *([workers_kind] if workers_kind else []), *PLAINS]
    servers = {kind: Server(kind, index_dir, work, settings) for kind in kinds}
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
        "servers": {"ours": "rag serve", **({workers_kind: f"rag serve --workers {workers}"} if workers_kind else {}),
                    "plain": "eval/plain_server.py (torch default threads)", "plain-1t": "eval/plain_server.py with PLAIN_TORCH_THREADS=1"},
        "workers_kind": workers_kind,
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


if __name__ == "__main__":  # this benchmark alone, e.g. `python eval/bench_http.py --quick`
    import eval.bench as bench

    sys.exit(bench.main(["--sections", "http", *sys.argv[1:]]))
