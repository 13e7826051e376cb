"""Question sets for the retrieval evaluation: reading and checking them, nothing else.

Two sources, one result (a list of `Question`):

* a JSONL file, one question a line (the bundled eval/questions.jsonl is one):
  ``{"id": "q1", "question": "...", "quotes": ["verbatim evidence"], "document": "<doc id scoping the
  quotes>", "passages": ["<passage id>"], "answerable": true}``. ``question`` is required; ``id``
  defaults to the line number; gold is ``quotes`` (a passage holds one when it contains it whole, or
  at least half of it where a passage boundary cuts it: `eval.metrics.quote_hit`), or passage
  ids, or both; ``answerable`` defaults to true when gold is given. A line with no gold must say
  ``"answerable": false`` (a question the documents cannot answer): a question with neither gold nor
  that flag cannot be scored, so it is an error rather than a silent zero. Other fields are kept as
  ``tags`` (the bundled ``kind``, ``section``, ``split``); ``kind`` and ``split`` group the report.
* a BEIR folder (``corpus.jsonl`` with ``_id``/``title``/``text``, ``queries.jsonl``,
  ``qrels/test.tsv``): every query with a relevant document in the qrels becomes a question whose
  gold is those documents (a passage is relevant when its document is).
* a SQuAD 2.0 JSON file (``data[].title``, ``data[].paragraphs[].context``,
  ``paragraphs[].qas[].{id, question, answers[{text}], is_impossible}``): each article is one plain-text
  document, its paragraphs separated by a blank line (`squad_document`); each question's gold is its
  answer texts as quotes, scoped to its article and to the span of the paragraph it was written from
  (a year or a name that recurs in another paragraph is not the answer); ``is_impossible`` questions
  are the unanswerable ones. The article is a tag (``article``): the report groups by it.

A bad line raises one `InvalidInput` naming the file, the line and the field. Nothing here runs
retrieval or writes a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
    span: tuple[int, int] | None = None  # with `document`: only passages overlapping these offsets of it hold the quotes
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
    def article(self) -> str | None:
        value = self.tags.get("article")
        return None if value is None else str(value)

    @property
    def has_gold(self) -> bool:
        return bool(self.quotes or self.passages or self.documents)


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSONL file, a BEIR folder or a SQuAD JSON file; `InvalidInput` naming the line and
    field (or the article and question) if one is bad."""
    path = Path(path)
    if path.is_dir():
        return load_beir_queries(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such question file (give a JSONL file, a BEIR folder or a SQuAD JSON file)")
    if is_squad(path):
        return load_squad(path)[1]
    lines = _read_text(path).splitlines()
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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not valid UTF-8 (byte {exc.start})") from exc


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


# --- SQuAD ---------------------------------------------------------------------------------

PARAGRAPH_BREAK = "\n\n"


@dataclass(frozen=True)
class SquadArticle:
    title: str
    paragraphs: tuple[str, ...]  # the contexts, stripped

    @property
    def text(self) -> str:
        """The article as one plain-text document: what a user would put in seeds/ (`squad_document`)."""
        return squad_document(self.paragraphs)

    def span(self, index: int) -> tuple[int, int]:
        """Start and end offsets of paragraph `index` in `text`."""
        start = sum(len(p) + len(PARAGRAPH_BREAK) for p in self.paragraphs[:index])
        return start, start + len(self.paragraphs[index])


def squad_document(paragraphs: tuple[str, ...]) -> str:
    return PARAGRAPH_BREAK.join(paragraphs) + "\n"


def is_squad(path: Path) -> bool:
    """A .json file holding one JSON object with a "data" list: the SQuAD layout (anything else is read as JSONL)."""
    if Path(path).suffix.lower() != ".json":
        return False
    try:
        return isinstance(_squad_json(Path(path)).get("data"), list)
    except InvalidInput:
        return False


def load_squad(path: Path) -> tuple[list[SquadArticle], list[Question]]:
    """The articles and questions of a SQuAD (2.0 or 1.1) JSON file, in file order.

    An answerable question's quotes are its distinct answer texts (the document being its article, the span
    its paragraph); an ``is_impossible`` one is unanswerable and has no gold. Tags: ``article`` (the title)
    and ``paragraph`` (its index). A malformed entry is one `InvalidInput` naming the article and field.
    """
    path = Path(path)
    data = _squad_json(path).get("data")
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{path.name}: expected a SQuAD file: {{\"data\": [{{\"title\": ..., \"paragraphs\": [...]}}]}}")
    articles: list[SquadArticle] = []
    questions: list[Question] = []
    seen: set[str] = set()
    for number, entry in enumerate(data, start=1):
        article, rows = _squad_article(entry, number, path.name)
        if article.title in {a.title for a in articles}:
            raise InvalidInput(f"{path.name} article {number}: field 'title': {article.title!r} is already used")
        articles.append(article)
        for question in rows:
            if question.id in seen:
                raise InvalidInput(f"{path.name} article {article.title!r}: question id {question.id!r} is already used")
            seen.add(question.id)
            questions.append(replace(question, line=len(questions) + 1))
    if not questions:
        raise InvalidInput(f"{path}: no questions")
    return articles, questions


def _squad_article(entry, number: int, source: str) -> tuple[SquadArticle, list[Question]]:
    def bad(field_name: str, why: str) -> InvalidInput:
        return InvalidInput(f"{source} article {number}: field '{field_name}': {why}")

    if not isinstance(entry, dict):
        raise bad("data", "each entry a JSON object with 'title' and 'paragraphs'")
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip() or "\n" in title:
        raise bad("title", "required, a one-line string")
    paragraphs = entry.get("paragraphs")
    if not isinstance(paragraphs, list) or not paragraphs:
        raise bad("paragraphs", "required, a non-empty list")
    contexts, questions = [], []
    for index, paragraph in enumerate(paragraphs):
        context = paragraph.get("context") if isinstance(paragraph, dict) else None
        if not isinstance(context, str) or not context.strip():
            raise bad(f"paragraphs[{index}].context", "required, a non-empty string")
        contexts.append(context.strip())
    article = SquadArticle(title.strip(), tuple(contexts))
    for index, paragraph in enumerate(paragraphs):
        qas = paragraph.get("qas", [])
        if not isinstance(qas, list):
            raise bad(f"paragraphs[{index}].qas", "a list")
        for position, qa in enumerate(qas):
            questions.append(_squad_question(qa, article, index, lambda f, why: bad(f"paragraphs[{index}].qas[{position}].{f}", why)))
    return article, questions


def _squad_question(qa, article: SquadArticle, index: int, bad) -> Question:
    if not isinstance(qa, dict):
        raise bad("", "a JSON object")
    qid, text = qa.get("id"), qa.get("question")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip() or any(c.isspace() for c in str(qid)):
        raise bad("id", "required, a string without spaces")
    if not isinstance(text, str) or not text.strip():
        raise bad("question", "required, a non-empty string")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise bad("is_impossible", "true or false")
    answers = qa.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers):
        raise bad("answers", "a list of {\"text\": ...}")
    quotes = tuple(dict.fromkeys(a["text"].strip() for a in answers if a["text"].strip()))
    if not impossible and not quotes:
        raise bad("answers", "an answerable question (is_impossible false) needs an answer text")
    tags = {"article": article.title, "paragraph": index}
    if impossible:
        return Question(id=str(qid), question=text.strip(), answerable=False, tags=tags)
    return Question(
        id=str(qid), question=text.strip(), quotes=quotes, document=article.title, span=article.span(index), tags=tags,
    )


def _squad_json(path: Path) -> dict:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path.name}: expected a JSON object (a SQuAD file) or one JSON object a line (JSONL)")
    return data
