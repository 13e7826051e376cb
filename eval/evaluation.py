"""Retrieval evaluation: run systems over a question set, score them, compare them, write the run.

A *system* maps a question to a ranked list of passages: the service in each mode (for each
configuration being compared), or the baseline that the common tutorial pipeline builds (fixed
1,000-character chunks with 200 overlap over the raw file, dense only, same model; bundled set
only, as its windows have no passage ids). Question files are read by `eval.evalset`, scoring
rules live in `eval.metrics`, TREC files in `eval.trec`, the paired test and AUROC in
`eval.evalstats`.

Gold is resolved over the WHOLE index before any system runs (`resolve_gold`): the passages that
hold a quote (as `eval.metrics.quote_hit` rules; within the question's document and, for SQuAD, its
paragraph's span), the passage ids given, or every passage of a gold document (BEIR). A quote of fewer
than four words that more than two passages hold is reported as ambiguous (`ambiguous_quotes`), not
scored silently. A BEIR folder's or a SQuAD file's corpus becomes a seeds folder of its own in the
evaluation cache (`beir_config`, `squad_config`), never the user's seeds/; a SQuAD run is also reported
per article (`article_table`). A retrieved passage is relevant when its id is in that set, so the numbers here
and those `ir_measures` computes from run.trec and qrels.trec are the same: recall@k is the hit
rate (the first relevant passage within k), MRR@k the reciprocal rank of that first hit, nDCG@k
binary with the ideal over every relevant passage of the index.

`run_cli` is the `rag eval` command: it writes metrics.json, per_question.jsonl, run.trec (and
run.<system>.trec for every other system), qrels.trec, report.json and recall.png into a new folder (default eval/runs/<time>/, ignored by
git), building them in a temp folder renamed into place at the end so a failed run leaves nothing
half-written; the bundled run also rewrites the compact tracked summary eval/results/summary.json.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from eval import evalstats
from eval import metrics
from eval import trec
from rag.config import MODES, PROJECT_ROOT, Settings
from rag.query.request import clean_question
from rag.errors import InvalidInput
from eval.evalset import Question, is_squad, load_beir_corpus, load_squad
from eval.evalset import load_questions as _load_questions

EVAL_DIR = PROJECT_ROOT / "eval"
QUESTIONS = EVAL_DIR / "questions.jsonl"
RESULTS_DIR = EVAL_DIR / "results"  # tracked: summary.json and recall.png only
RUNS_DIR = EVAL_DIR / "runs"  # ignored: one folder per run, and the cache of indexes built for evaluation
CACHE_DIR = RUNS_DIR / ".cache"
KS = (1, 3, 5, 10)
DEPTH = 10
BASELINE = "baseline (1000/200 chars, dense)"


@dataclass(frozen=True)
class Retrieved:
    text: str
    score: float
    id: str | None = None  # passage id (None for the baseline's windows)
    document: str | None = None


@dataclass(frozen=True)
class Answer:
    passages: tuple[Retrieved, ...]  # best first
    answerable: bool
    confidence: float
    highlight: str | None  # the top passage's highlighted sentence, if the system marks one
    features: tuple[float, ...] = ()  # the verdict's features (rag.query.verdict.VerdictFeatures)
    verdict: str | None = None  # found / uncertain / not_found, if the system gives one

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.passages]


System = Callable[[str], Answer]


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    return _load_questions(path)


def ks_for(k: int) -> list[int]:
    return sorted({c for c in KS if c <= k} | {k})


# --- systems ------------------------------------------------------------------------------


def service_system(service, mode: str, k: int = DEPTH, document_names: dict[str, str] | None = None) -> System:
    names = document_names or {}

    def run(question: str) -> Answer:
        result = service.query(service.parse(question, k, mode))
        top = result.hits[0].highlight.text if result.hits else None
        passages = tuple(
            Retrieved(h.passage.text, h.score, h.passage.id, names.get(h.passage.document, h.passage.document)) for h in result.hits
        )
        features = result.features.values() if result.features else ()
        return Answer(passages, result.answerable, result.confidence, top, features, result.verdict)

    return run


def baseline_system(service, chunk_chars: int = 1000, overlap: int = 200, k: int = DEPTH) -> System:
    """The tutorial pipeline: fixed-size character windows over each whole file, dense only."""
    import faiss

    windows = []
    for doc in service.documents.values():
        step = chunk_chars - overlap
        windows += [doc.text[i : i + chunk_chars] for i in range(0, max(len(doc.text) - overlap, 1), step)]
    encoder = service.snapshot.retriever.encoder
    vectors = encoder.encode(windows)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)

    def run(question: str) -> Answer:
        scores, ids = index.search(encoder.encode([question]), k)
        passages = tuple(Retrieved(windows[i], float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0)
        return Answer(passages, True, float(scores[0][0]), None)

    return run


# --- gold ---------------------------------------------------------------------------------


def resolve_gold(question: Question, passages: Sequence, document_names: dict[str, str] | None = None) -> dict[str, int]:
    """Passage id -> 1 for every passage of the index that is gold for `question`."""
    names = document_names or {}
    ids = set(question.passages)
    documents = set(question.documents)
    relevant = {}
    for p in passages:
        if p.id in ids or names.get(p.document, p.document) in documents:
            relevant[p.id] = 1
        elif in_quote_scope(question, p, names) and any(metrics.quote_hit(p.text, q) for q in question.quotes):
            relevant[p.id] = 1
    return relevant


def in_quote_scope(question: Question, passage, names: dict[str, str]) -> bool:
    """Whether `passage` may hold the question's quotes: any passage, or one of its `document`, or one of that
    document overlapping its `span` (a SQuAD question's paragraph)."""
    if not question.quotes:
        return False
    if question.document is not None and question.document != names.get(passage.document, passage.document):
        return False
    return question.span is None or (passage.start < question.span[1] and passage.end > question.span[0])


AMBIGUOUS_WORDS = 4  # a quote of fewer words ...
AMBIGUOUS_PASSAGES = 2  # ... that more passages than this hold is ambiguous


def ambiguous_quotes(question: Question, passages: Sequence, document_names: dict[str, str] | None = None) -> dict[str, int]:
    """The question's short quotes (fewer than AMBIGUOUS_WORDS words) that more than AMBIGUOUS_PASSAGES passages in
    its scope hold, with how many: such a quote makes passages gold by chance ("on Linux"), so it is reported."""
    names = document_names or {}
    out = {}
    for quote in question.quotes:
        if metrics.word_count(quote) >= AMBIGUOUS_WORDS:
            continue
        hits = sum(1 for p in passages if in_quote_scope(question, p, names) and metrics.quote_hit(p.text, quote))
        if hits > AMBIGUOUS_PASSAGES:
            out[quote] = hits
    return out


# --- scoring ------------------------------------------------------------------------------


def score_question(question: Question, answer: Answer, relevant: dict[str, int] | None = None, k: int = DEPTH) -> dict:
    """One row: the question's rank metrics at depth k and its verdict.

    With `relevant` (gold resolved over the index) a passage is relevant by id; without it (the
    baseline's windows) by holding a quote, as `eval.metrics` rules.
    """
    if relevant is not None and all(p.id is not None for p in answer.passages):
        relevances = [int(p.id in relevant) for p in answer.passages[:k]]
        n_relevant = len(relevant)
    else:
        relevances = metrics.passage_relevances(answer.texts[:k], question.quotes)
        n_relevant = None
    rank = relevances.index(1) + 1 if 1 in relevances else None
    row = {
        "id": question.id,
        "kind": question.kind,
        "split": question.split,
        **({"article": question.article} if question.article is not None else {}),
        "answerable": question.answerable,
        "predicted_answerable": answer.answerable,
        "confidence": round(answer.confidence, 4),
        "features": answer.features,
        "verdict": answer.verdict,
        "rank": rank,
        "highlight": answer.highlight,
        "returned_chars": metrics.mean(len(t) for t in answer.texts[:5]),
        "top": [t[:120] for t in answer.texts[:3]],
        "passages": [
            {"id": p.id, "document": p.document, "rank": i, "score": round(p.score, 6), "gold": bool(r)}
            for i, (p, r) in enumerate(zip(answer.passages[:k], relevances), start=1)
        ],
    }
    # an answerable question whose gold matches no passage of the index cannot be ranked (a typo in a quote, a
    # passage id from another index): it is left out of the rank metrics and reported, as trec_eval leaves it out
    row["scored"] = question.answerable and (relevant is None or bool(relevant))
    if row["scored"]:
        row.update({f"r@{c}": metrics.recall_at_k(rank, c) for c in ks_for(k)})
        row[f"mrr@{k}"] = metrics.reciprocal_rank(rank, k)
        row[f"ndcg@{k}"] = metrics.ndcg_at_k(relevances, k, n_relevant)
        if question.quotes:  # the top passage is gold and its highlight holds a quote (not a year that recurs elsewhere)
            holds = bool(answer.highlight and any(metrics.quote_hit(answer.highlight, q) for q in question.quotes))
            row["highlight_hit"] = holds and rank == 1
    return row


def rank_metrics(k: int) -> list[str]:
    return [f"r@{c}" for c in ks_for(k)] + [f"mrr@{k}", f"ndcg@{k}"]


def summarize(rows: list[dict], k: int = DEPTH) -> dict:
    answerable = [r for r in rows if r["scored"]]
    summary = {"questions": len(answerable)}
    for key in rank_metrics(k):
        summary[key] = round(metrics.mean(r[key] for r in answerable), 4)
    summary["mean_chars"] = round(metrics.mean(r["returned_chars"] for r in answerable), 1)
    highlights = [float(r["highlight_hit"]) for r in answerable if "highlight_hit" in r]
    summary["highlight@1"] = round(metrics.mean(highlights), 4) if highlights else None
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
    verdict = verdict_summary(rows)
    summary["confidence_auroc"] = verdict["auroc_all"]  # answerable against every unanswerable: all the rows
    summary.update(verdict)
    return summary


def evaluate(
    systems: dict[str, System], questions: list[Question], gold: dict[str, dict[str, dict[str, int]]] | None = None, k: int = DEPTH
) -> dict:
    """Run and score every system. `gold`: system name -> question id -> relevant passage ids (see resolve_gold)."""
    report: dict = {"systems": {}, "rows": {}}
    for name, system in systems.items():
        relevant = (gold or {}).get(name)
        started = time.perf_counter()
        rows = [score_question(q, system(q.question), None if relevant is None else relevant[q.id], k) for q in questions]
        elapsed = time.perf_counter() - started
        groups = {"all": rows}
        for split in sorted({r["split"] for r in rows if r["split"] is not None}):
            groups[f"split={split}"] = [r for r in rows if r["split"] == split]
        for kind in sorted({r["kind"] for r in rows if r["answerable"] and r["kind"] is not None}):
            groups[f"kind={kind}"] = [r for r in rows if r["kind"] == kind or not r["answerable"]]
        for article in sorted({r["article"] for r in rows if "article" in r}):  # SQuAD: its answerable and unanswerable
            groups[f"article={article}"] = [r for r in rows if r.get("article") == article]
        report["systems"][name] = {group: summarize(group_rows, k) for group, group_rows in groups.items()}
        report["systems"][name]["all"]["seconds"] = round(elapsed, 2)
        report["rows"][name] = rows
    return report


def compare(report: dict, k: int = DEPTH, rounds: int = 10_000) -> list[dict]:
    """The first system against each other one, per rank metric over the scored (answerable) questions:
    means, paired randomization p-value, wins/losses/ties, and which questions moved (by first-hit rank)."""
    names = list(report["rows"])
    out = []
    for other in names[1:]:
        b_by_id = {r["id"]: r for r in report["rows"][other] if r["scored"]}
        a_rows = [r for r in report["rows"][names[0]] if r["scored"] and r["id"] in b_by_id]  # scored by both
        b_rows = [b_by_id[r["id"]] for r in a_rows]
        entry = {"a": names[0], "b": other, "questions": len(a_rows), "metrics": {}}
        for key in rank_metrics(k):
            a, b = [r[key] for r in a_rows], [r[key] for r in b_rows]
            entry["metrics"][key] = {
                "a": round(metrics.mean(a), 4), "b": round(metrics.mean(b), 4),
                "p": round(evalstats.paired_randomization_test(a, b, rounds), 4), **evalstats.wins_losses(b, a),
            }
        rr = f"mrr@{k}"
        entry["b_better"] = [r["id"] for r, s in zip(a_rows, b_rows) if s[rr] > r[rr]]
        entry["b_worse"] = [r["id"] for r, s in zip(a_rows, b_rows) if s[rr] < r[rr]]
        out.append(entry)
    return out


def fit_answerability(rows: list[dict]) -> dict | None:
    """Refit the answerability model on these rows (use the dev split only)."""
    from rag.query.answerable import fit

    try:
        return fit([tuple(r["features"]) for r in rows], [r["answerable"] for r in rows]).as_dict()
    except ValueError:
        return None


# --- reporting ---------------------------------------------------------------------------


def columns(k: int = DEPTH) -> list[str]:
    return rank_metrics(k) + ["highlight@1", "mean_chars"]


def _cell(value, column: str) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if column == "mean_chars" else f"{value:.3f}"


def table(report: dict, group: str, k: int = DEPTH) -> str:
    cols = columns(k)
    lines = [f"| system | n | {' | '.join(cols)} | ans P/R | unans P/R |", "|" + "---|" * (len(cols) + 4)]
    for name, groups in report["systems"].items():
        s = groups.get(group)
        if not s:
            continue
        cells = [_cell(s[c], c) for c in cols]
        answer = f"{s['answerable_precision']:.2f}/{s['answerable_recall']:.2f}"
        unanswer = f"{s['unanswerable_precision']:.2f}/{s['unanswerable_recall']:.2f}"
        lines.append(f"| {name} | {s['questions']} | {' | '.join(cells)} | {answer} | {unanswer} |")
    return "\n".join(lines)


def comparison_table(comparisons: list[dict]) -> str:
    lines = ["| a vs b | metric | a | b | p (paired randomization) | b wins/losses/ties |", "|---|---|---|---|---|---|"]
    for c in comparisons:
        for key, m in c["metrics"].items():
            lines.append(f"| {c['a']} vs {c['b']} | {key} | {m['a']:.3f} | {m['b']:.3f} | {m['p']:.4f} | {m['wins']}/{m['losses']}/{m['ties']} |")
    return "\n".join(lines)


def misses(report: dict, system: str, questions: list[Question], k: int = 5) -> list[str]:
    by_id = {q.id: q for q in questions}
    out = []
    for row in report["rows"][system]:
        if row["scored"] and (row["rank"] is None or row["rank"] > k):
            q = by_id[row["id"]]
            got = " / ".join(t[:70].replace("\n", " ") + "…" for t in row["top"][:2])
            wanted = (q.quotes or q.passages or q.documents or ("?",))[0]
            tags = ", ".join(str(t) for t in (row["split"], row["kind"]) if t is not None)
            out.append(f"- {row['id']}{f' [{tags}]' if tags else ''} rank {row['rank']}: {q.question}\n"
                       f"    wanted: {wanted[:100]}\n    got:    {got}")
    return out


def plot(report: dict, path: Path, group: str = "split=test", k: int = DEPTH) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cutoffs = ks_for(k)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, groups in report["systems"].items():
        s = groups[group]
        ax.plot(cutoffs, [s[f"r@{c}"] for c in cutoffs], marker="o", label=f"{name} (mean {s['mean_chars']:.0f} chars)")
    ax.set_xlabel("k (passages returned)")
    ax.set_ylabel("recall@k")
    ax.set_xticks(cutoffs)
    ax.set_ylim(0.4 if group == "split=test" else 0.0, 1.01)
    ax.grid(alpha=0.3)
    n = report["systems"][next(iter(report["systems"]))][group]["questions"]
    where = f"the {group.split('=')[-1]} split" if group.startswith("split=") else "all questions"
    ax.set_title(f"Recall@k on {where} ({n} questions)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- configurations and corpora --------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    name: str
    settings: Settings
    document_names: dict | None = None  # index document id -> the id the question set uses (BEIR)


def load_config(path: Path, base: Settings, cache: Path = CACHE_DIR) -> Config:
    """A configuration file `{"name": "small-chunks", "settings": {"max_passage_tokens": 120}}` as Settings
    overrides on `base`, with its own index in the evaluation cache (unless it names `index_dir`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"config {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings", {}), dict):
        raise InvalidInput(f"config {path}: expected {{\"name\": ..., \"settings\": {{...}}}}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or any(c.isspace() or c == "/" for c in name):
        raise InvalidInput(f"config {path}: field 'name': a non-empty name without spaces or '/'")
    overrides = data.get("settings", {})
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise InvalidInput(f"config {path}: field 'settings': unknown setting(s) {unknown}")
    digest = _digest(json.dumps({"seeds": str(base.seeds_dir), **overrides}, sort_keys=True, default=str))
    values = {**base.model_dump(), "index_dir": cache / f"config-{name}-{digest}", **overrides}
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"config {path}: setting {'.'.join(map(str, first['loc']))!r}: {first['msg']}") from None
    return Config(name, settings)


def beir_config(folder: Path, base: Settings, cache: Path = CACHE_DIR) -> Config:
    """The corpus of a BEIR folder as a seeds folder of .txt files (titles in sidecars), with its own index."""
    documents = load_beir_corpus(folder)
    digest = _digest((Path(folder) / "corpus.jsonl").read_bytes())
    root = cache / f"beir-{Path(folder).resolve().name}-{digest}"
    seeds = root / "seeds"
    names = {f"d{i:07d}": d.id for i, d in enumerate(documents)}
    if not (root / "seeds.done").exists():
        shutil.rmtree(seeds, ignore_errors=True)  # our own cache folder, never the user's
        seeds.mkdir(parents=True)
        for file_id, doc in zip(names, documents):
            (seeds / f"{file_id}.txt").write_text(doc.text.strip() or doc.title or doc.id, encoding="utf-8")
            if doc.title:
                (seeds / f"{file_id}.meta.json").write_text(json.dumps({"title": doc.title}), encoding="utf-8")
        (root / "seeds.done").write_text("")
    return Config("default", base.model_copy(update={"seeds_dir": seeds, "index_dir": root / "index"}), names)


def squad_config(path: Path, base: Settings, cache: Path = CACHE_DIR) -> Config:
    """The articles of a SQuAD file as a seeds folder of .txt files, one an article (its title in a sidecar), with
    their own index in the evaluation cache: the user's seeds/ are never read or written."""
    articles, _ = load_squad(path)
    digest = _digest(Path(path).read_bytes())
    root = cache / f"squad-{Path(path).stem}-{digest}"
    seeds = root / "seeds"
    names = {f"a{i:04d}": article.title for i, article in enumerate(articles)}
    if not (root / "seeds.done").exists():
        shutil.rmtree(seeds, ignore_errors=True)  # our own cache folder, never the user's
        seeds.mkdir(parents=True)
        for file_id, article in zip(names, articles):
            (seeds / f"{file_id}.txt").write_text(article.text, encoding="utf-8")
            (seeds / f"{file_id}.meta.json").write_text(json.dumps({"title": article.title.replace("_", " ")}), encoding="utf-8")
        (root / "seeds.done").write_text("")
    return Config("default", base.model_copy(update={"seeds_dir": seeds, "index_dir": root / "index"}), names)


def base_config(source: Path, settings: Settings, cache: Path = CACHE_DIR) -> Config:
    """The configuration a question source implies: a BEIR folder's or a SQuAD file's own corpus, else the settings'."""
    if source.is_dir():
        return beir_config(source, settings, cache)
    if is_squad(source):
        return squad_config(source, settings, cache)
    return Config("default", settings)


def _digest(data: str | bytes) -> str:
    import hashlib

    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:12]


# --- the command ---------------------------------------------------------------------------


def run_cli(
    settings: Settings,
    questions: Path | None = None,
    out: Path | None = None,
    modes: Sequence[str] | None = None,
    k: int = DEPTH,
    split: str | None = None,
    plot_png: bool = True,
    configs: Sequence[Path] = (),
    cache: Path = CACHE_DIR,
    encoders=None,
) -> int:
    """`rag eval`: score `questions` (a JSONL file or a BEIR folder; default the bundled set) in `modes`
    (default all three) for the current settings and each configuration file, print the tables, write
    the run folder `out` (default eval/runs/<UTC time>/). The bundled set with no split also rewrites
    the tracked eval/results/summary.json and recall.png. `cache` holds the indexes built for BEIR
    corpora and configurations (default eval/runs/.cache/). `encoders` (rag.encoding.encoders.Encoders) shares an
    already-loaded model with every configuration that uses the same one. Returns the exit code."""
    modes = list(MODES) if not modes or "all" in modes else list(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InvalidInput(f"unknown mode {bad[0]!r}; use one of {', '.join(MODES)} or all")
    if not 1 <= k <= settings.max_top_k:
        raise InvalidInput(f"--k must be between 1 and {settings.max_top_k} (RAG_MAX_TOP_K), got {k}")
    bundled = questions is None
    source = Path(questions) if questions is not None else QUESTIONS
    out = Path(out) if out is not None else RUNS_DIR / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} already exists and is not an empty folder; give a new --out")
    question_list = load_questions(source)
    check_questions(question_list, source, settings.max_question_chars)
    if split is not None:
        question_list = [q for q in question_list if q.split == split]
        if not question_list:
            raise InvalidInput(f"no question in {source.name} has \"split\": {split!r}")
    base = base_config(source, settings, cache)
    config_list = [base] + [replace(load_config(p, base.settings, cache), document_names=base.document_names) for p in configs]
    names = [c.name for c in config_list]
    if len(set(names)) < len(names):
        raise InvalidInput(f"two configurations share a name: {names}")

    systems, gold, runs, info, first_service, ambiguous = open_systems(config_list, question_list, modes, k, encoders)
    if bundled and len(config_list) == 1 and modes == list(MODES) and k == DEPTH:
        systems[BASELINE] = baseline_system(first_service, k=k)
    report = evaluate(systems, question_list, gold, k)
    report.update({"source": str(source), "k": k, "modes": modes, "configs": info, "index": info[base.name]})
    report["answerability_in_use"] = first_service.snapshot.retriever.verdict_model.as_dict()
    report["answerability_fit_on_dev"] = fit_answerability([r for r in report["rows"][runs[base.name][0]] if r["split"] == "dev"])
    report["comparisons"] = compare({"rows": {n: report["rows"][n] for n in systems if n != BASELINE}}, k)
    report["gold_not_in_index"] = {  # per configuration: answerable questions none of whose gold is in its index
        c.name: sorted(q.id for q in question_list if q.answerable and not gold[runs[c.name][0]][q.id]) for c in config_list
    }
    report["ambiguous_quotes"] = ambiguous  # per configuration: question id -> short quote -> passages holding it
    standard = write_run_folder(out, report, question_list, gold, runs, k, plot_png)
    print_report(report, question_list, standard, k, bundled)
    if bundled and split is None:
        write_summary(report, RESULTS_DIR, plot_png, out)
    print(f"\nwrote {out}/: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


def open_systems(config_list: list[Config], questions: list[Question], modes: list[str], k: int, encoders=None):
    """Open each configuration's service, resolve every question's gold over its index, and name its systems.

    Returns (systems, gold per system, system names per configuration, index info per configuration, the
    first configuration's service, the ambiguous quotes per configuration: `ambiguous_quotes`).
    """
    from rag.encoding.encoders import Encoders
    from rag.encoding.model import resolve_model
    from rag.service import Service

    providers = {(encoders.spec.name, encoders.encoder_setting): encoders} if encoders is not None else {}
    systems, gold, runs, info, first, ambiguous = {}, {}, {}, {}, None, {}
    for config in config_list:
        spec = resolve_model(config.settings.model)
        key = (spec.name, config.settings.encoder)
        if key not in providers:  # one loaded model per (model, query encoder), shared by the configurations
            providers[key] = Encoders.from_settings(config.settings, spec)
        service = Service.open(config.settings, providers[key])
        first = first or service
        info[config.name] = service.info()
        passages = service.snapshot.passages
        relevant = {q.id: resolve_gold(q, passages, config.document_names) for q in questions}
        found = {q.id: ambiguous_quotes(q, passages, config.document_names) for q in questions}
        ambiguous[config.name] = {qid: quotes for qid, quotes in found.items() if quotes}
        runs[config.name] = []
        for mode in modes:
            name = mode if len(config_list) == 1 else f"{config.name}/{mode}"
            systems[name] = service_system(service, mode, k, config.document_names)
            gold[name] = relevant
            runs[config.name].append(name)
    return systems, gold, runs, info, first, ambiguous


def write_run_folder(out: Path, report: dict, questions: list[Question], gold: dict, runs: dict, k: int, plot_png: bool) -> dict:
    """Every output file, written into a temp folder beside `out` and renamed to `out` at the end (or removed)."""
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=_mkdir(out.parent)))
    try:
        standard = write_run_files(work, report, questions, gold, runs, k)
        if plot_png:
            plot(report, work / "recall.png", _plot_group(report), k)
        (work / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
        if out.exists():
            out.rmdir()  # empty, checked before anything ran
        os.chmod(work, 0o755)  # mkdtemp makes it private; the run folder is an ordinary one
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # our own temp folder: nothing half-written stays
        raise
    return standard


def check_questions(questions: list[Question], source: Path, max_chars: int) -> None:
    """Refuse, before anything runs, a question the service itself would refuse (too long, control characters)."""
    for q in questions:
        try:
            clean_question(q.question, max_chars)
        except InvalidInput as exc:
            raise InvalidInput(f"{source.name} line {q.line}: field 'question': {exc}") from None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plot_group(report: dict) -> str:
    first = next(iter(report["systems"].values()))
    return "split=test" if "split=test" in first else "all"


def write_run_files(folder: Path, report: dict, questions: list[Question], gold: dict, runs: dict, k: int) -> dict:
    """metrics.json, per_question.jsonl, one TREC run file per system and one qrels file per configuration.

    Each run file holds one run, as trec_eval expects: run.trec the first system (the one the others are
    compared against), run.<system>.trec each other one ('/' in a name becomes '.'); qrels.trec the gold of
    the first configuration's index, qrels.<config>.trec that of each other. Returns ir_measures' numbers.
    """
    standard: dict = {}
    first = next(iter(runs.values()))[0]
    for i, (config, names) in enumerate(runs.items()):
        qrels_path = folder / ("qrels.trec" if i == 0 else f"qrels.{config}.trec")
        relevant = gold[names[0]]
        trec.write_lines(qrels_path, [line for q in questions for line in trec.qrels_lines(q.id, relevant[q.id])])
        for name in names:
            run_path = folder / ("run.trec" if name == first else f"run.{name.replace('/', '.')}.trec")
            lines = []
            for row in report["rows"][name]:
                lines += trec.run_lines(row["id"], [p["id"] for p in row["passages"]], [p["score"] for p in row["passages"]], name)
            trec.write_lines(run_path, lines)
            try:
                measured = trec.standard_metrics(run_path, qrels_path, k, KS)
            except ImportError:  # ir-measures is a dependency; a trimmed install still gets our own numbers
                continue
            if name in measured:
                standard[name] = {key: v for key, v in measured[name].items() if key != "per_question"}
    with open(folder / "per_question.jsonl", "w", encoding="utf-8") as handle:
        for q in questions:
            entry = {"id": q.id, "question": q.question, "answerable": q.answerable, **({"tags": q.tags} if q.tags else {}), "systems": {}}
            for name, rows in report["rows"].items():
                row = next(r for r in rows if r["id"] == q.id)
                keep = ["rank", "predicted_answerable", "confidence", *rank_metrics(k), "highlight_hit", "passages"]
                entry["systems"][name] = {key: row[key] for key in keep if key in row}
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    metrics_json = {
        "source": report["source"],
        "k": k,
        "systems": {name: groups["all"] for name, groups in report["systems"].items()},
        "groups": {name: {g: s for g, s in groups.items() if g != "all"} for name, groups in report["systems"].items()},
        "ir_measures": standard,
        "comparisons": report["comparisons"],
        "gold_not_in_index": report["gold_not_in_index"],
        "ambiguous_quotes": report["ambiguous_quotes"],
        "configs": report["configs"],
    }
    (folder / "metrics.json").write_text(json.dumps(metrics_json, indent=1, ensure_ascii=False))
    return standard


def print_report(report: dict, questions: list[Question], standard: dict, k: int, bundled: bool) -> None:
    first = next(iter(report["systems"]))
    groups = ["all", *sorted(g for g in report["systems"][first] if g.startswith("split="))]
    if bundled:
        groups += sorted(g for g in report["systems"][first] if g.startswith("kind="))
    for group in groups:
        print(f"\n### {group}\n{table(report, group, k)}\n{verdict_table(report, group)}")
    if any(g.startswith("article=") for g in report["systems"][first]):
        for name in report["systems"]:
            print(f"\n### {name} per article (SQuAD)\n{article_table(report, name, k)}")
    for name, numbers in standard.items():
        ours = report["systems"][name]["all"]
        gap = max(abs(ours[key] - numbers[key]) for key in rank_metrics(k))
        print(f"ir_measures from the TREC files, {name}: " + ", ".join(f"{key} {numbers[key]:.4f}" for key in rank_metrics(k))
              + f" (largest gap to the table: {gap:.4f})")
    if report["comparisons"]:
        print(f"\n### comparisons (questions both sides could score)\n{comparison_table(report['comparisons'])}")
    for config, missing in report["gold_not_in_index"].items():
        if missing:
            print(f"\nwarning: no passage of the {config} index holds the gold of {len(missing)} answerable question(s), "
                  f"left out of the rank metrics: {', '.join(missing[:10])} (a quote with a typo, or a passage id from another index?)")
    for config, questions_hit in report["ambiguous_quotes"].items():
        if questions_hit:
            print(f"\nwarning: {len(questions_hit)} question(s) have a quote of fewer than {AMBIGUOUS_WORDS} words that more than "
                  f"{AMBIGUOUS_PASSAGES} passages of the {config} index hold, and each of those passages counts as gold (give a longer quote, "
                  f"a 'document' or passage ids): " + ", ".join(f"{qid} ({_quoted_counts(quotes)})" for qid, quotes in list(questions_hit.items())[:10])
                  + (" …" if len(questions_hit) > 10 else ""))
    if bundled:
        print(f"\nanswerability model in use {report['answerability_in_use']}\n  refitted on dev:         {report['answerability_fit_on_dev']}")
    missed = misses(report, first, questions)
    print(f"\n{first} misses at 5 ({len(missed)}):\n" + ("\n".join(missed) or "(none)"))


def _quoted_counts(quotes: dict[str, int]) -> str:
    return ", ".join(f"{quote!r} in {n}" for quote, n in quotes.items())


def write_summary(report: dict, folder: Path, with_plot: bool, run_folder: Path) -> None:
    """The compact tracked summary of the bundled run: tables, commit, index id, the answerability fit."""
    tables = {
        name: {group: {key: v for key, v in s.items() if key != "seconds"} for group, s in groups.items()}
        for name, groups in report["systems"].items()
    }
    summary = {
        "comment": "Written by `rag eval` (make eval) on the bundled questions; the full run is in the ignored folder named by 'run'.",
        "commit": _commit(),
        "index": report["index"],
        "tables": tables,
        "answerability_in_use": report["answerability_in_use"],
        "answerability_fit_on_dev": report["answerability_fit_on_dev"],
        "run": str(run_folder.relative_to(PROJECT_ROOT)) if run_folder.is_relative_to(PROJECT_ROOT) else str(run_folder),
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, folder / "summary.json")
    if with_plot:
        shutil.copyfile(run_folder / "recall.png", folder / "recall.png")
    print(f"wrote {folder / 'summary.json'}" + (f" and {folder / 'recall.png'}" if with_plot else ""))


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


# --- the verdict (issue 12) ----------------------------------------------------------------
# Three kinds of unanswerable question (eval/questions.jsonl): "off-topic" (outside the documents' domain: cooking,
# programming; every one should be refused), "out of scope" (kind "unanswerable", the first batch: mostly the
# article's domain but not its content) and "near-topic" (facts the article does not give about people and events
# it names). AUROC is reported against near-topic (the hard case) and against every unanswerable question.

VERDICT_COLUMNS = ["auroc_near", "auroc_all", "kept_answerable", "refused_off_topic", "refused_out_of_scope", "refused_near_topic"]
VERDICT_GROUPS = (("answerable", None), ("off_topic", "off-topic"), ("out_of_scope", "unanswerable"), ("near_topic", "near-topic"))


def verdict_summary(rows: list[dict]) -> dict:
    """AUROC of `confidence` (answerable vs near-topic, vs every unanswerable), kept/refused rates, three-way counts."""
    answerable = [r for r in rows if r["answerable"]]
    groups = {name: [r for r in rows if not r["answerable"] and r["kind"] == kind] for name, kind in VERDICT_GROUPS[1:]}
    groups["answerable"] = answerable
    unanswerable = [r for r in rows if not r["answerable"]]

    def area(negatives: list[dict]) -> float | None:
        both = answerable + negatives
        auc = evalstats.auroc([r["confidence"] for r in both], [r["answerable"] for r in both])
        return None if auc is None else round(auc, 4)

    def refused(group: list[dict]) -> float | None:
        return round(metrics.refused_rate(r["predicted_answerable"] for r in group), 4) if group else None

    out = {
        "auroc_near": area(groups["near_topic"]),
        "auroc_all": area(unanswerable),
        "kept_answerable": round(metrics.kept_rate(r["predicted_answerable"] for r in answerable), 4),
        "refused_off_topic": refused(groups["off_topic"]),
        "refused_out_of_scope": refused(groups["out_of_scope"]),
        "refused_near_topic": refused(groups["near_topic"]),
        "refused_unanswerable": refused(unanswerable),
    }
    groups["unanswerable"] = unanswerable
    for name in [g for g, _ in VERDICT_GROUPS] + ["unanswerable"]:
        out[f"verdicts_{name}"] = {v: sum(1 for r in groups[name] if r.get("verdict") == v) for v in ("found", "uncertain", "not_found")}
    return out


def verdict_table(report: dict, group: str) -> str:
    lines = [f"| system | {' | '.join(VERDICT_COLUMNS)} | found/uncertain/not_found: answerable · off-topic · out of scope · near-topic |", "|" + "---|" * (len(VERDICT_COLUMNS) + 2)]
    for name, groups in report["systems"].items():
        s = groups.get(group)
        if not s or not any(s["verdicts_answerable"].values()):  # the system gives no verdict (the baseline)
            continue
        cells = ["–" if s[c] is None else f"{s[c]:.3f}" for c in VERDICT_COLUMNS]
        three = " · ".join("/".join(str(s[f"verdicts_{g}"][v]) for v in ("found", "uncertain", "not_found")) for g, _ in VERDICT_GROUPS)
        lines.append(f"| {name} | {' | '.join(cells)} | {three} |")
    return "\n".join(lines)


# --- SQuAD: per article ----------------------------------------------------------------------

VERDICTS = ("found", "uncertain", "not_found")


def article_table(report: dict, system: str, k: int = DEPTH) -> str:
    """One system's retrieval, highlight and verdict per article and overall: R@1, R@5, MRR@k, highlight@1, AUROC
    answerable vs unanswerable, the answered share of the answerable and the abstained share of the unanswerable
    (at the default threshold), and the share of each verdict class in both."""
    keys = [key for key in ("r@1", "r@5", f"mrr@{k}") if key in rank_metrics(k)] + ["highlight@1"]
    head = ["article", "answerable", "unanswerable", *keys, "AUROC", "answered", "abstained",
            "answerable found/uncertain/not_found", "unanswerable found/uncertain/not_found"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = report["systems"][system]
    for group in [g for g in groups if g.startswith("article=")] + ["all"]:
        s = groups[group]
        n_unanswerable = sum(s["verdicts_unanswerable"].values())
        cells = [group.removeprefix("article="), str(s["questions"]), str(n_unanswerable)]
        cells += [_cell(s[key], key) for key in keys]
        cells += [_cell(s["auroc_all"], ""), _cell(s["kept_answerable"], ""), _cell(s["refused_unanswerable"], "")]
        cells += [verdict_shares(s["verdicts_answerable"]), verdict_shares(s["verdicts_unanswerable"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_shares(counts: dict[str, int]) -> str:
    """found/uncertain/not_found as shares of their total ("–" for none)."""
    total = sum(counts.values())
    return "/".join(f"{counts[v] / total:.2f}" for v in VERDICTS) if total else "–"
