"""A real collection no one here wrote: Debian's python3-doc (Python's HTML documentation) through the normal loader and build.

    apt-get install -y python3-doc
    .venv/bin/python eval/bench_collection.py --limit 60        # a subset: the question pages first, then others in path order
    .venv/bin/python eval/bench_collection.py                   # the whole tree (about 30 min to embed on 2 busy cores)

It copies the tree (or the first --limit HTML files of it, always including the pages the questions
name) into a fresh seeds folder, keeping symbolic links as they are, builds the index with the same
path `rag index` takes (load_corpus, then the service's ensure_index), and prints one JSON report:
files, documents indexed, skipped (by reason), passages, build time and throughput, peak RSS, index
size on disk, in-process hybrid query p50/p99, whether each hand-written answerable question
(eval/collections/python-docs.jsonl) finds its page in the top 5, the verdict on it and on twelve questions the
pages cannot answer (other software, and nothing to do with software), and the time to add and then remove
ONE document (the build re-embeds only the passages whose embedded text is new; the report shows how
many were embedded and how many reused, from the index's own log line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.config import Settings  # noqa: E402
from rag.corpus.documents import load_corpus  # noqa: E402
from rag.service import Service  # noqa: E402

DOCS = Path("/usr/share/doc/python3-doc/html")
QUESTIONS = Path(__file__).resolve().parent / "collections" / "python-docs.jsonl"
EXTRA_DOCUMENT = "library/shutil.html"  # added and removed again to time an incremental rebuild


class EmbedCounter(logging.Handler):
    """Collects the index's own 'embedded N passages, reused M' log lines."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("embedded "):
            self.lines.append(message)

    def take(self) -> dict:
        counts = {}
        for line in self.lines:
            embedded, what, reused = re.match(r"embedded (\d+) (\w+), reused (\d+)", line).groups()
            counts[what] = {"embedded": int(embedded), "reused": int(reused)}
        self.lines = []
        return counts


def select(source: Path, seeds: Path, limit: int | None, questions: list[dict]) -> int:
    """Copy the tree (or a subset of its HTML pages) into `seeds`; returns the number of files copied."""
    source = source.resolve()
    if limit is None:
        shutil.copytree(source, seeds, symlinks=True)
        return sum(1 for p in seeds.rglob("*") if p.is_file() or p.is_symlink())
    wanted = [q["document"].replace(".", "/") + ".html" for q in questions if q["answerable"]]
    others = sorted(str(p.relative_to(source)) for p in source.rglob("*.html") if not p.name.startswith("genindex"))
    chosen = list(dict.fromkeys(wanted + [o for o in others if o != EXTRA_DOCUMENT]))[:limit]
    for relative in chosen:
        (seeds / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, seeds / relative)
    return len(chosen)


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "encoders" not in p.parts)


def ask(service: Service, questions: list[dict], texts: dict[str, str]) -> dict:
    """Each answerable question: whether its page and a quote are in the top 5, and the verdict; each unanswerable
    one (software the pages do not document, or nothing to do with software): the verdict. The verdict was fitted on
    the bundled article and SQuAD, never on these pages, so its figures here are a stranger's folder's."""
    rows, refusals = [], []
    for q in questions:
        result = service.query(service.parse(q["question"], top_k=5, mode="hybrid"))
        verdict = {"verdict": result.verdict, "confidence": round(result.confidence, 3)}
        if not q["answerable"]:
            refusals.append({"id": q["id"], "kind": q["kind"], **verdict})
            continue
        assert all(quote in texts[q["document"]] for quote in q["quotes"]), f"{q['id']}: a quote is not in its page"
        docs = [hit.passage.document for hit in result.hits]
        rows.append({"id": q["id"], "document": q["document"], "top5": docs, "in_top5": q["document"] in docs,
                     "rank": docs.index(q["document"]) + 1 if q["document"] in docs else None,
                     "quote_in_top5": any(quote in hit.passage.text for hit in result.hits for quote in q["quotes"]), **verdict})
    return {"questions": rows, "in_top5": sum(r["in_top5"] for r in rows), "quote_in_top5": sum(r["quote_in_top5"] for r in rows),
            "at_rank1": sum(r["rank"] == 1 for r in rows), "of": len(rows),
            "answerable_found": sum(r["verdict"] == "found" for r in rows),
            "unanswerable": refusals, "unanswerable_refused": sum(r["verdict"] == "not_found" for r in refusals),
            "unanswerable_of": len(refusals)}


