"""Questions about the rows of sheets: is the answer's row the top passage's highlight, and does the verdict let it through?

    .venv/bin/python eval/bench_tables.py            # prints one JSON report; nothing is kept

A seeded generator writes three sheets into a fresh seeds folder beside the bundled article: a staff list (.csv),
a supplier list (.xlsx) and a room list (.csv), 40 rows each, with names and places drawn from small word lists.
For 15 rows of each sheet it asks two templated questions whose answer is one cell of that row ("Which
department does Chen Wei work in?", "What is the lead time of Nordwood?"), and for 15 names or rooms that are in
no sheet the same questions (the near-topic questions of a sheet: same columns, no such row). It reports, per
sheet and in all: the share of answerable questions whose top passage holds the row (R@1), whose top highlight
is exactly that row (`highlight_row`), that the verdict answers (`answered`), and the share of the absent-row
questions it refuses (`refused`), with the AUROC of the confidence between the two.

It measures the table rules of rag.corpus.chunking (a row is a sentence) and rag.corpus.passage_text (a row is
embedded under its header); run it on a checkout before them to compare (docs/tuning-history.md has both runs).
The questions are templated and the rows invented: a check of the mechanism on many rows, not a sample of what
users ask.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.metrics import auroc  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Service  # noqa: E402

SEED = 20261207
ROWS, ASKED, ABSENT = 40, 15, 15
FIRST = ["Alice", "Bruno", "Chen", "Dana", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kofi", "Lena", "Mateo", "Nadia",
         "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko", "Umar", "Vera", "Wiktor", "Yara", "Zeno"]
LAST = ["Martin", "Costa", "Wei", "Scott", "Yilmaz", "Haddad", "Olsen", "Blanc", "Duarte", "Berg", "Mensah", "Novak", "Ruiz",
        "Karimi", "Lund", "Iyer", "Fabre", "Moretti", "Dahl", "Sato", "Qureshi", "Petrova", "Zielinski", "Haddad", "Conti"]
DEPARTMENTS = ["Finance", "Engineering", "Legal", "Marketing", "HR", "Sales", "Logistics", "Research"]
CITIES = ["Madrid", "Dublin", "Warsaw", "Lisbon", "Tallinn", "Porto", "Ghent", "Bergen", "Turin", "Lyon"]
COUNTRIES = ["Sweden", "Germany", "Poland", "Italy", "Spain", "Norway", "Portugal", "Belgium", "Austria", "Finland"]
SUPPLIER_PARTS = ["Nord", "Steel", "Lumi", "Office", "Cam", "Sun", "River", "Oak", "Blue", "Terra", "Arc", "Volt", "Pine", "Iron"]
SUPPLIER_ENDS = ["wood", "co", "na", "pro", "tech", "rise", "line", "works", "gate", "form"]
BUILDINGS = ["North Wing", "South Wing", "Annex", "Tower", "Library Hall", "Workshop"]


def sheets(rng: random.Random) -> dict[str, dict]:
    """Three sheets: columns, rows, and for each the questions (template, answer column) asked of a row."""
    names = rng.sample([f"{a} {b}" for a in FIRST for b in LAST], ROWS + ABSENT)
    suppliers = rng.sample([a + b for a in SUPPLIER_PARTS for b in SUPPLIER_ENDS], ROWS + ABSENT)
    rooms = rng.sample([f"Room {b[0]}{n}" for b in BUILDINGS for n in range(100, 140)], ROWS + ABSENT)
    return {
        "staff": {"columns": ["Name", "Department", "Office", "Start year"],
                  "rows": [[n, rng.choice(DEPARTMENTS), rng.choice(CITIES), str(rng.randint(2005, 2024))] for n in names[:ROWS]],
                  "absent": names[ROWS:], "format": "csv",
                  "questions": [("Which department does {} work in?", 1), ("When did {} start?", 3)]},
        "suppliers": {"columns": ["Supplier", "Country", "Contact", "Lead time (days)"],
                      "rows": [[s, rng.choice(COUNTRIES), f"{s.lower()}@example.com", str(rng.randint(3, 60))] for s in suppliers[:ROWS]],
                      "absent": suppliers[ROWS:], "format": "xlsx",
                      "questions": [("What is the lead time of {}?", 3), ("Which country is {} in?", 1)]},
        "rooms": {"columns": ["Room", "Building", "Floor", "Seats"],
                  "rows": [[r, rng.choice(BUILDINGS), str(rng.randint(0, 6)), str(rng.choice([4, 6, 8, 12, 20, 40, 80]))] for r in rooms[:ROWS]],
                  "absent": rooms[ROWS:], "format": "csv",
                  "questions": [("How many seats does {} have?", 3), ("Which building is {} in?", 1)]},
    }


def write(seeds: Path, name: str, sheet: dict) -> None:
    if sheet["format"] == "csv":
        lines = [",".join(sheet["columns"])] + [",".join(row) for row in sheet["rows"]]
        (seeds / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = name.capitalize()
    for row in [sheet["columns"], *sheet["rows"]]:
        book.active.append([int(v) if v.isdigit() else v for v in row])
    book.save(seeds / f"{name}.{sheet['format']}")


def ask(service, question: str) -> dict:
    result = service.query(service.parse(question, top_k=3))
    top = result.hits[0] if result.hits else None
    return {"confidence": result.confidence, "answerable": result.answerable, "verdict": result.verdict,
            "top": top.passage.text if top else "", "highlight": top.highlight.text if top else "", "document": top.passage.document if top else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tables-"))
    seeds = work / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "seeds").iterdir():
        shutil.copy2(path, seeds / path.name)
    try:
        tables = sheets(rng)
        for name, sheet in tables.items():
            write(seeds, name, sheet)
        service = Service.open(Settings(seeds_dir=seeds, index_dir=work / "index", verifier=False))
        report, everything = {}, {"answerable": [], "absent": []}
        for name, sheet in tables.items():
            answerable, absent = [], []
            for row in rng.sample(sheet["rows"], ASKED):
                for template, _ in sheet["questions"]:
                    got = ask(service, template.format(row[0]))
                    line = " | ".join(row)
                    answerable.append({**got, "row_in_top": got["document"] == name and f" | {line}" in got["top"],
                                       "highlight_row": got["highlight"].split(" | ", 1)[-1] == line})
            for missing in sheet["absent"][:ABSENT]:
                template, _ = rng.choice(sheet["questions"])
                absent.append({**ask(service, template.format(missing)), "question": template.format(missing)})
            report[name] = summary(answerable, absent)
            everything["answerable"] += answerable
            everything["absent"] += absent
        report["all"] = summary(everything["answerable"], everything["absent"])
        report["misses"] = [{"highlight": a["highlight"], "verdict": a["verdict"]} for a in everything["answerable"] if not a["highlight_row"]][:10]
        report["absent_let_through"] = [{"question": a["question"], "highlight": a["highlight"], "confidence": round(a["confidence"], 3)}
                                        for a in everything["absent"] if a["answerable"]][:10]
        print(json.dumps(report, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def summary(answerable: list[dict], absent: list[dict]) -> dict:
    share = lambda xs: round(sum(xs) / len(xs), 3) if xs else None  # noqa: E731
    scores = [a["confidence"] for a in answerable] + [a["confidence"] for a in absent]
    labels = [True] * len(answerable) + [False] * len(absent)
    return {"answerable": len(answerable), "absent": len(absent),
            "R@1": share([a["row_in_top"] for a in answerable]),
            "highlight_row": share([a["highlight_row"] for a in answerable]),
            "answered": share([a["answerable"] for a in answerable]),
            "refused": share([not a["answerable"] for a in absent]),
            "auroc": round(auroc(scores, labels), 3)}


if __name__ == "__main__":
    raise SystemExit(main())
