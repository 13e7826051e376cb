"""The corpus wing: from files on disk to documents, passages and the text each passage is embedded as.

Owns reading files (`formats`: one reader per format; `documents`: a folder becomes a `Corpus`, with
what was skipped and why), their metadata (`metadata`: one schema for front matter and sidecars),
cutting documents into passages (`chunking`) and the embedded text of a passage (`passage_text`).

May import: `rag.config`, `rag.errors`, `rag.files`. Nothing here knows about models, indexes or queries.
"""
