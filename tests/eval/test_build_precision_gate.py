"""The opt-in bf16 build precision against the fp32 default: an index embedded in each.

`RAG_BUILD_PRECISION=bf16` embeds builds in bfloat16 (rag.encoding.build_encoder). Its vectors differ from the
fp32 export's at the fourth or fifth decimal, which can flip near ties between passages. The gate the int8 query
model passed (eval.encoder_gate.compare_encoders: both splits, every mode, R@1, R@5 and MRR@10 not lower) it
misses by one near tie (test split, dense: one gold passage from rank 2 to 3, MRR@10 0.8671 -> 0.8654), which is
why fp32 stays the default. What is tested: the default mode passes on both splits, every mode keeps the same
top-1 passage for 98% of the questions, and no metric moves by more than a near tie; the two builds cut the same
passages (the token count is the same), the precision is in the manifest and a change of it rebuilds, and the bf16
vectors are unit length and near fp32's.
"""

from __future__ import annotations

import numpy as np
import pytest

from eval.encoder_gate import compare_encoders
from eval.evaluation import load_questions
from rag.config import Settings
from rag.encoding.build_encoder import Bf16BuildEncoder, cpu_has_bf16, resolve_build_precision
from rag.service import Service
from tests.conftest import SEEDS

QUESTIONS = load_questions()


def test_auto_means_bf16_exactly_where_the_cpu_has_it():
    assert resolve_build_precision("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_build_precision("auto", device="cuda") == "fp32"
    assert resolve_build_precision("fp32") == "fp32" and resolve_build_precision("bf16") == "bf16"


@pytest.fixture(scope="module")
def builds(tmp_path_factory, encoders):
    opened = {}
    for precision in ("fp32", "bf16"):
        settings = Settings(index_dir=tmp_path_factory.mktemp(f"index-{precision}"), seeds_dir=SEEDS, build_precision=precision)
        opened[precision] = Service.open(settings, encoders)
    return opened


def test_bf16_vectors_are_unit_length_and_near_fp32(encoders):
    texts = ["Why did Trotsky think the bourgeoisie could not lead?", "a", "The theory of permanent revolution. " * 60]
    bf16, fp32 = encoders.builder("bf16"), encoders.builder("fp32")
    assert isinstance(bf16, Bf16BuildEncoder) and bf16.precision == "bf16"
    a, b = bf16.encode(texts), fp32.encode(texts)
    assert a.dtype == np.float32 and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) > 0.9995
    assert [bf16.count_tokens(t) for t in texts] == [fp32.count_tokens(t) for t in texts]


def test_the_precision_is_recorded_and_the_two_builds_cut_the_same_passages(builds):
    fp32, bf16 = builds["fp32"].snapshot, builds["bf16"].snapshot
    assert bf16.index.manifest["build_precision"] == "bf16" and "build_precision" not in fp32.index.manifest
    assert [(p.id, p.text, p.sentences) for p in bf16.passages] == [(p.id, p.text, p.sentences) for p in fp32.passages]
    assert bf16.index.embedded_keys == fp32.index.embedded_keys
    assert bf16.id != fp32.id


def test_changing_the_precision_rebuilds(builds, encoders):
    settings = builds["bf16"].settings.model_copy(update={"build_precision": "fp32"})
    reopened = Service.open(settings, encoders)
    assert "build_precision" not in reopened.snapshot.index.manifest
    assert reopened.snapshot.id == builds["fp32"].snapshot.id  # the fp32 build's very files: no bf16 vector reused


@pytest.mark.slow  # the whole question set in every mode
def test_bf16_builds_keep_the_default_mode_and_move_only_near_ties(builds):
    report = compare_encoders(builds["fp32"], builds["bf16"], QUESTIONS)
    assert {q.split for q in QUESTIONS} == {"dev", "test"}
    assert {c.mode for c in report.checks} == {"hybrid", "dense", "lexical"}
    assert all(c.ok for c in report.checks if c.mode == "hybrid"), report.failures
    assert min(report.same_top1_by_mode.values()) >= 0.98
    assert all(c.variant >= c.reference - 0.01 for c in report.checks), report.failures  # a question or two of 135, no more
