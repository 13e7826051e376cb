"""Quantized variants of the exported query model (rag.encoding.onnx_encoder): how they are made.

This module owns the recipes that turn the verified fp32 export into a smaller-precision model
file. It only writes files; whether a variant may be used is decided by measurement
(eval.encoder_gate), and the cache that makes and verifies the one in use is `ensure_quantized` below.

* `quantize_dynamic_int8` - onnxruntime dynamic quantization (int8 weights, activations
  quantized per call), per-channel, optionally leaving named nodes in fp32. Mixed precision
  is how a variant keeps its answers: the nodes to leave out are found by measurement
  (`node_groups` lists the candidates; eval/bench_encoder.py --sensitivity measures each).
* `quantize_static_int8` - static QDQ quantization calibrated on passages and questions.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rag.encoding.artifacts import artifact_sha256, ensure_artifact
from rag.encoding.onnx_encoder import OnnxEncoder, save_model_atomic
from rag.errors import ModelError
from rag.files import atomic_path

QUANTIZABLE = ("MatMul", "Attention")


def node_groups(onnx_path: Path) -> dict[str, str]:
    """Quantizable weight nodes of the export, name -> role ('qkv', 'attn_out', 'ffn_in', 'ffn_out') with its layer.

    The export has per layer one fused `Attention` (QKV) and three weight MatMuls, in graph order:
    attention output, feed-forward in, feed-forward out.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    roles = ("attn_out", "ffn_in", "ffn_out")
    out: dict[str, str] = {}
    layer, k = -1, 0
    for node in model.graph.node:
        if node.op_type == "Attention":
            layer, k = layer + 1, 0
            out[node.name] = f"L{layer}.qkv"
        elif node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights and layer >= 0:
            out[node.name] = f"L{layer}.{roles[k] if k < len(roles) else 'matmul'}"
            k += 1
    return out


def _quiet():
    """Silence the quantizer's progress prints and warnings for the duration."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    stack.callback(root.setLevel, level)
    return stack


def quantize_dynamic_int8(fp32_path: Path, out_path: Path, exclude: Iterable[str] = (), per_channel: bool = True) -> Path:
    """Dynamic int8 (weights int8 per output channel, activations uint8 per call); `exclude` nodes stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(Path(out_path), suffix=".tmp.onnx") as tmp, _quiet():
        quantize_dynamic(
            str(fp32_path), str(tmp), per_channel=per_channel, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZABLE), nodes_to_exclude=list(exclude),
            extra_options={"MatMulConstBOnly": True},
        )
    return Path(out_path)


class _Feeds:
    """CalibrationDataReader over tokenized texts, one text per feed (no padding to distort ranges)."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]]):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - some calibrators call it
        pass


def quantize_static_int8(
    fp32_path: Path, out_path: Path, feeds: Sequence[dict[str, np.ndarray]], exclude: Iterable[str] = (),
    method: str = "MinMax", per_channel: bool = True,
) -> Path:
    """Static QDQ int8 calibrated on `feeds` (session inputs, e.g. from passages and questions)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with atomic_path(Path(out_path), suffix=".tmp.onnx") as tmp, _quiet():
        quantize_static(
            str(fp32_path), str(tmp), _Feeds(list(feeds)), quant_format=QuantFormat.QDQ,
            per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZABLE), nodes_to_exclude=list(exclude),
            calibrate_method=getattr(CalibrationMethod, method),
            extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": True},
        )
    return Path(out_path)


def quantize_blockwise_int8(fp32_path: Path, out_path: Path, block_size: int = 128, exclude: Iterable[str] = ()) -> Path:
    """Weight MatMuls as onnxruntime `MatMulNBits` with 8-bit weights in blocks of `block_size` along K and
    int8 compute (accuracy_level 4: activations quantized per block, not per tensor, on VNNI kernels).

    Finer-grained than dynamic int8 (one activation scale per block of each row, not per tensor), so it moves
    embeddings far less; the fused Attention nodes stay fp32. `exclude` names MatMuls to keep in fp32.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4,
                                     nodes_to_exclude=list(exclude), algo_config=config)
    with _quiet():
        quantizer.process()
    save_model_atomic(quantizer.model.model, Path(out_path))
    return Path(out_path)


# --------------------------------------------------------------------------------------------
# The cached, verified variant the service uses (RAG_QUERY_PRECISION)
# --------------------------------------------------------------------------------------------

# The recipe behind query_precision="int8", chosen by measurement (eval/bench_encoder.py --variants):
# it passed the retrieval gate on both splits in every mode with the same hybrid top-1 for every question.
INT8_RECIPE = {"kind": "MatMulNBits", "bits": 8, "block_size": 128, "accuracy_level": 4, "attention": "fp32", "version": 1}
MIN_COSINE_TO_FP32 = 0.999


def quantized_path(fp32_path: Path, precision: str) -> Path:
    return Path(fp32_path).with_name(f"{Path(fp32_path).stem}.{precision}.onnx")


def ensure_quantized(fp32_path: Path, precision: str, check: Sequence[str], tokenizer_dir: Path, max_seq_length: int = 256) -> Path:
    """The `precision` variant of the verified fp32 export, made from it (never downloaded) and verified
    (rag.encoding.artifacts): its sidecar records the sha256 of the fp32 export it came from and the recipe, so
    a missing, edited or older-recipe file, or a newer fp32 export, makes it again. A new variant is accepted
    only if it embeds the `check` texts within cosine 0.999 of the fp32 export.
    """
    if precision != "int8":
        raise ModelError(f"unknown query precision {precision!r}")

    def verify(path: Path) -> float:
        want = OnnxEncoder(fp32_path, tokenizer_dir, max_seq_length=max_seq_length).encode(list(check))
        got = OnnxEncoder(path, tokenizer_dir, max_seq_length=max_seq_length, fuse_skip_layer_norm=True).encode(list(check))
        worst = float(np.min(np.sum(want * got, axis=1)))
        if worst < MIN_COSINE_TO_FP32:
            raise ModelError(f"the {precision} query model disagrees with the fp32 export (cosine {worst:.4f}); not using it")
        return worst

    identity = {"source_sha256": artifact_sha256(Path(fp32_path)), "recipe": INT8_RECIPE}
    make = lambda out: quantize_blockwise_int8(fp32_path, out, block_size=INT8_RECIPE["block_size"])  # noqa: E731
    return ensure_artifact(quantized_path(fp32_path, precision), identity, make, verify)