def query_latency(service: Service, questions: list[dict], rounds: int = 5) -> dict:
    times = []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            service.query(service.parse(q["question"], top_k=5, mode="hybrid"))
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"n": len(times), "p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DOCS)
    parser.add_argument("--limit", type=int, default=None, help="copy only this many HTML pages (the question pages first)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed after)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--load-only", action="store_true", help="load and chunk only (no model, no index): files, skips, passages")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"{args.source} is missing: apt-get install -y python3-doc", file=sys.stderr)
        return 2
    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-collection-"))
    seeds, index_dir = work / "seeds", work / "index"
    counter = EmbedCounter()
    logging.getLogger("rag").addHandler(counter)
    logging.getLogger("rag").setLevel(logging.INFO)
    try:
        files = select(args.source, seeds, args.limit, questions)
        settings = Settings(seeds_dir=seeds, index_dir=index_dir, encoder="torch")
        started = time.perf_counter()
        corpus = load_corpus(seeds, settings.max_document_bytes)
        load_s = time.perf_counter() - started
        if args.load_only:
            report = _load_report(args, files, corpus, load_s, settings)
            return _print(report, args.out)
        started = time.perf_counter()
        service = Service.open(settings)
        build_s = time.perf_counter() - started
        passages = len(service.snapshot.passages)
        report = {
            "source": str(args.source), "limit": args.limit, "files": files,
            "indexed": len(corpus.documents), "skipped": len(corpus.skipped),
            "skipped_by_reason": dict(Counter(_reason_kind(s.reason) for s in corpus.skipped).most_common()),
            "skipped_examples": [s.as_dict() for s in corpus.skipped[:5]],
            "passages": passages, "load_s": round(load_s, 2), "build_s": round(build_s, 2),
            "build_passages_per_s": round(passages / build_s, 1), "first_build": counter.take(),
            "index_bytes": disk_bytes(index_dir),
        }
        texts = {d.id: d.text for d in corpus.documents}
        report["retrieval"] = ask(service, questions, texts)
        report["query_inproc_hybrid"] = query_latency(service, [q for q in questions if q["answerable"]])
        report["add_one"] = _timed_reload(service, lambda: _add(args.source, seeds), counter)
        report["remove_one"] = _timed_reload(service, lambda: (seeds / EXTRA_DOCUMENT).unlink(), counter)
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return _print(report, args.out)


def _print(report: dict, out: Path | None) -> int:
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return 0


def _load_report(args, files: int, corpus, load_s: float, settings: Settings) -> dict:
    """Files, skips and passages without a model: the packaged model's WordPiece tokenizer counts tokens."""
    from tokenizers import Tokenizer

    from rag.corpus.chunking import ChunkerParams, chunk_corpus
    from rag.encoding.model import resolve_model

    tokenizer = Tokenizer.from_file(str(resolve_model(settings.model).local_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    started = time.perf_counter()
    passages = chunk_corpus(corpus.documents, lambda t: len(tokenizer.encode(t, add_special_tokens=False).ids),
                            ChunkerParams(settings.max_passage_tokens, settings.min_passage_chars))
    return {
        "source": str(args.source), "limit": args.limit, "files": files, "indexed": len(corpus.documents),
        "skipped": len(corpus.skipped),
        "skipped_by_reason": dict(Counter(_reason_kind(s.reason) for s in corpus.skipped).most_common()),
        "skipped_examples": [s.as_dict() for s in corpus.skipped[:5]],
        "load_s": round(load_s, 2), "passages": len(passages), "sentences": sum(len(p.sentences) for p in passages),
        "chunk_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _add(source: Path, seeds: Path) -> None:
    (seeds / EXTRA_DOCUMENT).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve() / EXTRA_DOCUMENT, seeds / EXTRA_DOCUMENT)


def _timed_reload(service: Service, change, counter: EmbedCounter) -> dict:
    before = len(service.snapshot.passages)
    change()
    started = time.perf_counter()
    service.reload()
    seconds = time.perf_counter() - started
    return {"reload_s": round(seconds, 2), "passages_before": before, "passages_after": len(service.snapshot.passages),
            "embedding": counter.take()}


def _reason_kind(reason: str) -> str:
    """The reason without the file's name: 'is of an unsupported type (.js)' and so on."""
    kind = reason.split(" ", 1)[1] if " " in reason else reason
    return re.sub(r"\d+(\.\d+)? MB", "N MB", kind.split(";")[0])


if __name__ == "__main__":
    raise SystemExit(main())
