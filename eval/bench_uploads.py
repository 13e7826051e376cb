"""The cost of one document written over the service (issue #20 items 3 and 5): add, then remove, on a corpus.

    .venv/bin/python eval/bench_uploads.py                       # the bundled seeds/ (the article)
    .venv/bin/python eval/bench_uploads.py --scifact 1500        # + the first 1,500 SciFact abstracts (../shared/external)

Results: eval/results/uploads-seed.json, eval/results/uploads-scifact-1500.json (table in docs/documents.md).

It copies the corpus into a fresh seeds folder, builds its index (not timed), then times
`Service.write_document` of one ~10-page article (SQuAD's "Steam engine", 34 KB, from ../shared/external)
and `Service.remove_document` of it: exactly what POST and DELETE /documents run. Each is split into its
stages, timed by the same calls the reload makes: reading the corpus, the build (with how many passage and
sentence vectors were embedded and how many reused from the index on disk, from the build's own log
line), and making the snapshot (BM25, the retriever's stages). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.bench_collection import EmbedCounter  # noqa: E402
from eval.harness import loadavg  # noqa: E402
from rag import service as service_module  # noqa: E402
from rag.config import PROJECT_ROOT, Settings  # noqa: E402
from rag.index import build as build_module  # noqa: E402
from rag.service import Service  # noqa: E402
from rag.uploads import Upload  # noqa: E402

EXTERNAL = PROJECT_ROOT.parent / "shared" / "external"
ARTICLE = EXTERNAL / "squad2-tune" / "articles" / "Steam_engine.txt"


class StageClock:
    """Wraps the reload's stages (read_corpus, load_or_build, make_snapshot) to time each call."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._patched = []

    def wrap(self, module, name: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)

        setattr(module, name, timed)
        self._patched.append((module, name, original))

    def take(self) -> dict:
        taken, self.seconds = self.seconds, {}
        return taken


def write_scifact(seeds: Path, count: int) -> int:
    written = 0
    with open(EXTERNAL / "scifact-train" / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            if written >= count:
                break
            doc = json.loads(line)
            if not doc.get("text", "").strip():
                continue
            (seeds / f"scifact-{doc['_id']}.txt").write_text(doc["text"] + "\n", encoding="utf-8")
            (seeds / f"scifact-{doc['_id']}.meta.json").write_text(json.dumps({"title": doc["title"]}), encoding="utf-8")
            written += 1
    return written


def timed(what, clock: StageClock, counter: EmbedCounter) -> dict:
    clock.take(), counter.take()
    started = time.perf_counter()
    written = what()
    return {
        "status": written.status,
        "seconds": round(time.perf_counter() - started, 3),
        "stages_s": clock.take(),
        "embedding": counter.take(),
        "passages_after": len(written.snapshot.passages),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=int, default=0, metavar="N", help="add the first N SciFact abstracts to the corpus")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    counter = EmbedCounter()
    logging.getLogger("rag.index.build").addHandler(counter)
    logging.getLogger("rag.index.build").setLevel(logging.INFO)
    clock = StageClock()
    clock.wrap(service_module, "read_corpus")
    clock.wrap(service_module, "load_or_build")
    clock.wrap(service_module, "make_snapshot")
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as root:
        seeds = Path(root) / "seeds"
        shutil.copytree(PROJECT_ROOT / "seeds", seeds)
        abstracts = write_scifact(seeds, args.scifact) if args.scifact else 0
        settings = Settings(seeds_dir=seeds, index_dir=Path(root) / "index")
        started = time.perf_counter()
        service = Service.open(settings)
        build_s = time.perf_counter() - started
        report = {
            "corpus": {"documents": len(service.documents), "scifact_abstracts": abstracts, "passages": len(service.snapshot.passages),
                       "first_build_s": round(build_s, 1)},
            "document": {"file": ARTICLE.name, "bytes": ARTICLE.stat().st_size},
            "load_average_before": loadavg(),
        }
        upload = Upload(ARTICLE.read_bytes(), ".txt", {"title": "Steam engine"}, "steam-engine")
        report["add"] = timed(lambda: service.write_document(upload), clock, counter)
        question = service.parse("What did Watt's separate condenser improve?", top_k=3)
        report["add"]["top_hit"] = service.query(question).hits[0].passage.document
        report["remove"] = timed(lambda: service.remove_document("steam-engine"), clock, counter)
        report["load_average_after"] = loadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
