"""The index wing: building, saving, checking and loading the searchable index.

Owns the build (`build`: corpus + model -> index, reusing unchanged vectors, under a lock), the files and
their checksums (`store`: format version, manifest, atomic writes, staleness), the FAISS choice (`ann`)
and BM25 (`lexical`).

May import: `rag.config`, `rag.errors`, `rag.files`, `rag.corpus`, `rag.encoding`.
"""
