"""Evaluation, beside the library and never inside it: `rag eval`'s harness, the question sets, the
metrics, TREC/BEIR files, the encoder gate and the benchmarks.

This package imports `rag` (and, for live benchmarks, starts `api`); nothing under `rag/` imports it
(tests/test_architecture.py checks every import, function-level ones included). The folder also holds
the data the harness reads (`questions.jsonl`, `floor.json`, `collections/`) and the tracked results
(`results/`).
"""
