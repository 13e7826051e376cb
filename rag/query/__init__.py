"""The query wing: from a question to ranked, highlighted passages and a verdict.

Owns the typed request (`request`: `Mode`, `Query`, parsed once), filters (`filters`), the ranking and
fusion of the two signals (`retrieval`), the highlight (`highlight`), the answer-type rules both the
highlight and the verdict read (`answer_types`), and the verdict with its fitted model (`verdict`,
`answerable`).

May import: `rag.config`, `rag.errors`, `rag.files`, `rag.corpus`, `rag.encoding`, `rag.index`.
"""
