"""Benchmark: start-up on an up-to-date index, with the corpus read from seeds/ and remembered (rag.index.corpus_cache).

For the seed article and for a few thousand passages of Debian's python3-doc HTML pages (`apt-get install
python3-doc`; skipped with a note otherwise), each in its own fresh folder:

  serve, corpus read   `rag serve` from process start to the first answered POST /query, the corpus cache removed
                       first: every file of seeds/ is parsed (what every start cost before the cache)
  serve                the same with the cache in place (the stat fingerprint matches: no file is parsed)
  open                 `Service.open` alone in a fresh process, after its imports: what "an up-to-date index
                       opens" means in issue #22 (target <= 2 s at 6,000 passages)
  ask                  a cold `rag ask "<question>"`, process start to exit, cache in place (target <= 1.5 s)

Medians of --rounds; the load average is printed with each row (the figures only mean something beside it).
The model's and exports' hashes are remembered (rag.encoding.model: `<encoder_dir>/sha256.json`), so the first
start after an install hashes them and the rounds measure the starts after it. The python3-doc index is built with stand-in vectors (random unit rows from a seeded
generator, through the normal chunker, store and manifest: `build_index`), since start-up reads the vectors'
files but never depends on their values, and a real embedding of 6,000 passages takes many minutes here;
the seed article's index is built for real (`rag index`).

    python eval/bench_startup.py                  # seed article + 245 python3-doc pages (~6,100 passages)
    python eval/bench_startup.py --docs 30 --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A generous time budget per HTML page: on a loaded machine a page read past the default budget is skipped, and a
# corpus read differently by the build and by the server would make the index stale (refused: RAG_AUTO_BUILD=false).
os.environ.setdefault("RAG_MAX_EXTRACT_SECONDS", "300")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import RAG, ROOT, Server, env_for, log, run_rag_index, write_json  # noqa: E402

DOCS = Path("/usr/share/doc/python3-doc/html")
CACHE = "cache/corpus.json"  # rag.index.corpus_cache.CACHE_FILE, spelled out: this process does not import rag before it must
QUESTION = "What is permanent revolution?"


class StandInEncoder:
    """The build encoder's interface with the real tokenizer (so passages are chunked as in a real build) and
    random unit vectors."""

    def __init__(self, spec):
        import numpy as np
        from tokenizers import Tokenizer

        self.spec, self.dimension, self.max_seq_length = spec, 384, 256
        self._tokenizer = Tokenizer.from_file(str(Path(spec.local_dir) / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._rng = np.random.default_rng(22)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, texts, progress: bool = False, batch_size: int = 128, desc: str = "texts"):
        import numpy as np

        rows = self._rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build_stand_in(seeds: Path, index_dir: Path) -> dict:
    from rag.config import Settings
    from rag.corpus.documents import load_corpus
    from rag.encoding.model import resolve_model
    from rag.index.build import IndexConfig, build_index

    settings = Settings(seeds_dir=seeds, index_dir=index_dir)
    documents = list(load_corpus(seeds, settings.max_document_bytes).documents)
    model = resolve_model(settings.model)
    return build_index(index_dir, documents, IndexConfig.of(settings, documents, model), StandInEncoder(model), progress=False)


def copy_pages(source: Path, seeds: Path, n: int) -> int:
    pages = sorted(p for p in source.rglob("*.html") if not p.name.startswith("genindex"))[:n]
    for page in pages:
        target = seeds / page.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, target)
    return len(pages)


def time_serve(seeds: Path, index_dir: Path, work: Path) -> float:
    server = Server("ours", index_dir, work)
    try:
        return server.wait_answering(limit_s=1200)
    finally:
        server.stop()


def time_ask(seeds: Path, index_dir: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([*RAG, "ask", QUESTION], env=env_for(index_dir, RAG_SEEDS_DIR=str(seeds), RAG_AUTO_BUILD="false"),
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"rag ask failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


OPEN = (
    "import json, time\n"
    "from rag.config import Settings\n"
    "from rag.service import Service\n"
    "started = time.perf_counter()\n"
    "Service.open(Settings())\n"
    "print(json.dumps({'open_s': time.perf_counter() - started}))\n"
)


def time_open(seeds: Path, index_dir: Path) -> float:
    """`Service.open` in a fresh process, its imports not counted: the index, BM25, the query encoder."""
    done = subprocess.run([sys.executable, "-c", OPEN], env=env_for(index_dir, RAG_SEEDS_DIR=str(seeds), RAG_AUTO_BUILD="false"),
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"Service.open failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["open_s"]


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]  # the 1-minute figure
    except OSError:
        return "?"


def measure(name: str, seeds: Path, index_dir: Path, work: Path, rounds: int) -> dict:
    os.environ["RAG_SEEDS_DIR"] = str(seeds)  # Server() passes the environment on
    try:
        cold, warm, opened, ask, loads = [], [], [], [], [load_average()]
        for _ in range(rounds):
            (index_dir / CACHE).unlink(missing_ok=True)
            cold.append(time_serve(seeds, index_dir, work))  # parses seeds/, then remembers it
            warm.append(time_serve(seeds, index_dir, work))
            opened.append(time_open(seeds, index_dir))
            ask.append(time_ask(seeds, index_dir))
            loads.append(load_average())
    finally:
        os.environ.pop("RAG_SEEDS_DIR", None)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    row = {"corpus": name, "documents": manifest["counts"]["documents"], "passages": manifest["counts"]["passages"],
           "sentences": manifest["counts"]["sentences"], "rounds": rounds,
           "serve_reading_corpus_s": round(statistics.median(cold), 2), "serve_s": round(statistics.median(warm), 2),
           "open_s": round(statistics.median(opened), 2), "ask_cold_s": round(statistics.median(ask), 2),
           "cached": (index_dir / CACHE).exists(), "load_average": loads,
           "all": {"serve_reading_corpus_s": [round(x, 2) for x in cold], "serve_s": [round(x, 2) for x in warm],
                   "open_s": [round(x, 2) for x in opened], "ask_cold_s": [round(x, 2) for x in ask]}}
    log(f"  {name}: {row['passages']:,} passages, medians of {rounds}, load average {' → '.join(loads)}:\n"
        f"    rag serve, process start to the first answered POST /query: {row['serve_s']:.2f} s "
        f"({row['serve_reading_corpus_s']:.2f} s when seeds/ is parsed again)\n"
        f"    Service.open in a fresh process (after its imports; target <= 2 s at 6,000 passages): {row['open_s']:.2f} s\n"
        f"    cold rag ask, process start to exit (target <= 1.5 s): {row['ask_cold_s']:.2f} s")
    return row


def table(rows: list[dict]) -> str:
    lines = ["| corpus | passages | `rag serve` to first answer | the same, parsing seeds/ | `Service.open` (fresh process) | cold `rag ask` | load average |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['corpus']} | – | {r['error']} | | | | |")
        else:
            lines.append(f"| {r['corpus']} | {r['passages']:,} | {r['serve_s']:.2f} s | {r['serve_reading_corpus_s']:.2f} s | "
                         f"{r['open_s']:.2f} s | {r['ask_cold_s']:.2f} s | {' → '.join(r['load_average'])} |")
    return "\n".join(lines)


def run(docs: int, rounds: int, index_dir: Path | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-startup-") as tmp:
        work = Path(tmp)
        seeds = work / "seed-article"
        shutil.copytree(ROOT / "seeds", seeds)
        article_index = work / "article-index"
        if index_dir is not None and (index_dir / "manifest.json").exists():
            shutil.copytree(index_dir, article_index, ignore=shutil.ignore_patterns("cache", ".lock"))
        os.environ["RAG_SEEDS_DIR"] = str(seeds)
        try:
            run_rag_index(article_index)  # a no-op when the copied index is current
        finally:
            os.environ.pop("RAG_SEEDS_DIR", None)
        rows.append(measure("seed article", seeds, article_index, work, rounds))
        if docs and DOCS.is_dir():
            pages = work / "python-docs"
            copied = copy_pages(DOCS, pages, docs)
            started = time.perf_counter()
            build_stand_in(pages, work / "docs-index")
            log(f"  python3-doc: {copied} pages indexed with stand-in vectors in {time.perf_counter() - started:.0f} s")
            rows.append(measure(f"python3-doc, {copied} HTML pages", pages, work / "docs-index", work, rounds))
        elif docs:
            rows.append({"corpus": "python3-doc", "error": f"{DOCS} is missing: apt-get install -y python3-doc"})
    log(table(rows))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=245, help="python3-doc HTML pages (245: ~6,100 passages; 0: the seed article only)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = run(args.docs, args.rounds)
    if args.out:
        write_json(args.out, {"rows": rows, "table": table(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
