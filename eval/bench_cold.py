"""Benchmark: cold start, process start to the first answered POST /query (index already built), for
`rag serve` and the plain server, alternated, median of the rounds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import Server, log  # noqa: E402


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


if __name__ == "__main__":  # this benchmark alone, e.g. `python eval/bench_cold.py --quick`
    import eval.bench as bench

    sys.exit(bench.main(["--sections", "cold", *sys.argv[1:]]))
