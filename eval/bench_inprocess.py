"""Benchmark: per-query latency inside one process, p50/p99 per stage (QueryResult.timings_ms) and in
total, for hybrid / dense / lexical, against SentenceTransformer.encode + IndexFlatIP search of the
same passage vectors (PlainWorker, in its own interpreter); calls interleaved in blocks. Also what
one embedding costs per question, one per call and in batches (what micro-batching can gain).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from eval.harness import MODES, PLAINS, ROOT, dist, env_for, log, ratio  # noqa: E402


class PlainWorker:
    """The in-process baseline in its own interpreter (`bench.py --plain-worker`): the plain server's
    SentenceTransformer + IndexFlatIP, driven question by question over a pipe.

    Not in the benchmark's own process, because onnxruntime's and torch's thread pools both spin-wait
    after each call: hosted together and interleaved, each slows the other down (we measured the torch
    path 20x slower that way), which would say nothing about either. Both sides time their own calls.
    """

    def __init__(self, index_dir: Path):
        env = env_for(index_dir, PLAIN_INDEX_DIR=str(index_dir), TQDM_DISABLE="1")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--plain-worker"], stdin=subprocess.PIPE,
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
    import eval.plain_server as plain_server  # loads the model and the flat index exactly as the plain server does
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
                    timings = service.query(service.parse(q, 5, mode)).timings_ms
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
    onnx = service.snapshot.retriever.encoder.inner  # the OnnxQueryEncoder behind the batcher

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


if __name__ == "__main__":  # this benchmark alone, e.g. `python eval/bench_inprocess.py --quick`
    if sys.argv[1:] == ["--plain-worker"]:  # PlainWorker's own process
        sys.exit(plain_worker_main())
    import eval.bench as bench

    sys.exit(bench.main(["--sections", "inproc", *sys.argv[1:]]))
