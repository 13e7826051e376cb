"""Checks on the hand-written retrieval eval set, eval/questions.jsonl.

The gold evidence of an answerable question is a list of verbatim quotes from the
seed article; a retrieved passage is evidence when it hits any of them
(eval.metrics.quote_hit). These tests keep the file honest: quotes really are in
the article, sit in the stated section, do not accidentally "hit" unrelated
paragraphs, and the dev/test split is the seeded, kind-stratified draw below.

The set grew once (issue 12): near-topic unanswerable questions (`near-topic`:
people, parties and events the article names, facts it does not give) and more
paraphrases, ids after q128 and n001 on. The new rows got their own seeded draw,
so the first batch's splits did not move. A third batch (ids o001 on, kind
`off-topic`) holds questions from outside the documents' domain altogether
(cooking, programming, sport): the verdict must refuse every one of them. The
first batch's `unanswerable` questions are mostly the article's domain but not
its content (Kautsky, Kronstadt), and are reported as "out of scope".
"""

import collections
import json
import random
import re
from pathlib import Path

import pytest

from eval.metrics import quote_hit

from tests.corpus.test_documents import HEADINGS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "eval" / "questions.jsonl"
SEED_TEXT = ROOT / "seeds" / "permanent-revolution-1917-and-today.txt"

SECTIONS = ["Introduction", *HEADINGS[1:]]  # the eval set names the untitled opening "Introduction"
ANSWERABLE_KINDS = {"paraphrase", "entity", "number", "why_how", "multi_paragraph"}
UNANSWERABLE_KINDS = {"unanswerable", "near-topic", "off-topic"}  # "unanswerable": the first batch, out of the article's scope
KINDS = ANSWERABLE_KINDS | UNANSWERABLE_KINDS
KEYS = {"id", "question", "quotes", "kind", "section", "split", "answerable"}

# The split was drawn once, before any retrieval run, with this seed and rule.
SPLIT_SEED = 20180111
DEV_FRACTION = 0.4
SECOND_BATCH_SEED = 2018011112  # issue 12's additions, drawn the same way before any system saw them
THIRD_BATCH_SEED = 2018011113  # the off-topic questions, drawn the same way before any system saw them
FIRST_BATCH_LAST_ANSWERABLE = 128


def batch(row_id: str) -> int:
    """1 for the original set, 2 for issue 12's additions (q129 on, every n id), 3 for the off-topic ones (o ids)."""
    if row_id.startswith("o"):
        return 3
    return 2 if row_id.startswith("n") or (row_id.startswith("q") and int(row_id[1:]) > FIRST_BATCH_LAST_ANSWERABLE) else 1


def assign_splits(rows: list[dict], seed: int = SPLIT_SEED, dev_fraction: float = DEV_FRACTION) -> dict[str, str]:
    """Seeded draw stratified by kind: shuffle each kind's sorted ids, first round(40%) are dev."""
    by_kind = collections.defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row["id"])
    rng = random.Random(seed)
    split = {}
    for kind in sorted(by_kind):
        ids = sorted(by_kind[kind])
        rng.shuffle(ids)
        n_dev = round(dev_fraction * len(ids))
        for j, id_ in enumerate(ids):
            split[id_] = "dev" if j < n_dev else "test"
    return split


@pytest.fixture(scope="module")
def text() -> str:
    return SEED_TEXT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def section_spans(text) -> dict[str, tuple[int, int]]:
    starts = [0] + [text.index(f"\n{h}\n") for h in HEADINGS[1:]] + [len(text)]
    return {name: (a, b) for name, a, b in zip(SECTIONS, starts, starts[1:])}


@pytest.fixture(scope="module")
def paragraphs(text) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def answerable(rows):
    return [r for r in rows if r["answerable"]]


