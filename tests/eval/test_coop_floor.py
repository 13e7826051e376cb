"""CI guard: every file of a stranger's folder gets in, and the default mode holds eval/floor.json's "coop" floor.

eval/collections/coop holds 12 files of an invented community energy co-operative in 10 formats (Markdown, text,
HTML, Word, Excel, CSV, PowerPoint, PDF, OpenDocument, e-mail), written by a helper as a new user would, and
coop.jsonl 40 answerable questions with verbatim quotes, 20 close unanswerable ones and 5 off-topic ones, written
before any query was run (docs/quality.md, "A second stranger's folder"). Retrieval reads it well; the verdict
barely does, so its figures here only keep it from getting worse. A real index, the real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.evaluation import EVAL_DIR, evaluate, load_questions, service_system
from rag.service import Service

pytestmark = pytest.mark.slow  # a whole collection: `make test` (CI), not the edit-test loop

COLLECTION = Path(__file__).resolve().parents[2] / "eval" / "collections"


@pytest.fixture(scope="module")
def coop_service(tmp_path_factory, encoders) -> Service:
    from rag.config import Settings

    root = tmp_path_factory.mktemp("coop")
    return Service.open(Settings(seeds_dir=COLLECTION / "coop", index_dir=root / "index"), encoders)


def test_every_file_of_the_folder_gets_in_and_holds_its_quotes(coop_service):
    files = sorted(p.stem for p in (COLLECTION / "coop").iterdir())
    assert len({p.suffix for p in (COLLECTION / "coop").iterdir()}) == 10
    assert coop_service.snapshot.skipped == (), coop_service.snapshot.skipped
    texts = {doc_id: d.text for doc_id, d in coop_service.snapshot.documents.items()}
    assert sorted(texts) == files
    for q in load_questions(COLLECTION / "coop.jsonl"):
        for quote in q.quotes:
            assert texts[q.document].count(quote) == 1, (q.id, quote)


def test_the_coop_folder_holds_its_floor(coop_service):
    floor = json.loads((EVAL_DIR / "floor.json").read_text())["coop"]
    questions = load_questions(COLLECTION / "coop.jsonl")
    assert sum(q.answerable for q in questions) == 40 and len(questions) == 65
    got = evaluate({"default": service_system(coop_service, floor["mode"])}, questions)["systems"]["default"]["all"]
    for metric in ("r@1", "highlight@1", "refused_off_topic", "auroc_all", "kept_answerable"):
        assert got[metric] >= floor[metric], f"{metric} fell to {got[metric]:.3f}, below the floor {floor[metric]}"
