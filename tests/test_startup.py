"""Start-up on an up-to-date index: what a cold process loads. BM25 is built without bm25s (whose import loads
scipy.sparse, about a third of a second), so neither is imported to open an index and answer; the rare BM25
shapes that still go to bm25s import it when they occur; a fresh process builds and answers (slow tier)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag.config import PROJECT_ROOT
from tests.reliability_support import write_tiny_seeds


def _fresh(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_the_query_path_imports_neither_bm25s_nor_scipy():
    code = (
        "import sys\n"
        "import api.cli, api.render, rag.service, rag.index.build, rag.query.retrieval\n"
        "from rag.index.lexical import LexicalIndex, bm25_from_ids\n"
        "texts = ['Trotsky on the bourgeoisie', 'the permanent revolution', 'capital and the peasants', '']\n"
        "lex = LexicalIndex(texts, keys=list(range(4)))\n"
        "again = LexicalIndex(texts + ['more capital'], keys=list(range(5)), previous=lex)\n"
        "assert lex.scores('bourgeoisie revolution').tolist()[2:] == [0.0, 0.0] and again.scores('capital').max() > 0\n"
        "print(sorted(m for m in ('bm25s', 'scipy', 'scipy.sparse') if m in sys.modules))\n"
        "import numpy as np, warnings; warnings.simplefilter('ignore')\n"
        "empty = bm25_from_ids([np.zeros(0, np.int32)] * 2, {'x': 0})  # nothing to index: bm25s's own, imported now\n"
        "assert empty.scores['num_docs'] == 2 and empty.get_tokens_ids(['x', 'y']) == [0]\n"
        "print('bm25s' in sys.modules)\n"
    )
    out = _fresh(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


@pytest.mark.slow
def test_a_fresh_process_builds_then_answers_without_scipy(tmp_path):
    """`rag index` then a cold `rag ask` in fresh interpreters over a tiny corpus: the ask loads neither bm25s nor
    scipy, answers from the article, and the model's and exports' hashes are remembered for the next start."""
    seeds = write_tiny_seeds(tmp_path / "seeds")
    env = {"RAG_SEEDS_DIR": str(seeds), "RAG_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1"}
    built = _fresh("import sys; from api.cli import main; sys.exit(main(['index']))", env)
    assert built.returncode == 0, built.stderr
    ask = (
        "import json, sys; from api.cli import main\n"
        "code = main(['ask', 'What did Trotsky say of the bourgeoisie?', '--json', '-k', '2'])\n"
        "print(json.dumps(sorted(m for m in ('bm25s', 'scipy', 'scipy.sparse', 'torch') if m in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    out = _fresh(ask, {**env, "RAG_AUTO_BUILD": "false"})
    assert out.returncode == 0, out.stderr
    *answer, loaded = out.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    assert len(json.loads("\n".join(answer))["passages"]) == 2
    memo = json.loads((PROJECT_ROOT / "index" / "encoders" / "sha256.json").read_text())
    assert any(name.endswith("model.safetensors") for name in memo)


def test_bm25_made_in_one_pass_is_bm25s_own():
    """LexicalIndex tokenizes a passage once for its BM25 text (heading line + passage) and for its own terms:
    the scores and terms are bm25s's, text by text, also where lower case depends on context (a final sigma, a
    dotted capital I), for an empty passage, and for texts that are not their passage under a heading."""
    import bm25s
    import numpy as np
    import Stemmer

    from rag.index.lexical import BM25, STEMMER, STOPWORDS, TOKEN, LexicalIndex
    from tests.reliability_support import article_paragraphs

    paragraphs = article_paragraphs()[:30]
    texts = paragraphs + ["ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ λόγος", "", "İSTANBUL the of Straße", "zebras zebra", "a different text"]
    heads = [f"Permanent Revolution. Section {i % 4}.\n{t}" for i, t in enumerate(paragraphs)]
    heads += ["ΣΟΦΟΣ ΛΟΓΟΣ.\nΟΔΥΣΣΕΥΣ ΣΟΦΟΣ λόγος", "Title.\n", "İstanbul. Straße.\nİSTANBUL the of Straße", "Zebras.zebras zebra",
              "no heading line here"]
    stemmer = Stemmer.Stemmer(STEMMER)
    reference = bm25s.BM25(**BM25)
    reference.index(bm25s.tokenize(heads, stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False), show_progress=False)
    for keys in (None, list(range(len(heads)))):
        ours = LexicalIndex(heads, keys=keys, passage_texts=texts)
        for text in texts:
            expected = set(bm25s.tokenize([text], stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False, return_ids=False)[0])
            assert ours.terms(text) == expected, text
        for question in ("What did Trotsky say of the bourgeoisie?", "σοφος λογος οδυσσευς", "istanbul strasse", "zebra", "the of"):
            terms = bm25s.tokenize([question], stopwords=STOPWORDS, token_pattern=TOKEN.pattern, stemmer=stemmer, show_progress=False, return_ids=False)[0]
            expected = np.asarray(reference.get_scores(terms), dtype=np.float32) if terms else np.zeros(len(heads), np.float32)
            np.testing.assert_array_equal(ours.scores(question), expected)
