"""Profile the in-process query path (cProfile) over a batch of distinct questions and print where the
time goes outside the model forward (onnxruntime's `run`).

Usage:  python eval/profile_query.py [--questions 200] [--mode hybrid] [--index-dir DIR] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--index-dir", type=Path)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

    from rag.config import Settings
    from eval.evaluation import load_questions
    from rag.service import Service

    overrides = {k: v for k, v in {"index_dir": args.index_dir, "query_precision": args.precision}.items() if v}
    service = Service.open(Settings(**overrides))
    # Embed on this thread (not the micro-batcher's worker), so the profile sees the whole path.
    service.snapshot.retriever.encoder = getattr(service.snapshot.retriever.encoder, "inner", service.snapshot.retriever.encoder)
    base = [q.question for q in load_questions()]
    prefixes = ["", "Tell me: ", "In the article, ", "Briefly, "]
    questions = [prefixes[(i // len(base)) % len(prefixes)] + base[i % len(base)] for i in range(args.questions)]
    for q in questions[:5]:
        service.query(service.parse(q, 5, args.mode))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for q in questions:
        service.query(service.parse(q, 5, args.mode))
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # own time of every function
    forward = sum(v[2] for k, v in stats.stats.items() if "onnxruntime" in k[2] and k[2].endswith(".run>"))
    waiting = sum(v[2] for k, v in stats.stats.items() if "acquire" in k[2] or k[2] == "wait")
    print(f"{len(questions)} questions, mode {args.mode}: {wall / len(questions) * 1e3:.2f} ms/question wall; "
          f"own time: forward (session.run) {forward / len(questions) * 1e3:.2f} ms, locks/waits "
          f"{waiting / len(questions) * 1e3:.2f} ms, the rest {(total - forward - waiting) / len(questions) * 1e3:.2f} ms")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
