"""Benchmark: retrieval quality with the ONNX query encoder against sentence-transformers (RAG_ENCODER=onnx
vs torch) over eval/questions.jsonl: R@1, R@5, MRR, and on how many questions the two return the same top 5.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import log  # noqa: E402


def section_quality(onnx_service, torch_service) -> dict:
    from eval.evaluation import evaluate, load_questions, service_system

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
        a = onnx_service.query(onnx_service.parse(q.question, 5, "hybrid"))
        b = torch_service.query(torch_service.parse(q.question, 5, "hybrid"))
        same_top5 += [h.passage.id for h in a.hits] == [h.passage.id for h in b.hits]
        va = onnx_service.snapshot.retriever.encoder.encode([q.question])[0]
        vb = torch_service.snapshot.retriever.encoder.encode([q.question])[0]
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


if __name__ == "__main__":  # this benchmark alone, e.g. `python eval/bench_quality.py --quick`
    import eval.bench as bench

    sys.exit(bench.main(["--sections", "quality", *sys.argv[1:]]))
