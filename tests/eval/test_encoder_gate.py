"""The default query precision keeps the answers (eval.encoder_gate), and its model is a verified build artifact.

* The gate, on the bundled eval questions (dev and test), in every mode: the default variant
  (Settings().query_precision) against the verified fp32 export, both over the shared index.
* The gate can fail: an encoder that returns slightly perturbed vectors is caught.
* The quantized model is cached beside the fp32 export with a sidecar; a tampered file is made again.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.config import Settings
from rag.encoding.base import Encoder
from rag.encoding.encoders import Encoders
from rag.encoding.onnx_encoder import ONNX_CHECK_TEXTS, ensure_onnx
from eval.encoder_gate import compare_encoders, with_encoder
from eval.evaluation import load_questions
from rag.encoding.quantize import ensure_quantized, quantized_path

QUESTIONS = load_questions()
DEFAULT = Settings.model_fields["query_precision"].default


@pytest.fixture(scope="module")
def fp32_system(service, settings):
    return with_encoder(service, Encoders(service.model, "onnx", settings.encoder_dir, precision="fp32").query())


@pytest.mark.slow
def test_default_precision_passes_the_gate(service, settings, fp32_system):
    variant = Encoders(service.model, "onnx", settings.encoder_dir, precision=DEFAULT).query()
    assert variant.precision == DEFAULT
    report = compare_encoders(fp32_system, with_encoder(service, variant), QUESTIONS)
    assert {q.split for q in QUESTIONS} == {"dev", "test"}
    assert {c.mode for c in report.checks} == {"hybrid", "dense", "lexical"}
    assert report.passed, report.failures
    assert report.same_top1 >= 0.98
    assert report.same_top1_by_mode["lexical"] == 1.0


class _Jittered(Encoder):
    """fp32 vectors plus noise of a size quantization could cause if done badly (cosine ~0.99)."""

    def __init__(self, inner, scale: float):
        self.inner, self.scale, self.rng = inner, scale, np.random.default_rng(0)
        self.kind, self.dimension = inner.kind, inner.dimension

    def encode(self, texts, **kwargs):
        v = self.inner.encode(texts)
        v = v + self.scale * self.rng.standard_normal(v.shape).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.slow  # a whole question set, a subprocess or a fresh export: the slow tier
def test_the_gate_catches_an_encoder_that_moves_answers(service, fp32_system):
    noisy = with_encoder(service, _Jittered(fp32_system.snapshot.retriever.encoder, 0.01))
    report = compare_encoders(fp32_system, noisy, QUESTIONS, modes=("hybrid", "dense"))
    assert not report.passed
    assert report.failures
    assert report.same_top1_by_mode["dense"] < 1.0


def test_quantized_model_is_a_verified_cached_artifact(service, settings, tmp_path):
    fp32 = ensure_onnx(settings.encoder_dir, service.model, service.encoders.reference)
    work = tmp_path / fp32.name
    work.write_bytes(fp32.read_bytes())
    path = ensure_quantized(work, "int8", ONNX_CHECK_TEXTS, service.model.local_dir)
    assert path == quantized_path(work, "int8")
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["min_cosine"] >= 0.999 and len(meta["sha256"]) == 64
    stamp = path.stat().st_mtime_ns
    assert ensure_quantized(work, "int8", ONNX_CHECK_TEXTS, service.model.local_dir).stat().st_mtime_ns == stamp  # reused
    with open(path, "r+b") as f:  # a flipped byte: the sidecar no longer matches, so it is made again
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = ensure_quantized(work, "int8", ONNX_CHECK_TEXTS, service.model.local_dir)
    assert json.loads(again.with_name(again.name + ".json").read_text())["sha256"] == meta["sha256"]
