"""CI guard: the default mode holds eval/floor.json's "sections" floor on the sections collection.

eval/collections/sections holds eight short documents whose subjects are their headings (release notes, incident
reports, minutes, an API reference, an FAQ ...), and sections.jsonl 40 answerable questions, 24 near-topic ones
and 4 off-topic ones about them. Before the verdict read a sentence under its heading it kept 70% of the
answerable questions at AUROC 0.756 (docs/quality.md, "Facts under their heading"). A real index, the real model.
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
def sections_service(tmp_path_factory, encoders) -> Service:
    from rag.config import Settings

    root = tmp_path_factory.mktemp("sections")
    return Service.open(Settings(seeds_dir=COLLECTION / "sections", index_dir=root / "index"), encoders)


def test_the_sections_collection_holds_its_floor(sections_service):
    floor = json.loads((EVAL_DIR / "floor.json").read_text())["sections"]
    questions = load_questions(COLLECTION / "sections.jsonl")
    assert sum(q.answerable for q in questions) == 40 and len(questions) == 68
    got = evaluate({"default": service_system(sections_service, floor["mode"])}, questions)["systems"]["default"]["all"]
    for metric in ("r@1", "highlight@1", "auroc_near", "kept_answerable", "refused_near_topic", "refused_off_topic"):
        assert got[metric] >= floor[metric], f"{metric} fell to {got[metric]:.3f}, below the floor {floor[metric]}"
