"""Which sentence of the top passage answers: the highlight's rules against learned weights, on SQuAD and the
bundled questions. A measurement, not a library part.

The highlight (rag.query.highlight) scores each sentence of a passage by its cosine with the question plus
TERM_WEIGHT times the rarity-weighted share of the question's terms it holds, with bonuses and penalties chosen
on the bundled dev questions. This script collects, for every answerable question, the top passage's sentences
as the highlighter sees them (its `Candidate`s) and which of them hold the answer (SQuAD: overlap with a gold
answer span of the question's paragraph; bundled: a gold quote, rag eval's rule), then scores other ways of
choosing, each fitted leave-one-article-out over the 10 SQuAD tune articles and the bundled dev questions, so a
SQuAD figure comes from a fit that never saw the article and the bundled one from a fit on SQuAD alone. The
bundled test questions are scored only by fits that saw no bundled question.

    python -m eval.highlight_squad [--refresh]

It prints a JSON report (and writes it to eval/runs/highlight/report.json); the collected candidates are cached
in eval/runs/highlight/candidates.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import numpy as np

from eval import train_verifier as training
from eval.evaluation import load_questions
from eval.harness import RUNS, write_json

WORK = RUNS / "highlight"


def _bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(zip(tokens, tokens[1:]))


def collect_questions(service, questions, holds_of) -> list[dict]:
    """Per answerable question: its group, and the top passage's candidates with features and labels."""
    from rag.index.lexical import tokens
    from rag.query import highlight as hl

    retriever = service.snapshot.retriever
    rows = []
    for q in questions:
        query = service.parse(q["question"])
        result = retriever.search(query)
        if not result.hits:
            continue
        top = result.hits[0]
        i = retriever.position[top.passage.id]
        embedded = retriever.encoder.embed_question(q["question"])
        terms = retriever.lexical.terms(q["question"])
        cands = retriever.highlighter.candidates(i, embedded.vector, q["question"], terms)
        chosen, _ = hl.choose(cands)
        q_tokens = tokens([q["question"]])[0]
        q_bigrams = _bigrams(q_tokens)
        best_cos = max(c.cosine for c in cands)
        feats, labels = [], []
        for k, c in enumerate(cands):
            ctx = hl.in_context(cands, k)
            s_tokens = tokens([c.text])[0]
            bigram = len(q_bigrams & _bigrams(s_tokens)) / len(q_bigrams) if q_bigrams else 0.0
            feats.append({
                "cosine": c.cosine, "context_cosine": ctx.cosine, "coverage": c.coverage, "typed": float(c.typed),
                "names": float(c.names and c.coverage > 0), "question": float(hl.is_question(c.text)),
                "transitional": float(hl.is_transitional(c)), "bigram": bigram, "gap": best_cos - c.cosine,
                "first": float(k == 0), "words": math.log1p(len(c.text.split())),
                "rules": hl.score(ctx),
            })
            labels.append(int(holds_of(q, top.passage.document, c.start, c.end, c.text)))
        for k, f in enumerate(feats):  # what the neighbours say: SQuAD's answer is often the sentence after the paraphrase
            f["previous_cosine"] = feats[k - 1]["cosine"] if k else 0.0
            f["previous_coverage"] = feats[k - 1]["coverage"] if k else 0.0
            f["next_cosine"] = feats[k + 1]["cosine"] if k + 1 < len(feats) else 0.0
            f["typed_after_match"] = f["typed"] * f["previous_coverage"]
        rows.append({"id": q["id"], "group": q["group"], "split": q.get("split", ""), "chosen": chosen,
                     "features": feats, "labels": labels})
    return rows


def collect(refresh: bool = False) -> list[dict]:
    cache = WORK / "candidates.json"
    if cache.exists() and not refresh:
        return json.loads(cache.read_text())
    rows = []
    data = json.loads((training.SQUAD / "squad2-tune.json").read_text(encoding="utf-8"))["data"]
    service = training.open_service(training.SQUAD / "articles", training.WORK / "squad-index")
    by_stem = {d.path.stem: d for d in service.snapshot.documents.values()}
    for article in data:
        doc = by_stem[article["title"]]
        spans = training.squad_spans(doc.text, article["paragraphs"])
        qs = [{"id": qa["id"], "question": qa["question"], "group": article["title"], "spans": spans.get(qa["id"], []),
               "doc": doc.id}
              for p in article["paragraphs"] for qa in p["qas"] if not qa.get("is_impossible") and spans.get(qa["id"])]

        def holds(q, doc_id, start, end, text):
            return doc_id == q["doc"] and any(training.overlaps((start, end), tuple(s)) for s in q["spans"])

        rows += collect_questions(service, qs, holds)
    service = training.open_service(training.ROOT / "seeds", training.WORK / "seed-index")
    qs = [{"id": q.id, "question": q.question, "group": "bundled", "split": q.split, "quotes": q.quotes}
          for q in load_questions() if q.answerable]

    def holds_quote(q, doc_id, start, end, text):
        return any(training.quote_in(text, quote) for quote in q["quotes"])

    rows += collect_questions(service, qs, holds_quote)
    write_json(cache, rows)
    return rows