def test_schema(rows):
    for r in rows:
        assert set(r) == KEYS, r["id"]
        assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
        assert r["kind"] in KINDS, r["id"]
        assert r["split"] in {"dev", "test"}, r["id"]
        assert isinstance(r["quotes"], list), r["id"]
        if r["answerable"] is True:
            assert r["kind"] in ANSWERABLE_KINDS and r["section"] in SECTIONS, r["id"]
            assert re.fullmatch(r"q\d{3}", r["id"]), r["id"]
        else:
            assert r["answerable"] is False, r["id"]
            assert r["kind"] in UNANSWERABLE_KINDS and r["section"] is None and r["quotes"] == [], r["id"]
            prefix = {"unanswerable": "u", "near-topic": "n", "off-topic": "o"}[r["kind"]]
            assert re.fullmatch(prefix + r"\d{3}", r["id"]), r["id"]


def test_ids_and_questions_unique(rows):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    questions = [r["question"].strip().lower() for r in rows]
    assert len(questions) == len(set(questions))


def test_readme_example_not_in_eval_set(rows):
    assert all("why did trotsky think the bourgeoisie could not lead" not in r["question"].lower() for r in rows)


def test_counts(rows):
    assert len(answerable(rows)) >= 60
    assert len([r for r in rows if r["kind"] == "unanswerable"]) >= 15
    assert len([r for r in rows if r["kind"] == "near-topic"]) >= 45
    assert len([r for r in rows if r["kind"] == "off-topic"]) >= 20
    assert len([r for r in rows if r["kind"] == "paraphrase" and batch(r["id"]) == 2]) >= 30


def test_every_quote_verbatim_in_article(text, rows):
    for r in answerable(rows):
        assert r["quotes"], f"{r['id']} has no gold quote"
        for q in r["quotes"]:
            assert q in text, f"{r['id']}: quote not verbatim in the article: {q!r}"
            assert q == q.strip() and len(q) <= 250, f"{r['id']}: quote should be a short span: {q!r}"


def test_first_quote_in_stated_section(text, rows, section_spans):
    for r in answerable(rows):
        a, b = section_spans[r["section"]]
        assert r["quotes"][0] in text[a:b], f"{r['id']}: first quote is not in section {r['section']!r}"


def test_multi_paragraph_quotes_span_paragraphs(rows, paragraphs):
    for r in rows:
        if r["kind"] != "multi_paragraph":
            continue
        homes = {i for q in r["quotes"] for i, p in enumerate(paragraphs) if q in p}
        assert len(homes) >= 2, f"{r['id']}: quotes come from fewer than two paragraphs"


def test_quotes_do_not_hit_unrelated_paragraphs(rows, paragraphs):
    # A partial match (>= 50% of a quote as one contiguous run) must not be found in a
    # paragraph that holds none of the question's quotes, or generic phrases like
    # "the theory of the permanent revolution" would score as hits.
    for r in answerable(rows):
        homes = {i for q in r["quotes"] for i, p in enumerate(paragraphs) if q in p}
        for i, p in enumerate(paragraphs):
            if i in homes:
                continue
            for q in r["quotes"]:
                assert not quote_hit(p, q), f"{r['id']}: {q!r} partially hits paragraph {i}"


def test_every_section_covered(rows):
    counts = collections.Counter(r["section"] for r in answerable(rows))
    for s in SECTIONS:
        assert counts[s] >= 3, f"section {s!r} has only {counts[s]} questions"


def test_every_kind_at_least_12(rows):
    counts = collections.Counter(r["kind"] for r in rows)
    for k in KINDS:
        assert counts[k] >= 12, f"kind {k!r} has only {counts[k]} questions"


def test_splits_cover_every_kind(rows):
    pairs = {(r["kind"], r["split"]) for r in rows}
    for k in KINDS:
        assert (k, "dev") in pairs and (k, "test") in pairs, k


def test_split_is_the_seeded_stratified_draw(rows):
    expected = assign_splits([r for r in rows if batch(r["id"]) == 1])
    expected |= assign_splits([r for r in rows if batch(r["id"]) == 2], seed=SECOND_BATCH_SEED)
    expected |= assign_splits([r for r in rows if batch(r["id"]) == 3], seed=THIRD_BATCH_SEED)
    assert {r["id"]: r["split"] for r in rows} == expected
