"""Benchmark: what the verifier adds to a query inside one process, on the bundled article.

Two services over one index in one process, the same question stream, calls interleaved in blocks (so both
sides see the same machine load): RAG_VERIFIER=true (the verifier reads the evidence) and the default (the bi-encoder verdict).
Prints p50/p99 of the whole query and of the "verify" stage, and the difference of the p50s (the issue's
budget: at most 3 ms). The index is the project's own (built if needed), questions from eval.harness.

    python eval/bench_verifier.py [--questions 600] [--threads 1,2]

`--threads` also times the verifier's forward alone (Verifier.logits on the windows the query read) with each
intra-op thread count, the same pairs in turn, two rounds: what a second thread buys one question (the service
reads it with RAG_VERIFIER_THREADS, one per core by default: docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import RUNS, distinct_questions, log, pct, write_json  # noqa: E402


def measure(count: int = 600, block: int = 20) -> tuple[dict, list[tuple[str, list[str]]]]:
    """The figures, and the (question, windows) pairs the verifier read (for `thread_scaling`)."""
    from rag.config import Settings
    from rag.service import Service

    index_dir = RUNS / "bench-verifier-index"
    on = Service.open(Settings(index_dir=index_dir, auto_build=True, verifier=True))
    off = Service(on.settings.model_copy(update={"verifier": False}), on.model, on.encoders, None)
    off.snapshot = _snapshot(off, on)
    questions = distinct_questions()[:count]
    times, pairs = {"on": [], "off": [], "verify": []}, []
    for _ in range(2):  # warm both
        for service in (on, off):
            service.query(service.parse(questions[0]))
    for start in range(0, len(questions), block):
        for name, service in (("on", on), ("off", off)):
            for q in questions[start : start + block]:
                query = service.parse(q)
                t0 = time.perf_counter()
                result = service.query(query)
                times[name].append((time.perf_counter() - t0) * 1000)
                if name == "on":
                    times["verify"].append(result.timings_ms.get("verify", 0.0))
                    pairs.append((q, [w.text for w in result.windows]))
    out = {name: {"p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for name, v in times.items()}
    out["added_p50_ms"] = round(out["on"]["p50_ms"] - out["off"]["p50_ms"], 3)
    out["questions"] = len(questions)
    out["verifier"] = on.snapshot.retriever.verifier_status()
    return out, pairs


def thread_scaling(pairs: list[tuple[str, list[str]]], threads: list[int], rounds: int = 2) -> dict:
    """p50/p99 ms of the verifier's forward alone over `pairs` (question, windows) with each intra-op thread count."""
    from rag.encoding import verifier as verifiers
    from rag.encoding.model import resolve_model

    spec = resolve_model("default")
    models = {t: verifiers.Verifier(verifiers.ASSET_DIR, spec.local_dir, spec.weights_sha256, threads=t) for t in threads}
    times: dict[int, list[float]] = {t: [] for t in threads}
    for _ in range(rounds):
        for t, model in models.items():
            for question, windows in pairs:
                t0 = time.perf_counter()
                model.logits(question, windows)
                times[t].append((time.perf_counter() - t0) * 1000)
    return {f"{t}_threads": {"p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for t, v in times.items()}


def _snapshot(off, on):
    """The index `on` serves, with a retriever built without the verifier."""
    from rag.service import make_snapshot

    snap = on.snapshot
    return make_snapshot(off.settings, list(snap.documents.values()), snap.index, snap.retriever.encoder, snap.skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--threads", default="", help="comma-separated intra-op thread counts to time the forward alone with")
    args = parser.parse_args(argv)
    result, pairs = measure(args.questions)
    if args.threads:
        result["forward_alone"] = thread_scaling(pairs, [int(t) for t in args.threads.split(",")])
    write_json(RUNS / "bench-verifier.json", result)
    log(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
