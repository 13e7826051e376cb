"""A table row's words include its header's: the verdict reads a row as it was embedded, under its header.

A sheet's row says "Chen Wei | Engineering | Warsaw | 2019"; what its cells are ("Department", "Start year") is
only in the header. The row is embedded under its header (rag.corpus.passage_text.sentence_texts), but the
verdict masked the question with the row's own words, so "When did Zeno Petrova start?" was judged by how like
"When did start" the rows were, and a templated lookup of one cell was refused one time in ten
(eval/bench_tables.py: answered 0.900 -> 1.000 with the header's words; every absent row still refused). A real
index of two small sheets, the real model.
"""

from __future__ import annotations

import pytest

from rag.service import Service

STAFF = """Name,Department,Office,Start year
Chen Wei,Engineering,Warsaw,2019
Vera Conti,Legal,Madrid,2015
Ilse Navarro,Finance,Porto,2021
Tomas Okafor,Marketing,Dublin,2012
Zeno Petrova,Engineering,Bergen,2008
"""
SUPPLIERS = """Supplier,Country,Contact,Lead time (days)
Nordwood,Norway,Kari Dahl,14
Steelline,Germany,Jonas Vogel,21
Brightpack,Portugal,Rui Matos,9
Calder Mills,Scotland,Fiona Reid,30
"""

NOTES = """# Supplier notes

Our newest supplier is Ironbridge, a foundry in Wales. Ironbridge delivers castings within 12 days of an order being
placed. Their contact is Owen Price.
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoders) -> Service:
    root = tmp_path_factory.mktemp("rows")
    (root / "seeds").mkdir()
    (root / "seeds" / "staff.csv").write_text(STAFF, encoding="utf-8")
    (root / "seeds" / "suppliers.csv").write_text(SUPPLIERS, encoding="utf-8")
    (root / "seeds" / "notes.md").write_text(NOTES, encoding="utf-8")
    from rag.config import Settings

    return Service.open(Settings(seeds_dir=root / "seeds", index_dir=root / "index"), encoders)


def ask(service, question: str):
    return service.query(service.parse(question, top_k=3))


@pytest.mark.parametrize("question, row", [
    ("When did Zeno Petrova start?", "Zeno Petrova | Engineering"),
    ("When did Ilse Navarro start?", "Ilse Navarro | Finance"),
    ("Which country is Calder Mills in?", "Calder Mills | Scotland"),
    ("Which country is Brightpack in?", "Brightpack | Portugal"),
    ("Which department does Tomas Okafor work in?", "Tomas Okafor | Marketing"),
    ("What is the lead time of Steelline?", "Steelline | Germany"),
])
def test_a_lookup_of_one_cell_is_answered_by_its_row(service, question, row):
    result = ask(service, question)
    assert row in result.hits[0].highlight.text
    assert result.answerable, (result.verdict, result.confidence, result.features)


@pytest.mark.parametrize("question", ["Which department does Marta Lindqvist work in?", "What is the lead time of Harwell Forge?"])
def test_a_row_the_sheet_does_not_have_is_still_refused(service, question):
    assert ask(service, question).verdict == "not_found"



@pytest.mark.parametrize("question", ["What is the lead time in days for Ironbridge?", "How many days lead time does Ironbridge have?"])
def test_a_sheet_below_the_prose_that_answers_does_not_refuse_it(service, question):
    # the note ranks first and answers; the suppliers sheet after it has no Ironbridge row, which refused it at 0.05
    result = ask(service, question)
    assert result.hits[0].passage.document == "notes" and "12 days" in result.hits[0].highlight.text
    assert result.verdict == "found", (result.confidence, result.features)
