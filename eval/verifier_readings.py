"""How the verdict could read the verifier's window logits: a measurement on the held-out questions, not a library part.

The verdict takes the best of the top three windows' logits (rag.query.verification.read). This script scores the
held-out questions of eval/train_verifier.py (4 SQuAD 2.0 tune articles and every second dev question, from its
cached items in eval/runs/verifier/items.json: run `make train-verifier` or `--report-only` once first) with the
shipped int8 verifier, and compares other readings of the same three logits: alone (AUROC), and as the verdict's
third feature beside the bi-encoder two, refitted leave-one-article-out exactly as the training script reports
(so each figure comes from a fit that never saw the question's article); and, under "blends", the verified verdict
as a blend of the bi-encoder verdict's probability and the verified model's (`blends`, how VERIFIED_WEIGHT was
chosen: the middle of the plateau of the mean of the two corpora's AUROCs). It prints a JSON report; nothing is written.

    python -m eval.verifier_readings
"""

from __future__ import annotations

import json
import os

import numpy as np

from eval import train_verifier as training
from eval.metrics import auroc

READINGS = {
    "best": lambda r: max(r),  # what the verdict reads
    "first": lambda r: r[0],  # the window the highlight's rules rank first
    "mean": lambda r: float(np.mean(r)),
    "logsumexp": lambda r: float(np.log(np.sum(np.exp(r)))),
    "second": lambda r: sorted(r)[-2] if len(r) > 1 else r[0],
    "mean_top2": lambda r: float(np.mean(sorted(r)[-2:])),
    "best_of_first2": lambda r: max(r[:2]),  # reading two windows instead of three (a third less forward)
    "first_only": lambda r: r[0],  # reading one window
}
VERDICTS = {  # the verdict's features besides the bi-encoder two (answer_type, relation_cos)
    "best (shipped)": ("best",),
    "logsumexp": ("logsumexp",),
    "best + second": ("best", "second"),
    "best + first": ("best", "first"),
    "mean_top2": ("mean_top2",),
    "best of the first two windows": ("best_of_first2",),
    "the first window only": ("first_only",),
}


def reading(name: str, logits: list[float]) -> float:
    return READINGS[name](logits) if logits else -10.0


def rates(probabilities, labels, threshold: float = 0.5) -> dict:
    answered = [p >= threshold for p, a in zip(probabilities, labels) if a]
    refused = [p < threshold for p, a in zip(probabilities, labels) if not a]
    return {"auroc": round(auroc(probabilities, labels), 4), "answered": round(float(np.mean(answered)), 3),
            "abstained": round(float(np.mean(refused)), 3)}


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.encoding import verifier as verifiers
    from rag.encoding.model import resolve_model

    spec = resolve_model("default")
    shipped = verifiers.shipped(str(spec.local_dir), spec.weights_sha256)
    items = [i for i in training.collect() if training.held_out(i)]
    logits = [[float(x) for x in shipped.logits(i.question, i.windows[:3])] if i.windows else [] for i in items]
    report: dict = {"questions": {s: sum(i.source == s for i in items) for s in ("squad", "dev")}, "alone": {}, "verdict": {}}
    for source in ("squad", "dev"):
        chosen = [k for k, i in enumerate(items) if i.source == source]
        labels = [items[k].answerable for k in chosen]
        report["alone"][source] = {name: round(auroc([reading(name, logits[k]) for k in chosen], labels), 4) for name in READINGS}
    for label, names in VERDICTS.items():
        features = [(*i.features, *(reading(n, row) for n in names)) for i, row in zip(items, logits)]
        probabilities = training.leave_one_group_out_rows(items, features)
        report["verdict"][label] = {source: rates([p for p, i in zip(probabilities, items) if i.source == source],
                                                  [i.answerable for i in items if i.source == source]) for source in ("squad", "dev")}
    report["blends"] = blends(items, logits)
    print(json.dumps(report, indent=1))
    return 0


def blends(items, logits) -> dict:
    """The verified verdict as (1 - w) x the bi-encoder verdict's probability + w x the verified model's
    (rag.query.verdict.VERIFIED_WEIGHT), the verified one refitted leave-one-article-out as above, for w from 0 to 1:
    per corpus AUROC (dev: against near-topic questions), answered / abstained at 0.5, found at the found threshold, ECE,
    and at the shipped weight the SQuAD trade-off curve. The weight is chosen on these same questions and the
    bi-encoder model was fitted on the whole dev split: only the bundled test split (rag eval) is clean of both."""
    from rag.query.verdict import FOUND_THRESHOLD_VERIFIED, MODEL, VERIFIED_WEIGHT

    verified = training.leave_one_group_out_rows(items, [(*i.features, reading("best", row)) for i, row in zip(items, logits)])
    plain = [MODEL.probability(*i.features) for i in items]
    out = {}
    for w in [round(0.1 * n, 1) for n in range(11)]:
        blended = [(1 - w) * p + w * v for p, v in zip(plain, verified)]
        row = {}
        for source in ("squad", "dev"):
            chosen = [(b, i) for b, i in zip(blended, items) if i.source == source]
            row[source] = {**rates([b for b, _ in chosen], [i.answerable for _, i in chosen]),
                           "found": round(float(np.mean([b >= FOUND_THRESHOLD_VERIFIED for b, i in chosen if i.answerable])), 3),
                           "ece": round(training.ece([b for b, _ in chosen], [i.answerable for _, i in chosen])[0], 3)}
            if source == "dev":
                near = [(b, i) for b, i in chosen if i.answerable or i.kind == "near-topic"]
                row[source]["auroc_vs_near_topic"] = round(auroc([b for b, _ in near], [i.answerable for _, i in near]), 4)
                row[source]["near_topic_refused"] = round(float(np.mean([b < 0.5 for b, i in near if not i.answerable])), 3)
        row["mean_auroc"] = round((row["squad"]["auroc"] + row["dev"]["auroc_vs_near_topic"]) / 2, 4)
        if w == VERIFIED_WEIGHT:
            row["tradeoff_squad"] = training.tradeoff(items, blended)
        out[str(w)] = row
    return out


if __name__ == "__main__":
    raise SystemExit(main())
