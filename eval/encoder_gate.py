"""The quality gate a faster query encoder must pass before it may be the default.

A faster encoder (a quantized model, another runtime) changes float rounding, and rounding can flip
near ties between passages. `compare_encoders` runs the eval questions through two systems that
differ only in their query encoder - the verified fp32 reference and a variant - and says whether
the variant keeps the answers:

* per split (dev, test) and per mode (hybrid, dense, lexical): R@1, R@5 and MRR@10 of the variant
  are not lower than the reference's;
* per question, in the default mode: the same top-1 passage for at least `min_same_top1` (98%) of
  the questions.

A "system" is anything with `query(question, top_k, mode)` returning hits with `.passage`
(a `Service`); `with_encoder` makes one that shares a service's index and swaps only its encoder.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from eval.evaluation import DEPTH, score_question, service_system, summarize

from rag.config import MODES
METRICS = ("r@1", "r@5", "mrr@10")


@dataclass(frozen=True)
class MetricCheck:
    mode: str
    split: str
    metric: str
    reference: float
    variant: float

    @property
    def ok(self) -> bool:
        return self.variant >= self.reference - 1e-9


@dataclass(frozen=True)
class GateReport:
    passed: bool
    default_mode: str
    same_top1: float  # share of questions with the same first passage in the default mode
    same_top1_by_mode: dict[str, float]
    same_top5_by_mode: dict[str, float]  # same five passages in the same order
    checks: tuple[MetricCheck, ...]
    failures: tuple[str, ...]  # why it did not pass (empty when it did)
    questions: int

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "default_mode": self.default_mode,
            "same_top1": round(self.same_top1, 4),
            "same_top1_by_mode": {k: round(v, 4) for k, v in self.same_top1_by_mode.items()},
            "same_top5_by_mode": {k: round(v, 4) for k, v in self.same_top5_by_mode.items()},
            "metrics": [
                {"mode": c.mode, "split": c.split, "metric": c.metric, "reference": c.reference, "variant": c.variant}
                for c in self.checks
            ],
            "failures": list(self.failures),
            "questions": self.questions,
        }


def with_encoder(service, encoder):
    """A service that shares `service`'s index, documents and settings, but embeds questions with `encoder`."""
    from rag.service import Service

    retriever = copy.copy(service.snapshot.retriever)
    retriever.encoder = encoder
    snapshot = dataclasses.replace(service.snapshot, retriever=retriever, encoder_kind=encoder.kind)
    return Service(service.settings, service.model, service.encoders, snapshot)


def _run(system, questions: list, mode: str) -> tuple[list[list[str]], list[dict]]:
    """Ranked passage ids and scored rows for every question (eval.evaluation's scoring)."""
    ask = service_system(system, mode, DEPTH)
    ids, rows = [], []
    for q in questions:
        answer = ask(q.question)
        ids.append([p.id for p in answer.passages])
        rows.append(score_question(q, answer))
    return ids, rows


def compare_encoders(
    reference, variant, questions: list, *, default_mode: str = "hybrid", min_same_top1: float = 0.98,
    modes: tuple[str, ...] = MODES,
) -> GateReport:
    """Run the gate: `reference` and `variant` are systems (see module doc) over the same index."""
    splits = sorted({q.split for q in questions})
    checks: list[MetricCheck] = []
    same1: dict[str, float] = {}
    same5: dict[str, float] = {}
    for mode in modes:
        ref_ids, ref_rows = _run(reference, questions, mode)
        var_ids, var_rows = _run(variant, questions, mode)
        n = max(len(questions), 1)
        same1[mode] = sum(a[:1] == b[:1] for a, b in zip(ref_ids, var_ids)) / n
        same5[mode] = sum(a[:5] == b[:5] for a, b in zip(ref_ids, var_ids)) / n
        for split in splits:
            ref_sum = summarize([r for r in ref_rows if r["split"] == split])
            var_sum = summarize([r for r in var_rows if r["split"] == split])
            checks += [MetricCheck(mode, split, m, ref_sum[m], var_sum[m]) for m in METRICS]
    failures = [f"{c.mode}/{c.split} {c.metric}: {c.variant:.4f} < {c.reference:.4f}" for c in checks if not c.ok]
    top1 = same1.get(default_mode, 1.0)
    if top1 < min_same_top1:
        failures.append(f"same top-1 passage in {default_mode} mode for {top1:.1%} of questions (< {min_same_top1:.0%})")
    return GateReport(not failures, default_mode, top1, same1, same5, tuple(checks), tuple(failures), len(questions))
