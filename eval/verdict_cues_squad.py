"""Lexical cues for the default (bi-encoder) verdict on SQuAD 2.0: a measurement, not a library part.

SQuAD 2.0's unanswerable questions are written to look answerable from their paragraph, so the bi-encoder verdict
barely separates them (AUROC 0.63). This script asks whether cheap lexical cues between the question and the top
three sentence windows would help the default verdict where it is weak without costing the bundled article: how
much of the question's rarity-weighted terms no window holds (`missing`), the best window's coverage (`covered`),
the share of the question's capitalised words and numbers absent from the windows (`names_absent`), and whether
the question carries a negation (`negation`: a crowd-writing artefact of SQuAD 2.0, whose shares the report prints
as `negation_share`, measured here only to show how much of any gain it would be).
Each set is refitted leave-one-article-out over all the cached items of eval/train_verifier.py (the 10 SQuAD tune
articles and the bundled dev questions, counted DEV_WEIGHT times), so every figure comes from a fit that never saw
the question's article. It prints a JSON report; nothing is written.

    python -m eval.verdict_cues_squad
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

from eval import train_verifier as training
from eval.metrics import auroc

NAME = re.compile(r"\b(?:[A-Z][a-z]+|\d[\d,.]*)\b")
NEGATION = re.compile(r"\b(?:not|never|no)\b|n't\b")
CUES = ("missing", "covered", "names_absent", "negation")
SETS = {
    "bi-encoder features (answer_type, relation_cos)": (),
    "+ missing": ("missing",),
    "+ missing, covered, names_absent": ("missing", "covered", "names_absent"),
    "+ all four, negation included": CUES,
}


def term_function():
    """Stemmed content terms as BM25 reads them (rag.index.lexical.tokens: its stop words include the question words)."""
    import Stemmer

    from rag.index.lexical import STEMMER, tokens

    stemmer = Stemmer.Stemmer(STEMMER)
    return lambda text: set(tokens([text], stemmer)[0])


def cues(item, terms, idf) -> dict[str, float]:
    question = terms(item.question)
    windows = [terms(w) for w in item.windows[:3]] or [set()]
    held = set().union(*windows)
    total = sum(idf(t) for t in question) or 1.0
    names = NAME.findall(item.question)[1:]  # the first word is capitalised anyway
    text = " ".join(item.windows[:3])
    return {
        "missing": sum(idf(t) for t in question - held) / total,
        "covered": max(sum(idf(t) for t in question & w) / total for w in windows),
        "names_absent": sum(n not in text for n in names) / max(1, len(names)),
        "negation": 1.0 if NEGATION.search(item.question.lower()) else 0.0,
    }


def main() -> int:
    items = training.collect()
    terms = term_function()
    frequency, windows = Counter(), 0
    for item in items:
        for window in item.windows:
            frequency.update(terms(window))
            windows += 1
    idf = lambda t: math.log((windows + 1) / (frequency.get(t, 0) + 1))  # noqa: E731
    found = [cues(i, terms, idf) for i in items]
    by_source = {s: [k for k, i in enumerate(items) if i.source == s] for s in ("squad", "dev")}
    report: dict = {"questions": {s: len(k) for s, k in by_source.items()}, "alone": {}, "verdict": {},
                    "negation_share": {s: {kind: round(sum(found[k]["negation"] for k in chosen if items[k].answerable == kind)
                                                       / max(1, sum(items[k].answerable == kind for k in chosen)), 3)
                                           for kind in (True, False)} for s, chosen in by_source.items()}}
    for source, chosen in by_source.items():
        labels = [items[k].answerable for k in chosen]
        # oriented so that higher means "answerable": covered as is, the others negated
        report["alone"][source] = {c: round(auroc([(found[k][c] if c == "covered" else -found[k][c]) for k in chosen], labels), 4) for c in CUES}
    for label, names in SETS.items():
        rows = [(*i.features, *(f[c] for c in names)) for i, f in zip(items, found)]
        probabilities = training.leave_one_group_out_rows(items, rows)
        report["verdict"][label] = {s: round(auroc([probabilities[k] for k in chosen], [items[k].answerable for k in chosen]), 4)
                                    for s, chosen in by_source.items()}
    report["negation_share"] = {s: {"answerable" if k else "unanswerable": v for k, v in shares.items()}
                                for s, shares in report["negation_share"].items()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
