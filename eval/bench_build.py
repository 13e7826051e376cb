"""Benchmark index builds: sentence-transformers (today's build) against the fp32 ONNX build encoder
(rag.encoding.build_encoder), same corpus, same run, alternating, each build in a fresh process.

Corpora: the seed article (seeds/), and a sample of Debian's Python documentation sources
(`apt-get install python3-doc` puts 497 reStructuredText sources at /usr/share/doc/python3.11/html/_sources;
they are copied as .txt files, every `--stride`-th file of at most `--max-bytes`, `--files` of them).
For each build: wall time (model load included and excluded), passages, sentences, peak RSS; and the
cosine between the two builds' passage and sentence vectors (same passages, same order).

Usage:  python eval/bench_build.py [--files 60] [--stride 8] [--max-bytes 30000] [--rounds 1] [--out eval/results/build.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = Path("/usr/share/doc/python3.11/html/_sources")

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from pathlib import Path
from rag.index.build import IndexConfig, build_index
from rag.config import Settings
from rag.corpus.documents import load_corpus
from rag.encoding.encoders import Encoders
from rag.encoding.model import resolve_model
settings = Settings(seeds_dir=Path({seeds!r}), index_dir=Path({index!r}), encoder_dir=Path({encoders!r}), encoder={mode!r})
docs = list(load_corpus(settings.seeds_dir).documents)
spec = resolve_model("default")
encoder = Encoders.from_settings(settings, spec).builder()
t1 = time.perf_counter()
manifest = build_index(settings.index_dir, docs, IndexConfig.of(settings, docs, spec), encoder, progress={progress})
t2 = time.perf_counter()
print(json.dumps({{"mode": {mode!r}, "encoder": encoder.kind, "total_s": t2 - t0, "build_s": t2 - t1, "load_s": t1 - t0,
                  "documents": len(docs), **manifest["counts"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def docs_sample(target: Path, files: int, stride: int, max_bytes: int) -> tuple[int, int]:
    chosen = [p for p in sorted(DOCS.rglob("*.txt")) if p.stat().st_size <= max_bytes][::stride][:files]
    target.mkdir(parents=True)
    for p in chosen:
        name = str(p.relative_to(DOCS)).replace("/", "-").replace(".rst.txt", ".txt")
        shutil.copyfile(p, target / name)
    return len(chosen), sum(p.stat().st_size for p in chosen)  # fewer than `files` if the sources run out


def run_build(mode: str, seeds: Path, index: Path, encoders: Path, progress: bool) -> dict:
    shutil.rmtree(index, ignore_errors=True)
    code = CHILD.format(root=str(ROOT), seeds=str(seeds), index=str(index), encoders=str(encoders), mode=mode, progress=progress)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def vector_agreement(a: Path, b: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from rag.index.store import load_index

    x, y = load_index(a, None), load_index(b, None)
    assert [p.id for p in x.passages] == [p.id for p in y.passages], "the two builds chunked differently"
    pv = (x.vectors.reconstruct_n(0, x.vectors.ntotal) * y.vectors.reconstruct_n(0, y.vectors.ntotal)).sum(1)
    sv = (np.asarray(x.sentence_vectors, dtype=np.float32) * np.asarray(y.sentence_vectors, dtype=np.float32)).sum(1)
    return {"passage_cos_min": float(pv.min()), "passage_cos_mean": float(pv.mean()),
            "sentence_cos_min": float(sv.min()), "sentence_cos_mean": float(sv.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--max-bytes", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--corpora", default="seed,docs")
    ap.add_argument("--progress", action="store_true", help="show the ONNX build's progress bars")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_build_"))
    encoders = work / "encoders"
    corpora = {}
    if "seed" in args.corpora:
        corpora["seed article"] = (ROOT / "seeds", None)
    if "docs" in args.corpora:
        count, size = docs_sample(work / "docs", args.files, args.stride, args.max_bytes)
        corpora[f"python docs sample ({count} files, {size / 1e6:.2f} MB)"] = (work / "docs", size)
    run_build("onnx", ROOT / "seeds", work / "warm", encoders, False)  # export + verify the ONNX model once, untimed
    results = {}
    for label, (seeds, size) in corpora.items():
        runs = {"torch": [], "onnx": []}
        for _ in range(args.rounds):
            for mode in ("torch", "onnx"):
                runs[mode].append(run_build(mode, seeds, work / f"index-{mode}", encoders, args.progress and mode == "onnx"))
        best = {m: min(r, key=lambda x: x["total_s"]) for m, r in runs.items()}
        results[label] = {"bytes": size, "runs": runs, "agreement": vector_agreement(work / "index-torch", work / "index-onnx"),
                          "speedup_total": best["torch"]["total_s"] / best["onnx"]["total_s"],
                          "speedup_build": best["torch"]["build_s"] / best["onnx"]["build_s"]}
        t, o = best["torch"], best["onnx"]
        print(f"== {label}: {o['documents']} files, {o['passages']} passages, {o['sentences']} sentences ==")
        for m, r in best.items():
            print(f"  {m:5s} total {r['total_s']:7.1f} s (model load {r['load_s']:5.1f} s, build {r['build_s']:7.1f} s)  peak RSS {r['peak_rss_mb']:6.0f} MB")
        print(f"  speed-up total {t['total_s'] / o['total_s']:.1f}x, build {t['build_s'] / o['build_s']:.1f}x; "
              f"vectors {results[label]['agreement']}", flush=True)
    results["load_average"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
