"""TREC run and qrels files: the evaluation's results in the format the field's tools read.

``run.trec`` holds one line per retrieved passage, ``qid Q0 passage_id rank score tag`` (the tag
names the system, e.g. ``hybrid``); ``qrels.trec`` one line per relevant passage, ``qid 0
passage_id rel``. `trec_eval`, `ranx` and `ir_measures` order a run by score, not by the rank
column, and break ties by passage id; so `write_run` makes scores strictly decreasing down each
list (a tie or an increase is nudged 1e-6 below the one before) and the tools see our ranking.
`standard_metrics` scores the two files with ir_measures (pytrec_eval): Success@k is our recall@k
(hit rate), RR@k our MRR@k, nDCG@k our nDCG with the ideal taken over every relevant passage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

TIE_STEP = 1e-6


def strictly_decreasing(scores: Sequence[float], digits: int = 6) -> list[float]:
    """The scores rounded, each nudged below the previous one where it would tie or rise."""
    out: list[float] = []
    for score in scores:
        value = round(float(score), digits)
        if out and value >= out[-1]:
            value = round(out[-1] - TIE_STEP, digits)
        out.append(value)
    return out


def run_lines(qid: str, passage_ids: Sequence[str], scores: Sequence[float], tag: str) -> list[str]:
    if any(c.isspace() for c in tag):
        raise ValueError(f"a run tag cannot hold whitespace: {tag!r}")
    return [
        f"{qid} Q0 {pid} {rank} {score:.6f} {tag}"
        for rank, (pid, score) in enumerate(zip(passage_ids, strictly_decreasing(scores)), start=1)
    ]


def qrels_lines(qid: str, relevant: Mapping[str, int]) -> list[str]:
    return [f"{qid} 0 {pid} {rel}" for pid, rel in relevant.items()]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_run(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """tag -> qid -> passage id -> score."""
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        qid, _, pid, _rank, score, tag = line.split()
        runs.setdefault(tag, {}).setdefault(qid, {})[pid] = float(score)
    return runs


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """qid -> passage id -> relevance."""
    qrels: dict[str, dict[str, int]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        qid, _, pid, rel = line.split()
        qrels.setdefault(qid, {})[pid] = int(rel)
    return qrels


def standard_metrics(run_path: Path, qrels_path: Path, k: int = 10, ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, dict]:
    """Per run tag, ir_measures' means over the questions in qrels: {"r@1": ..., "mrr@10": ..., "ndcg@10": ...}.

    Also per question, under "per_question": {qid: {name: value}}.
    """
    import ir_measures
    from ir_measures import RR, Success, nDCG

    names = {Success @ c: f"r@{c}" for c in ks if c <= k}
    names.update({RR @ k: f"mrr@{k}", nDCG @ k: f"ndcg@{k}"})
    qrels = read_qrels(qrels_path)
    out: dict[str, dict] = {}
    for tag, run in read_run(run_path).items():
        per_question: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
        for m in ir_measures.iter_calc(list(names), qrels, run):
            per_question[m.query_id][names[m.measure]] = float(m.value)
        for qid, values in per_question.items():  # a question with no retrieved passage: pytrec_eval leaves it out
            for name in names.values():
                values.setdefault(name, 0.0)
        n = len(per_question)
        means = {name: sum(v[name] for v in per_question.values()) / n if n else 0.0 for name in names.values()}
        out[tag] = {"questions": n, **means, "per_question": per_question}
    return out
