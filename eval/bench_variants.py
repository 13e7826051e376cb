"""Measure quantized variants of the query model against the fp32 export: speed and answers.

For every variant (rag.encoding.quantize recipes) in the same run as fp32, interleaved call for call (the
machine is shared; only ratios within one run mean anything):
* ms per question at batch 1 and at batch 16, and the ratio to fp32;
* cosine to fp32 (min / mean) and same dense top-1 over the eval questions;
* the retrieval gate (eval.encoder_gate) per split: on dev (where the choice is made) and on test.
`--sensitivity` also quantizes one weight node at a time (dynamic int8) and reports its cosine drop
and dense top-1 agreement on dev questions and passages: how the mixed-precision variant was chosen.

Usage:  python eval/bench_variants.py [--variants fp32,dyn_all,dyn_mixed,static_minmax,bw64,bw128,bw256,bw128_qkv]
                                       [--sensitivity] [--index-dir DIR] [--out eval/results/variants.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# Dynamic int8 on the 12 nodes that moved dev embeddings least when quantized alone (--sensitivity).
MIXED_QUANTIZED = ("L0.attn_out", "L0.qkv", "L1.attn_out", "L1.qkv", "L2.attn_out", "L2.qkv", "L3.attn_out",
                   "L4.attn_out", "L4.ffn_out", "L5.attn_out", "L5.ffn_in", "L5.ffn_out")


def make_variant(name: str, fp32: Path, work: Path, feeds) -> Path:
    from rag.encoding import quantize as q

    roles = q.node_groups(fp32)
    out = work / f"{name}.onnx"
    if name == "fp32":
        return fp32
    if name == "dyn_all":
        return q.quantize_dynamic_int8(fp32, out)
    if name == "dyn_mixed":
        return q.quantize_dynamic_int8(fp32, out, exclude=[n for n, r in roles.items() if r not in MIXED_QUANTIZED])
    if name == "static_minmax":
        return q.quantize_static_int8(fp32, out, feeds)
    if name.startswith("bw") and name.endswith("_qkv"):
        q.quantize_dynamic_int8(fp32, work / "qkv.onnx", exclude=[n for n, r in roles.items() if "qkv" not in r])
        return q.quantize_blockwise_int8(work / "qkv.onnx", out, block_size=int(name[2:-4]))
    if name.startswith("bw"):
        return q.quantize_blockwise_int8(fp32, out, block_size=int(name[2:]))
    raise SystemExit(f"unknown variant {name}")


def timing(encoders: dict, questions: list[str], rounds: int) -> dict:
    t1 = {k: 0.0 for k in encoders}
    t16 = {k: 0.0 for k in encoders}
    batches = [questions[i:i + 16] for i in range(0, len(questions) - 15, 16)]
    for _ in range(rounds):
        for q in questions:
            for k, e in encoders.items():
                s = time.perf_counter()
                e.encode([q])
                t1[k] += time.perf_counter() - s
        for b in batches:
            for k, e in encoders.items():
                s = time.perf_counter()
                e.encode(b)
                t16[k] += time.perf_counter() - s
    n1, n16 = rounds * len(questions), rounds * 16 * len(batches)
    return {k: {"b1_ms": t1[k] / n1 * 1e3, "b16_ms": t16[k] / n16 * 1e3,
                "b1_speedup": t1["fp32"] / t1[k], "b16_speedup": t16["fp32"] / t16[k]} for k in encoders}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="fp32,dyn_all,dyn_mixed,static_minmax,bw64,bw128,bw256,bw128_qkv")
    ap.add_argument("--sensitivity", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--index-dir", type=Path, help="an index of seeds/ to reuse (default: build one in a temp dir)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from rag.config import Settings
    from rag.encoding.onnx_encoder import ensure_onnx
    from eval.encoder_gate import compare_encoders, with_encoder
    from eval.evaluation import load_questions
    from rag.corpus.passage_text import embedding_texts
    from rag.encoding.onnx_encoder import OnnxEncoder
    from rag.encoding.quantize import node_groups, quantize_dynamic_int8
    from rag.service import Service

    work = Path(tempfile.mkdtemp(prefix="bench_variants_"))
    settings = Settings(index_dir=args.index_dir or work / "index", encoder_dir=work / "encoders", query_precision="fp32")
    service = Service.open(settings)
    model_dir = service.model.local_dir
    fp32 = ensure_onnx(settings.encoder_dir, service.model, service.encoders.reference)
    questions = load_questions()
    texts = [q.question for q in questions]
    dev = [q for q in questions if q.split == "dev"]
    base = OnnxEncoder(fp32, model_dir, threads=2)
    feeds = []
    for t in embedding_texts(service.snapshot.passages, service.snapshot.documents) + [q.question for q in dev]:
        ids = np.array([base._tok_single.encode(t).ids], dtype=np.int64)  # calibration: passages + dev questions
        feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    passages = service.snapshot.index.vectors.reconstruct_n(0, service.snapshot.index.vectors.ntotal)
    ref = base.encode_bucketed(texts)
    report: dict = {"load_average": os.getloadavg(), "variants": {}}

    if args.sensitivity:
        dev_texts = [q.question for q in dev] + embedding_texts(service.snapshot.passages, service.snapshot.documents)
        dev_ref = base.encode_bucketed(dev_texts)
        roles = node_groups(fp32)
        sens = {}
        for node, role in roles.items():
            path = quantize_dynamic_int8(fp32, work / "one.onnx", exclude=[n for n in roles if n != node])
            v = OnnxEncoder(path, model_dir, threads=2).encode_bucketed(dev_texts)
            cos = (v * dev_ref).sum(1)
            sens[role] = {"cos_mean_drop": float(1 - cos.mean()), "cos_min": float(cos.min())}
            print(f"  only {role:12s} 1-cos mean {1 - cos.mean():.2e}  min cos {cos.min():.6f}", flush=True)
        report["sensitivity"] = sens

    encoders = {name: OnnxEncoder(make_variant(name, fp32, work, feeds), model_dir, threads=2) for name in args.variants.split(",")}
    for e in encoders.values():
        e.encode(texts[:16])
        e.encode(texts[:1])
    speed = timing(encoders, texts, args.rounds)
    fp32_system = with_encoder(service, encoders["fp32"])
    for name, enc in encoders.items():
        v = enc.encode_bucketed(texts)
        cos = (v * ref).sum(1)
        top1 = float(np.mean(np.argmax(v @ passages.T, 1) == np.argmax(ref @ passages.T, 1)))
        system = with_encoder(service, enc)
        gates = {split: compare_encoders(fp32_system, system, [q for q in questions if q.split == split]).as_dict()
                 for split in ("dev", "test")}
        row = {**speed[name], "cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "dense_same_top1": top1,
               "gate_dev": gates["dev"]["passed"], "gate_test": gates["test"]["passed"],
               "hybrid_same_top1": gates["dev"]["same_top1"], "gate": gates}
        report["variants"][name] = row
        print(f"{name:14s} b1 {row['b1_ms']:6.2f} ms ({row['b1_speedup']:.2f}x)  b16 {row['b16_ms']:6.2f} ms/q ({row['b16_speedup']:.2f}x)  "
              f"cos min {row['cos_min']:.5f} mean {row['cos_mean']:.5f}  dense top-1 {top1:.3f}  "
              f"gate dev {'pass' if row['gate_dev'] else 'FAIL'} test {'pass' if row['gate_test'] else 'FAIL'}", flush=True)
    print(f"load average {os.getloadavg()}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