FEATURE_SETS = {
    "rules' score alone, refitted scale": ("rules",),
    "rules + bigrams": ("rules", "bigram"),
    "rules + bigrams + coverage": ("rules", "bigram", "coverage"),
    "cosine + coverage": ("context_cosine", "coverage"),
    "+ rules' flags": ("context_cosine", "coverage", "typed", "names", "question", "transitional"),
    "+ bigrams": ("context_cosine", "coverage", "typed", "names", "question", "transitional", "bigram"),
    "+ bigrams, gap, first, length": ("context_cosine", "coverage", "typed", "names", "question", "transitional", "bigram",
                                      "gap", "first", "words"),
    "+ neighbours": ("context_cosine", "coverage", "typed", "names", "question", "transitional", "bigram",
                     "gap", "first", "words", "previous_cosine", "previous_coverage", "next_cosine", "typed_after_match"),
    "rules + neighbours": ("rules", "coverage", "typed", "previous_cosine", "previous_coverage", "typed_after_match"),
}


def fit_softmax(rows: list[dict], names: tuple[str, ...], weights: list[float], l2: float = 1e-3) -> np.ndarray:
    """A linear scorer over the sentences of a passage, fitted to the softmax loss of the answer-holding sentences
    (minus the log of their summed probability), weighted per question, L-BFGS (scipy)."""
    from scipy.optimize import minimize

    data = [(np.array([[f[n] for n in names] for f in r["features"]]), np.array(r["labels"], bool), w)
            for r, w in zip(rows, weights) if any(r["labels"]) and not all(r["labels"])]
    total = sum(w for _, _, w in data)

    def loss(theta):
        value, grad = 0.5 * l2 * theta @ theta, l2 * theta
        for x, y, w in data:
            s = x @ theta
            p = np.exp(s - s.max())
            p /= p.sum()
            held = p[y].sum()
            value -= w * math.log(max(held, 1e-300)) / total
            q = np.where(y, p, 0.0) / max(held, 1e-300)
            grad = grad + w * (x.T @ (p - q)) / total
        return value, grad

    return minimize(loss, np.zeros(len(names)), jac=True, method="L-BFGS-B").x


def chosen_by(row: dict, names: tuple[str, ...], theta: np.ndarray) -> int:
    scores = [sum(t * f[n] for t, n in zip(theta, names)) for f in row["features"]]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def share(rows: list[dict], picks: list[int]) -> float:
    return round(sum(r["labels"][k] for r, k in zip(rows, picks)) / len(rows), 4) if rows else 0.0


def evaluate(rows: list[dict], names: tuple[str, ...], dev_weight: float = training.DEV_WEIGHT) -> dict:
    """Leave one article out: every SQuAD article, and the bundled article (its dev questions, counted `dev_weight`
    times, train the SQuAD folds; its dev and test questions are scored by a fit on SQuAD alone). Also the weights of
    one fit on everything but the bundled test split: what would ship."""
    def weights(part):
        return [dev_weight if r["group"] == "bundled" else 1.0 for r in part]

    picks = {}
    for group in sorted({r["group"] for r in rows}):
        train = [r for r in rows if r["group"] != group and r["split"] != "test"]
        theta = fit_softmax(train, names, weights(train))
        picks.update({r["id"]: chosen_by(r, names, theta) for r in rows if r["group"] == group})
    fitted = [r for r in rows if r["split"] != "test"]
    final = fit_softmax(fitted, names, weights(fitted))
    return {"picks": picks, "weights_all": dict(zip(names, np.round(final, 4).tolist()))}


def summary(rows: list[dict], picks: dict) -> dict:
    squad = [r for r in rows if r["group"] != "bundled"]
    out = {"squad": share(squad, [picks[r["id"]] for r in squad])}
    for split in ("dev", "test"):
        part = [r for r in rows if r["group"] == "bundled" and r["split"] == split]
        out[f"bundled {split}"] = share(part, [picks[r["id"]] for r in part])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="collect the candidates again")
    args = parser.parse_args(argv)
    rows = collect(args.refresh)
    report = {"questions": {"squad": sum(r["group"] != "bundled" for r in rows),
                            "bundled": sum(r["group"] == "bundled" for r in rows)}}
    report["top passage holds the answer somewhere"] = summary(rows, {r["id"]: int(np.argmax(r["labels"])) for r in rows})
    report["rules (shipped)"] = summary(rows, {r["id"]: r["chosen"] for r in rows})
    for name, names in FEATURE_SETS.items():
        result = evaluate(rows, names)
        report[name] = {**summary(rows, result["picks"]), "weights": result["weights_all"]}
    write_json(WORK / "report.json", report)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
