"""eval/bench_langchain.py's bookkeeping: the corpus both pipelines read, how the tutorial's chunks are scored, the
targets the bench reports. (The builds themselves run in `make bench`: minutes each, and a virtualenv of their own.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import eval.bench_build as bench_build
import eval.bench_langchain as bench
from eval.bench_report import check_targets
from eval.evaluation import load_questions


def test_sources_are_copied_flat_in_path_order(tmp_path, monkeypatch):
    sources = tmp_path / "_sources"
    (sources / "library").mkdir(parents=True)
    (sources / "about.rst.txt").write_text("About.")
    (sources / "library" / "os.rst.txt").write_text("The os module.")
    (sources / "library" / "sys.rst.txt").write_text("The sys module, longer.")
    monkeypatch.setattr(bench_build, "DOCS", sources)  # bench_langchain copies with bench_build.docs_sample

    files, size = bench.copy_sources(tmp_path / "all", None)
    assert (files, size) == (3, len("About.") + len("The os module.") + len("The sys module, longer."))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["about.txt", "library-os.txt", "library-sys.txt"]
    assert (tmp_path / "all" / "library-os.txt").read_text() == "The os module."

    assert bench.copy_sources(tmp_path / "two", 2)[0] == 2
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["about.txt", "library-os.txt"]


def test_tutorial_chunks_are_scored_by_the_quote_rule():
    """Every answerable question gets an unrelated chunk first and its gold quote second: R@1 0, R@5 1, MRR 1/2."""
    answers = {}
    for q in load_questions():
        quote = q.quotes[0] if q.quotes else "nothing at all"
        answers[q.id] = [["A chunk about the weather in spring.", 0.4], [f"Before. {quote} After.", 0.7]]
    quality = bench.quality_row(bench.answers_tutorial(answers), "langchain")
    assert quality["all"]["questions"] == sum(1 for q in load_questions() if q.answerable)
    assert (quality["all"]["r@1"], quality["all"]["r@5"], quality["all"]["mrr@10"]) == (0.0, 1.0, 0.5)
    assert set(quality) == {"all", "split=dev", "split=test"}


def test_a_missing_tutorial_environment_names_the_command(tmp_path):
    with pytest.raises(SystemExit, match="make bench-env"):
        bench.run(2, ["fp32"], 1, tmp_path / "no-such-python", tmp_path)


def test_the_build_target_is_three_quarters_of_the_tutorial_and_answers_no_worse():
    sections = {"tutorial": {"result": {"corpus": {"files": 497}, "ratio_to_langchain": {"ours-fp32": 1.1, "ours-bf16": 0.7},
                                        "same_or_better_answers": {"ours-fp32": True, "ours-bf16": False}}}}
    rows = {r["target"]: r for r in check_targets({"plain": {}, "plain-1t": {}}, sections)}
    assert rows["python3-doc build, ours-fp32 / LangChain tutorial (497 files)"]["met"] is False
    assert rows["python3-doc build, ours-bf16 / LangChain tutorial (497 files)"]["met"] is True
    assert rows["bundled answers, ours-bf16 vs LangChain tutorial (R@1, R@5, MRR@10)"]["met"] is False


def test_the_tutorial_script_is_the_tutorial():
    """The pipeline it times is LangChain's RAG tutorial as written, not a re-implementation."""
    for piece in ("RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200", "HuggingFaceEmbeddings(",
                  "FAISS.from_documents(splits, embeddings)", "DirectoryLoader("):
        assert piece in bench.TUTORIAL
    assert Path(bench.LANGCHAIN_PYTHON).parts[-3] == ".venv-langchain"
