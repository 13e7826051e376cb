"""Question sets for the retrieval evaluation: reading and checking them, nothing else.

Two sources, one result (a list of `Question`):

* a JSONL file, one question a line (the bundled eval/questions.jsonl is one):
  ``{"id": "q1", "question": "...", "quotes": ["verbatim evidence"], "document": "<doc id scoping the
  quotes>", "passages": ["<passage id>"], "answerable": true}``. ``question`` is required; ``id``
  defaults to the line number; gold is ``quotes`` (a passage holds one when it contains it whole, or
  at least half of it as one run where a chunk boundary cuts it: `eval.metrics.quote_hit`), or passage
  ids, or both; ``answerable`` defaults to true when gold is given. A line with no gold must say
  ``"answerable": false`` (a question the documents cannot answer): a question with neither gold nor
  that flag cannot be scored, so it is an error rather than a silent zero. Other fields are kept as
  ``tags`` (the bundled ``kind``, ``section``, ``split``); ``kind`` and ``split`` group the report.
* a BEIR folder (``corpus.jsonl`` with ``_id``/``title``/``text``, ``queries.jsonl``,
  ``qrels/test.tsv``): every query with a relevant document in the qrels becomes a question whose
  gold is those documents (a passage is relevant when its document is).

A bad line raises one `InvalidInput` naming the file, the line and the field. Nothing here runs
retrieval or writes a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InvalidInput

KNOWN_FIELDS = {"id", "question", "quotes", "document", "passages", "answerable"}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answerable: bool = True
    quotes: tuple[str, ...] = ()  # verbatim evidence
    document: str | None = None  # when set, only passages of this document can hold the quotes
    passages: tuple[str, ...] = ()  # gold passage ids
    documents: tuple[str, ...] = ()  # gold document ids (BEIR qrels): every passage of them is relevant
    tags: dict = field(default_factory=dict, compare=False)  # other fields of the line (kind, section, split)
    line: int = 0  # where it came from, for messages

    @property
    def kind(self) -> str | None:
        value = self.tags.get("kind")
        return None if value is None else str(value)

    @property
    def split(self) -> str | None:
        value = self.tags.get("split")
        return None if value is None else str(value)

    @property
    def has_gold(self) -> bool:
        return bool(self.quotes or self.passages or self.documents)


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSONL file or a BEIR folder; `InvalidInput` naming the line and field if one is bad."""
    path = Path(path)
    if path.is_dir():
        return load_beir_queries(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such question file (give a JSONL file or a BEIR folder)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = parse_line(line, number, path.name)
        if question.id in seen:
            raise InvalidInput(f"{path.name} line {number}: field 'id': {question.id!r} is already used on line {seen[question.id]}")
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise InvalidInput(f"{path}: no questions (one JSON object a line)")
    return questions


def parse_line(line: str, number: int, source: str = "questions") -> Question:
    """One JSONL line as a `Question`, or `InvalidInput` saying which field is wrong."""

    def bad(field_name: str, why: str) -> InvalidInput:
        where = f"{source} line {number}"
        return InvalidInput(f"{where}: field '{field_name}': {why}" if field_name else f"{where}: {why}")

    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad("", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise bad("", "expected a JSON object {\"question\": ...}")
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise bad("question", "required, a non-empty string")
    qid = row.get("id", str(number))
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not str(qid).strip() or any(c.isspace() for c in str(qid)):
        raise bad("id", "a string or number without spaces")
    quotes = _strings(row, "quotes", bad)
    passages = _strings(row, "passages", bad)
    document = row.get("document")
    if document is not None and (not isinstance(document, str) or not document.strip()):
        raise bad("document", "a document id (string)")
    if document is not None and not quotes:
        raise bad("document", "scopes the quotes, but the line has no 'quotes'")
    has_gold = bool(quotes or passages)
    answerable = row.get("answerable", True if has_gold else None)
    if answerable is None:
        raise bad("answerable", "no gold: give 'quotes' or 'passages', or \"answerable\": false for a question the documents cannot answer")
    if not isinstance(answerable, bool):
        raise bad("answerable", "true or false")
    if answerable and not has_gold:
        raise bad("answerable", "true needs gold evidence: 'quotes' or 'passages'")
    if not answerable and has_gold:
        raise bad("answerable", "false, but the line gives gold evidence; drop one of them")
    tags = {k: v for k, v in row.items() if k not in KNOWN_FIELDS}
    for name in ("kind", "split"):
        if name in tags and not isinstance(tags[name], str):
            raise bad(name, "a string (it groups the report)")
    return Question(
        id=str(qid), question=text.strip(), answerable=answerable, quotes=quotes, document=document,
        passages=passages, tags=tags, line=number,
    )


def _strings(row: dict, name: str, bad) -> tuple[str, ...]:
    value = row.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad(name, "a list of non-empty strings")
    return tuple(value)


# --- BEIR ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str


def load_beir_corpus(folder: Path) -> list[BeirDocument]:
    """corpus.jsonl of a BEIR folder (`_id`, `title`, `text`)."""
    documents = []
    for number, row in _jsonl(Path(folder) / "corpus.jsonl"):
        doc_id, text = row.get("_id"), row.get("text")
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or not str(doc_id).strip():
            raise InvalidInput(f"corpus.jsonl line {number}: field '_id': required, a string")
        if not isinstance(text, str):
            raise InvalidInput(f"corpus.jsonl line {number}: field 'text': required, a string")
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise InvalidInput(f"corpus.jsonl line {number}: field 'title': a string")
        documents.append(BeirDocument(str(doc_id), title, text))
    if not documents:
        raise InvalidInput(f"{folder}/corpus.jsonl: no documents")
    return documents


def load_beir_queries(folder: Path, qrels_name: str = "test.tsv") -> list[Question]:
    """The queries of a BEIR folder that have at least one relevant document in qrels/<qrels_name>."""
    folder = Path(folder)
    queries = {}
    for number, row in _jsonl(folder / "queries.jsonl"):
        qid, text = row.get("_id"), row.get("text")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip():
            raise InvalidInput(f"queries.jsonl line {number}: field '_id': required, a string")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"queries.jsonl line {number}: field 'text': required, a non-empty string")
        queries[str(qid)] = (text.strip(), number)
    relevant = read_beir_qrels(folder / "qrels" / qrels_name)
    unknown = sorted(set(relevant) - set(queries))
    if unknown:
        raise InvalidInput(f"qrels/{qrels_name}: query id {unknown[0]!r} is not in queries.jsonl")
    return [
        Question(id=qid, question=queries[qid][0], documents=tuple(docs), line=queries[qid][1])
        for qid, docs in relevant.items()
    ]


def read_beir_qrels(path: Path) -> dict[str, list[str]]:
    """query id -> relevant document ids (score > 0), in file order; the header line is optional."""
    if not path.is_file():
        raise InvalidInput(f"{path}: missing (a BEIR folder needs qrels/test.tsv)")
    relevant: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cells = line.split("\t") if "\t" in line else line.split()
        if not cells or not line.strip() or (number == 1 and cells[0] == "query-id"):
            continue
        if len(cells) != 3:
            raise InvalidInput(f"{path.name} line {number}: expected 'query-id<TAB>corpus-id<TAB>score'")
        try:
            score = int(cells[2])
        except ValueError:
            raise InvalidInput(f"{path.name} line {number}: field 'score': an integer, got {cells[2]!r}") from None
        if score > 0:
            relevant.setdefault(cells[0], []).append(cells[1])
    if not relevant:
        raise InvalidInput(f"{path}: no relevant (score > 0) pairs")
    return relevant


def _jsonl(path: Path):
    if not path.is_file():
        raise InvalidInput(f"{path}: missing (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/test.tsv)")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{path.name} line {number}: expected a JSON object")
        yield number, row
