"""Retrieval evaluation: run every mode (and a tutorial baseline) over eval/questions.jsonl.

The eval set holds hand-written questions with gold evidence as verbatim quotes
(so it outlives any chunker, and scores any retriever); scoring rules live in
`rag.metrics`. A *system* here is anything that maps a question to ranked
passage texts: the service in each mode, or the baseline that the common
tutorial pipeline builds (fixed 1,000-character chunks with 200 overlap over
the raw file, dense only, same model). `rag eval` prints the tables, lists the
misses, writes eval/results/eval.json and draws eval/results/recall.png.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from rag import metrics
from rag.config import PROJECT_ROOT, Settings

EVAL_DIR = PROJECT_ROOT / "eval"
QUESTIONS = EVAL_DIR / "questions.jsonl"
RESULTS_DIR = EVAL_DIR / "results"
KS = (1, 3, 5, 10)
DEPTH = 10


@dataclass(frozen=True)
class Answer:
    texts: list[str]  # ranked passage texts, best first
    answerable: bool
    confidence: float
    highlight: str | None  # the top passage's highlighted sentence, if the system marks one
    features: tuple[float, ...] = ()  # the verdict's features (rag.verdict.FEATURES)
    verdict: str | None = None  # found / uncertain / not_found, if the system gives one


System = Callable[[str], Answer]


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def service_system(service, mode: str) -> System:
    def run(question: str) -> Answer:
        result = service.query(question, DEPTH, mode)
        top = result.hits[0].highlight.text if result.hits else None
        features = result.features.values() if result.features else ()
        return Answer([h.passage.text for h in result.hits], result.answerable, result.confidence, top, features, result.verdict)

    return run


def baseline_system(service, chunk_chars: int = 1000, overlap: int = 200) -> System:
    """The tutorial pipeline: fixed-size character windows over each whole file, dense only."""
    import faiss

    windows = []
    for doc in service.documents.values():
        step = chunk_chars - overlap
        windows += [doc.text[i : i + chunk_chars] for i in range(0, max(len(doc.text) - overlap, 1), step)]
    encoder = service.retriever.encoder
    vectors = encoder.encode(windows)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)

    def run(question: str) -> Answer:
        scores, ids = index.search(encoder.encode([question]), DEPTH)
        return Answer([windows[i] for i in ids[0] if i >= 0], True, float(scores[0][0]), None)

    return run


def score_question(question: dict, answer: Answer) -> dict:
    quotes = question["quotes"]
    rank = metrics.first_hit_rank(answer.texts, quotes)
    relevances = metrics.passage_relevances(answer.texts, quotes)
    row = {
        "id": question["id"],
        "kind": question["kind"],
        "split": question["split"],
        "answerable": question["answerable"],
        "predicted_answerable": answer.answerable,
        "confidence": round(answer.confidence, 4),
        "features": answer.features,
        "verdict": answer.verdict,
        "rank": rank,
        "returned_chars": metrics.mean(len(t) for t in answer.texts[:5]),
        "top": [t[:120] for t in answer.texts[:3]],
    }
    if question["answerable"]:
        row.update({f"r@{k}": metrics.recall_at_k(rank, k) for k in KS})
        row["mrr@10"] = metrics.reciprocal_rank(rank, 10)
        row["ndcg@10"] = metrics.ndcg_at_k(relevances, 10)
        row["highlight_hit"] = bool(answer.highlight and any(metrics.quote_hit(answer.highlight, q) for q in quotes))
    return row


def summarize(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    summary = {"questions": len(answerable)}
    for key in [f"r@{k}" for k in KS] + ["mrr@10", "ndcg@10"]:
        summary[key] = round(metrics.mean(r[key] for r in answerable), 4)
    summary["mean_chars"] = round(metrics.mean(r["returned_chars"] for r in answerable), 1)
    summary["highlight@1"] = round(metrics.mean(float(r["highlight_hit"]) for r in answerable), 4)
    predicted = [r["predicted_answerable"] for r in rows]
    actual = [r["answerable"] for r in rows]
    p_pos, r_pos = metrics.precision_recall(predicted, actual)
    p_neg, r_neg = metrics.precision_recall([not p for p in predicted], [not a for a in actual])
    summary.update(
        {
            "answerable_precision": round(p_pos, 4),
            "answerable_recall": round(r_pos, 4),
            "unanswerable_precision": round(p_neg, 4),
            "unanswerable_recall": round(r_neg, 4),
        }
    )
    summary.update(verdict_summary(rows))
    return summary


def evaluate(systems: dict[str, System], questions: list[dict]) -> dict:
    report: dict = {"systems": {}, "rows": {}}
    for name, system in systems.items():
        started = time.perf_counter()
        rows = [score_question(q, system(q["question"])) for q in questions]
        elapsed = time.perf_counter() - started
        groups = {"all": rows}
        for split in sorted({r["split"] for r in rows}):
            groups[f"split={split}"] = [r for r in rows if r["split"] == split]
        for kind in sorted({r["kind"] for r in rows if r["answerable"]}):
            groups[f"kind={kind}"] = [r for r in rows if r["kind"] == kind or not r["answerable"]]
        report["systems"][name] = {group: summarize(group_rows) for group, group_rows in groups.items()}
        report["systems"][name]["all"]["seconds"] = round(elapsed, 2)
        report["rows"][name] = rows
    return report


def fit_answerability(rows: list[dict]) -> dict | None:
    """Refit the answerability model on these rows (use the dev split only)."""
    from rag.answerable import fit

    try:
        return fit([tuple(r["features"]) for r in rows], [r["answerable"] for r in rows]).as_dict()
    except ValueError:
        return None


# --- reporting ---------------------------------------------------------------------------

COLUMNS = ["r@1", "r@3", "r@5", "r@10", "mrr@10", "ndcg@10", "highlight@1", "mean_chars"]


def table(report: dict, group: str) -> str:
    lines = [f"| system | n | {' | '.join(COLUMNS)} | ans P/R | unans P/R |", "|" + "---|" * (len(COLUMNS) + 4)]
    for name, groups in report["systems"].items():
        s = groups.get(group)
        if not s:
            continue
        cells = [f"{s[c]:.0f}" if c == "mean_chars" else f"{s[c]:.3f}" for c in COLUMNS]
        answer = f"{s['answerable_precision']:.2f}/{s['answerable_recall']:.2f}"
        unanswer = f"{s['unanswerable_precision']:.2f}/{s['unanswerable_recall']:.2f}"
        lines.append(f"| {name} | {s['questions']} | {' | '.join(cells)} | {answer} | {unanswer} |")
    return "\n".join(lines)


def misses(report: dict, system: str, questions: list[dict], k: int = 5) -> list[str]:
    by_id = {q["id"]: q for q in questions}
    out = []
    for row in report["rows"][system]:
        if row["answerable"] and (row["rank"] is None or row["rank"] > k):
            q = by_id[row["id"]]
            got = " / ".join(t[:70].replace("\n", " ") + "…" for t in row["top"][:2])
            out.append(f"- {row['id']} [{row['split']}, {row['kind']}] rank {row['rank']}: {q['question']}\n"
                       f"    wanted: {q['quotes'][0][:100]}\n    got:    {got}")
    return out


def plot(report: dict, path: Path, group: str = "split=test") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, groups in report["systems"].items():
        s = groups[group]
        ax.plot(KS, [s[f"r@{k}"] for k in KS], marker="o", label=f"{name} (mean {s['mean_chars']:.0f} chars)")
    ax.set_xlabel("k (passages returned)")
    ax.set_ylabel("recall@k")
    ax.set_xticks(KS)
    ax.set_ylim(0.4, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(f"Recall@k on the {group.split('=')[-1]} split ({report['systems'][next(iter(report['systems']))][group]['questions']} questions)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_cli(settings: Settings, split: str | None = None, plot_png: bool = True) -> int:
    from rag.service import Service

    service = Service.open(settings)
    questions = [q for q in load_questions() if split is None or q["split"] == split]
    systems = {mode: service_system(service, mode) for mode in ("hybrid", "dense", "lexical")}
    systems["baseline (1000/200 chars, dense)"] = baseline_system(service)
    report = evaluate(systems, questions)
    report["index"] = service.info()
    report["answerability_in_use"] = service.retriever.verdict_model.as_dict()
    dev_rows = [r for r in report["rows"]["hybrid"] if r["split"] == "dev"]
    report["answerability_fit_on_dev"] = fit_answerability(dev_rows)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / ("eval.json" if split is None else f"eval-{split}.json")  # the full run is the reference
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    for group in ["all", "split=dev", "split=test"] + sorted(g for g in report["systems"]["hybrid"] if g.startswith("kind=")):
        if group in report["systems"]["hybrid"]:
            print(f"\n### {group}\n{table(report, group)}\n{verdict_table(report, group)}")
    print(f"\nanswerability model in use {report['answerability_in_use']}\n  refitted on dev:         {report['answerability_fit_on_dev']}")
    missed = misses(report, "hybrid", questions)
    print(f"\nhybrid misses at 5 ({len(missed)}):\n" + "\n".join(missed))
    if plot_png and "split=test" in report["systems"]["hybrid"]:
        plot(report, RESULTS_DIR / "recall.png")
        print(f"\nwrote {out} and {RESULTS_DIR / 'recall.png'}")
    return 0


# --- the verdict (issue 12) ----------------------------------------------------------------
# "off-topic" is the first unanswerable batch (kind "unanswerable"); "near-topic" the second (facts the article
# does not give about people and events it names).

VERDICT_COLUMNS = ["auroc_near", "auroc_all", "kept_answerable", "refused_off_topic", "refused_near_topic"]


def verdict_summary(rows: list[dict]) -> dict:
    """AUROC of `confidence` (answerable vs near-topic, vs every unanswerable), kept/refused rates, three-way counts."""
    answerable = [r for r in rows if r["answerable"]]
    near = [r for r in rows if r["kind"] == "near-topic"]
    off = [r for r in rows if r["kind"] == "unanswerable"]

    def area(negatives: list[dict]) -> float | None:
        both = answerable + negatives
        return round(metrics.auroc([r["confidence"] for r in both], [r["answerable"] for r in both]), 4) if answerable and negatives else None

    out = {
        "auroc_near": area(near),
        "auroc_all": area(near + off),
        "kept_answerable": round(metrics.kept_rate(r["predicted_answerable"] for r in answerable), 4),
        "refused_off_topic": round(metrics.refused_rate(r["predicted_answerable"] for r in off), 4),
        "refused_near_topic": round(metrics.refused_rate(r["predicted_answerable"] for r in near), 4),
    }
    for name, group in (("answerable", answerable), ("off_topic", off), ("near_topic", near)):
        out[f"verdicts_{name}"] = {v: sum(1 for r in group if r.get("verdict") == v) for v in ("found", "uncertain", "not_found")}
    return out


def verdict_table(report: dict, group: str) -> str:
    lines = [f"| system | {' | '.join(VERDICT_COLUMNS)} | found/uncertain/not_found: answerable · off-topic · near-topic |", "|" + "---|" * (len(VERDICT_COLUMNS) + 2)]
    for name, groups in report["systems"].items():
        s = groups.get(group)
        if not s or not any(s["verdicts_answerable"].values()):  # the system gives no verdict (the baseline)
            continue
        cells = ["–" if s[c] is None else f"{s[c]:.3f}" for c in VERDICT_COLUMNS]
        three = " · ".join("/".join(str(s[f"verdicts_{g}"][v]) for v in ("found", "uncertain", "not_found")) for g in ("answerable", "off_topic", "near_topic"))
        lines.append(f"| {name} | {' | '.join(cells)} | {three} |")
    return "\n".join(lines)
