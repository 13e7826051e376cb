"""The index wing: building, saving, checking and loading the searchable index.

Owns the build (`build`: corpus + model -> index, reusing unchanged vectors, under a lock), the files and
their checksums (`store`: format version, manifest, atomic writes, staleness), the FAISS choice (`ann`),
BM25 (`lexical`), and the store seam the retriever searches through (`vector_store`: FAISS + bm25s by
default; `qdrant_store`: a Qdrant collection, RAG_VECTOR_STORE=qdrant).

May import: `rag.config`, `rag.errors`, `rag.files`, `rag.corpus`, `rag.encoding`.
"""
