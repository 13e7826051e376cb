"""The chunker on hostile input (one huge token, one huge line) in linear time, and unchanged on the seed article.

No model is loaded: the real WordPiece tokenizer is read straight from the packaged model's
tokenizer.json with `tokenizers` (the same counts sentence-transformers gives), and the
5 MB cases use a crude length-based counter so they measure the chunker, not the tokenizer.
"""

import json
import time
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from rag.corpus.chunking import ChunkerParams, chunk_document
from rag.corpus.documents import Document, Paragraph, load_document
from rag.encoding.model import resolve_model
from tests.conftest import ARTICLE

REFERENCE = Path(__file__).parent / "data" / "seed_passages.json"


@pytest.fixture(scope="module")
def count_tokens():
    tokenizer = Tokenizer.from_file(str(resolve_model("default").local_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _fast_count(text: str) -> int:
    return len(text) // 4 + 1


def _one_paragraph(text: str) -> Document:
    return Document(id="d", path=Path("d.txt"), text=text, title="d", paragraphs=(Paragraph(1, None, 0, len(text)),))


def _check_cover(doc: Document, passages, count, params: ChunkerParams):
    assert all(doc.text[p.start : p.end] == p.text for p in passages)
    assert all(count(p.text) <= params.max_tokens and len(p.text) <= params.max_chars for p in passages)
    assert "".join(p.text for p in passages).replace(" ", "") == doc.text.replace(" ", "")
    assert all(a.end <= b.start for a, b in zip(passages, passages[1:]))


def test_seed_article_passages_are_exactly_those_of_the_previous_chunker(count_tokens):
    """tests/corpus/data/seed_passages.json was made by the chunker before the linear-time rewrite; its 60,0 setting
    was made again when a paragraph's last footnote mark began to stay with its sentence (chunker version 5: the
    only change there was four passages of a footnote mark alone, "[1]", now the end of the passage before them)."""
    reference = json.loads(REFERENCE.read_text())["passages"]
    doc = load_document(ARTICLE)
    for setting, expected in reference.items():
        max_tokens, min_chars = map(int, setting.split(","))
        passages = chunk_document(doc, count_tokens, ChunkerParams(max_tokens, min_chars))
        got = [[p.id, p.start, p.end, list(p.paragraphs), p.section] for p in passages]
        assert got == expected, f"passages changed at max_tokens={max_tokens}, min_chars={min_chars}"


@pytest.mark.parametrize("text", ["x" * 5_000_000, ("lorem ipsum dolor sit amet " * 190_000).strip()], ids=["one-token", "one-line"])
def test_five_megabytes_in_one_paragraph_chunk_in_seconds(text):
    doc, params = _one_paragraph(text), ChunkerParams()
    started = time.perf_counter()
    passages = chunk_document(doc, _fast_count, params)
    assert time.perf_counter() - started < 10
    _check_cover(doc, passages, _fast_count, params)


def test_long_token_and_punctuation_runs_fit_the_window_with_the_real_tokenizer(count_tokens):
    params = ChunkerParams()
    for text in ["a," * 1000, "x" * 2000 + " tail words here.", "https://example.org/" + "a/b-c_d." * 300]:
        doc = _one_paragraph(text)
        _check_cover(doc, chunk_document(doc, count_tokens, params), count_tokens, params)


def test_time_grows_linearly_with_the_text(count_tokens):
    params = ChunkerParams()
    times = []
    for repeat in (4_000, 16_000):  # ~100 kB and ~400 kB of one line without sentence ends
        doc = _one_paragraph(("lorem ipsum dolor sit amet " * repeat).strip())
        started = time.perf_counter()
        passages = chunk_document(doc, count_tokens, params)
        times.append(time.perf_counter() - started)
        _check_cover(doc, passages, count_tokens, params)
    assert times[1] < times[0] * 4 * 2.5, f"4x the text took {times[1] / times[0]:.1f}x the time"
