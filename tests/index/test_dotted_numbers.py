"""A dotted number is one BM25 term: "What changed in 3.7.1?" finds 3.7.1's notes, not 3.7.0's.

bm25s's default token pattern keeps words of two characters or more, so "3.7.1" gave no term at all and the
lexical signal ranked release notes by "changed" alone. rag.index.lexical keeps a version, an address or a
clause number whole before that pattern ("3.7.1", "192.168.0.1", "4.2"). A real index of the sections
collection's release notes, the real model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.index.lexical import tokens
from rag.service import Service

NOTES = Path(__file__).resolve().parents[2] / "eval" / "collections" / "sections" / "release-notes.md"


def test_a_dotted_number_is_one_term_and_other_numbers_split_as_before():
    assert tokens(["Lumen 3.7.1 at 192.168.0.1, clause 4.2, v2.4 in 2019."]) == [["lumen", "3.7.1", "192.168.0.1", "claus", "4.2", "v2", "2019"]]
    assert tokens(["Bay 1 holds 3 boats [5]."]) == [["bay", "hold", "boat"]]  # a lone digit is no term, as before


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoders) -> Service:
    root = tmp_path_factory.mktemp("versions")
    (root / "seeds").mkdir()
    shutil.copy(NOTES, root / "seeds" / NOTES.name)
    from rag.config import Settings

    return Service.open(Settings(seeds_dir=root / "seeds", index_dir=root / "index"), encoders)


@pytest.mark.parametrize("question, section", [
    ("What changed in 3.7.1?", "3.7.1"),
    ("What changed in 3.7.0?", "3.7.0"),
    ("What does 3.6.2 fix?", "3.6.2"),
])
def test_the_release_the_question_names_comes_first_lexically(service, question, section):
    result = service.query(service.parse(question, top_k=3, mode="lexical"))
    assert result.hits[0].passage.section == section, [h.passage.section for h in result.hits]


def test_a_version_scores_exactly_the_passages_that_name_it(service):
    lexical = service.snapshot.retriever.lexical
    passages = service.snapshot.passages
    naming = [i for i, p in enumerate(passages) if "3.7.0" in f"{p.section} {p.text}"]
    assert len(naming) == 2  # 3.7.0's notes, and 3.7.1's ("Upgrading from 3.7.0 needs no migration.")
    assert list(np.flatnonzero(lexical.scores("3.7.0"))) == naming
    assert not lexical.scores("4.0.2").any()
