"""A question as the library takes it: one typed `Query`, parsed once, whatever the transport.

HTTP, MCP, the CLI and the evaluation harness all turn what they were given into a `Query` with
`Query.parse` (or `Query.parse_batch`), which says in one sentence what is wrong (`InvalidInput`, a
422 over HTTP). After that nothing checks the question, `top_k`, the mode or the filter's shape again;
the one check that needs an index version (do the filter's document ids exist in it?) runs on the
snapshot the query is answered from (`Filters.check`).

`Mode` is the one list of retrieval modes; the default mode and `top_k` come from the settings
(`Settings.default_mode`, `Settings.default_top_k`), so every transport has the same defaults. `verify` is the
question's own choice or None (as the service is set: RAG_VERIFIER, which the retriever's verifier slot knows).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from rag.config import MODES, Mode
from rag.errors import InvalidInput
from rag.query.filters import Filters


@dataclass(frozen=True)
class Query:
    question: str  # stripped, non-empty, within the limit, no control characters
    top_k: int
    mode: Mode
    filters: Filters = field(default_factory=Filters)
    verify: bool | None = None  # read the best evidence with the verifier for the verdict; None: as the service is set (RAG_VERIFIER)

    @classmethod
    def parse(cls, question: object, top_k: object = None, mode: object = None, filters: object = None, *, settings,
              verify: object = None) -> "Query":
        """A checked query from request data; None takes the settings' default (`top_k`, `mode`; `verify` stays None:
        as the service is set)."""
        question = clean_question(question, settings.max_question_chars)
        return cls(question, *_parameters(top_k, mode, settings), Filters.parse(filters), _verify(verify))

    @classmethod
    def parse_batch(cls, questions: object, top_k: object = None, mode: object = None, filters: object = None, *, settings,
                    verify: object = None) -> list["Query"]:
        """One query per question, sharing one `top_k`, mode and filter; an invalid question names its position."""
        limit = settings.max_batch_questions
        if not isinstance(questions, list) or not questions:
            raise InvalidInput("questions must be a non-empty list of strings")
        if len(questions) > limit:
            raise InvalidInput(f"questions: at most {limit} per batch; got {len(questions)}")
        top_k, mode = _parameters(top_k, mode, settings)
        cleaned = []
        for i, question in enumerate(questions):
            try:
                cleaned.append(clean_question(question, settings.max_question_chars))
            except InvalidInput as exc:
                raise InvalidInput(f"questions[{i}]: {exc}") from None
        parsed, verify = Filters.parse(filters), _verify(verify)
        return [cls(question, top_k, mode, parsed, verify) for question in cleaned]


def clean_question(question: object, max_chars: int) -> str:
    """The question with surrounding whitespace removed, or InvalidInput saying what is wrong."""
    if not isinstance(question, str):
        raise InvalidInput("question must be a string")
    question = question.strip()
    if not question:
        raise InvalidInput("question is empty")
    if len(question) > max_chars:
        raise InvalidInput(f"question is {len(question)} characters long; the limit is {max_chars}")
    for ch in question:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise InvalidInput("question contains an unpaired surrogate (invalid Unicode)")
        if category == "Cc" and ch not in "\t\n\r":
            raise InvalidInput(f"question contains the control character U+{ord(ch):04X}")
    return question


def _parameters(top_k: object, mode: object, settings) -> tuple[int, Mode]:
    top_k = settings.default_top_k if top_k is None else top_k
    mode = settings.default_mode if mode is None else mode
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= settings.max_top_k:
        raise InvalidInput(f"top_k must be an integer from 1 to {settings.max_top_k}")
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return top_k, Mode(mode)


def _verify(verify: object) -> bool | None:
    """A question's own choice (True / False), or None: the service's setting (its retriever knows it)."""
    if verify is not None and not isinstance(verify, bool):
        raise InvalidInput("verify must be true or false")
    return verify
