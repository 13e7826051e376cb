"""ONNX fast path for query embeddings: the exported model and the torch-free encoder that runs it.

This module owns two things:

* `export_onnx` - a build step, run offline from the packaged all-MiniLM-L6-v2 weights, that
  writes one self-contained .onnx file computing the *finished* sentence embedding
  (BERT -> mean pooling over the attention mask -> L2 normalisation). It is the only code here
  that imports torch/transformers, and it does so lazily.
* `OnnxEncoder` - the serving path: `tokenizers` + `onnxruntime` only, never torch. It returns
  the same vectors as `SentenceTransformer.encode(texts, normalize_embeddings=True)` (cosine
  >= 0.999999 in tests/test_onnx_encoder.py) at a fraction of the per-call cost, and the process
  starts without paying torch's import time and memory.

Why it is built this way (each point was measured, see eval/bench_encoder.py):

* Export uses the dynamo exporter (`dynamo=True`). The legacy TorchScript exporter gives wrong
  embeddings for padded batches with transformers 5 (cosine 0.93-0.97).
* Pooling and normalisation are inside the graph, so one `session.run` returns the result and
  Python does no numpy work per call.
* The model is exported with eager attention and an explicit additive mask
  `(1 - mask[:, None, None, :]) * -10000`, and two tiny graph rewrites (`_prepare_for_fusion`)
  put it in the shape onnxruntime's BERT optimizer recognises, so each layer's attention becomes
  one fused `Attention` kernel (QKV in one GEMM). With transformers' default SDPA mask the
  optimizer fuses nothing. Padded positions get exp(-10000) = 0, exactly as with a boolean mask.
* Dynamic int8 (onnxruntime `quantize_dynamic`, per-channel) moves embeddings too far: one
  activation scale per tensor, and BERT's activations have outliers (all MatMuls + Attention:
  cosine mean 0.994 to fp32, same dense top-1 for 93% of the eval questions). The int8 variant the
  service uses quantizes activations per block of 128 instead (`MatMulNBits`, rag.encoding.quantize), and
  `encode_bucketed` serves index builds (rag.encoding.build_encoder).
* The query path also reads the last hidden state (`token_states=True`): the session is made from
  the verified file with that tensor added as a second output (`_with_token_output`), so one
  forward pass gives the sentence vector and the word pieces' vectors the verdict pools
  (rag.encoding.base.QuestionEmbedding). Builds ask for the sentence vector only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rag.encoding.artifacts import artifact_sha256, ensure_artifact
from rag.encoding.base import Encoder, QuestionEmbedding
from rag.encoding.cpus import usable_cores
from rag.encoding.model import ModelSpec
from rag.errors import ModelError
from rag.files import atomic_path

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "sentence_embedding"
_HIDDEN_STATE_OPS = ("LayerNormalization", "SkipLayerNormalization")
_MASK_FILL = -10000.0  # additive mask value; BERT's classic one, recognised by the ORT fusion


# --------------------------------------------------------------------------------------------
# Build step (imports torch lazily)
# --------------------------------------------------------------------------------------------


def export_onnx(model_dir: Path, out_path: Path, *, optimize: bool = True) -> None:
    """Export the sentence-transformers model in `model_dir` to `out_path` (atomically).

    The graph takes int64 `input_ids`, `attention_mask`, `token_type_ids` of shape
    (batch, seq), both axes dynamic, and returns float32 `sentence_embedding` (batch, hidden),
    mean-pooled and L2-normalised. With `optimize` (default) onnxruntime's BERT fusions are
    applied (fused Attention per layer; SkipLayerNorm/BiasGelu are then done at session load).
    """
    import onnx  # noqa: F401  (fail early if missing)
    import torch
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    # "torchvision is not installed. Skipping torchvision::nms" and the like: the exporter's registry notices
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

    model_dir = Path(model_dir)
    out_path = Path(out_path)
    config = AutoConfig.from_pretrained(str(model_dir))
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class _SentenceEmbedding(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            # 4-D additive mask: transformers uses a 4-D mask as given (no mask creation in graph).
            ext = attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)
            ext = (1.0 - ext) * _MASK_FILL
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=ext, token_type_ids=token_type_ids
            ).last_hidden_state
            # sentence-transformers Pooling(mean) + Normalize, without Expand nodes.
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(1)
            counts = mask.sum(1).clamp(min=1e-9)
            emb = summed / counts
            norm = torch.linalg.vector_norm(emb, ord=2, dim=1, keepdim=True).clamp(min=1e-12)
            return emb / norm

    wrapper = _SentenceEmbedding(bert).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 102], [101, 7592, 102, 0, 0]], dtype=torch.long)
    am = (ids != 0).long()
    tt = torch.zeros_like(ids)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("seq")
    axes = {0: batch, 1: seq}
    with torch.no_grad(), warnings.catch_warnings():
        # Known-harmless exporter notices (shared Dim names, a deprecated pytree check).
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            wrapper,
            (ids, am, tt),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes={name: axes for name in INPUT_NAMES},
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto

    if optimize:
        model = fuse_bert_graph(model, num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                          num_layers=config.num_hidden_layers)
    save_model_atomic(model, out_path)


def fuse_bert_graph(model, *, num_heads: int, hidden_size: int, num_layers: int):
    """Apply onnxruntime's BERT fusions (python fusions only; kernel-level ones happen at load)."""
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    _prepare_for_fusion(model)
    # Quiet the optimizer's chatter for the duration: symbolic shape inference fails on this
    # graph (it only gates SkipLayerNorm fusion, which onnxruntime then does at session load),
    # and it says so with a print and several warnings.
    quiet = [logging.getLogger(n) for n in ("fusion_skiplayernorm", "fusion_skip_group_norm", "onnx_model",
                                            "onnx_model_bert", "fusion_base", "optimizer")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = optimize_model(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                 opt_level=0, use_gpu=False)
    finally:
        for lg, lvl in zip(quiet, levels):
            lg.setLevel(lvl)
    # The fusions add com.microsoft ops but (for this input) no opset import for that domain;
    # onnxruntime tolerates it, onnx.checker and the quantiser do not.
    if not any(o.domain == "com.microsoft" for o in opt.model.opset_import):
        opt.model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    fused = opt.get_fused_operator_statistics().get("Attention", 0)
    if fused != num_layers:  # still exact, only slower: warn rather than fail the build
        logger.warning("ONNX attention fusion matched %d of %d layers", fused, num_layers)
    return opt.model


def _prepare_for_fusion(model) -> None:
    """Rewrite the dynamo graph into the patterns onnxruntime's FusionAttention matches.

    1. The onnxscript optimizer merges `mask.unsqueeze(1).unsqueeze(2)` into one Unsqueeze with
       axes [1, 2]; the fusion looks for two Unsqueeze nodes. Split it again.
    2. The attention scores are scaled with `Mul(QK, 1/sqrt(d))`; the fusion's path finder takes
       the first `Mul` parent of the score `Add`, and the additive mask is a `Mul` too, so it picks
       the wrong one. Express the scale as the equivalent `Div(QK, sqrt(d))`.
    Both rewrites are value-preserving (the fused kernel recomputes the scale itself).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {out: node for node in graph.node for out in node.output}

    for node in list(graph.node):
        if (node.op_type == "Unsqueeze" and node.input[0] == "attention_mask"
                and node.input[1] in consts and consts[node.input[1]].tolist() == [1, 2]):
            graph.initializer.extend([
                numpy_helper.from_array(np.array([1], np.int64), "mask_axis_1"),
                numpy_helper.from_array(np.array([2], np.int64), "mask_axis_2"),
            ])
            pos = list(graph.node).index(node)
            first = helper.make_node("Unsqueeze", ["attention_mask", "mask_axis_1"], ["mask_unsqueezed_1"],
                                     name="mask_unsqueeze_1")
            second = helper.make_node("Unsqueeze", ["mask_unsqueezed_1", "mask_axis_2"], [node.output[0]],
                                      name="mask_unsqueeze_2")
            graph.node.remove(node)
            graph.node.insert(pos, second)
            graph.node.insert(pos, first)
            break

    for node in graph.node:
        if (node.op_type == "Mul" and node.input[0] in producer and producer[node.input[0]].op_type == "MatMul"
                and node.input[1] in consts and consts[node.input[1]].size == 1):
            scale = consts[node.input[1]]
            name = node.input[1] + "_reciprocal"
            if name not in consts:
                inv = (np.float64(1.0) / scale.astype(np.float64)).astype(scale.dtype)
                graph.initializer.append(numpy_helper.from_array(inv, name))
                consts[name] = inv
            node.op_type = "Div"
            node.input[1] = name


def save_model_atomic(model, out_path: Path) -> None:
    import onnx

    with atomic_path(out_path) as tmp:
        onnx.save_model(model, str(tmp))  # < 2 GB: one self-contained file, no external data


# --------------------------------------------------------------------------------------------
# Serving path (onnxruntime + tokenizers only)
# --------------------------------------------------------------------------------------------


def _with_token_output(onnx_path: Path):
    """The model of `onnx_path` with its last hidden state (what mean pooling sums) as a second output.

    Walks back from the sentence embedding to the pooling `Mul(hidden, mask)` and exposes the input of it
    that a layer norm produced: the same tensor in the fp32 export and in its quantized variants."""
    import onnx

    model = onnx.load(str(onnx_path))
    producer = {out: node for node in model.graph.node for out in node.output}
    seen, todo = set(), [OUTPUT_NAME]
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type == "Mul":
            hidden = [i for i in node.input if i in producer and producer[i].op_type in _HIDDEN_STATE_OPS]
            if hidden:
                model.graph.output.append(onnx.helper.make_tensor_value_info(hidden[0], onnx.TensorProto.FLOAT, None))
                return model, hidden[0]
        todo.extend(node.input)
    raise ValueError(f"{onnx_path}: no mean-pooled hidden state found")


TOKEN_OUTPUT_RECIPE = "last-hidden-state-as-second-output/1"


def ensure_token_output(onnx_path: Path) -> Path:
    """`onnx_path` with the word pieces as a second output (`_with_token_output`), saved once beside it as a
    verified artifact (rag.encoding.artifacts), so opening the query encoder needs onnxruntime only, not the
    onnx package (about a second of imports on every cold start). Whether the exposed tensor really pools
    to the sentence vector is checked each time the session opens."""

    def make(out: Path) -> None:
        model, _ = _with_token_output(onnx_path)
        save_model_atomic(model, out)

    target = onnx_path.with_name(f"{onnx_path.stem}.tokens.onnx")
    identity = {"source_sha256": artifact_sha256(onnx_path), "recipe": TOKEN_OUTPUT_RECIPE}
    return ensure_artifact(target, identity, make, lambda out: 1.0)


# onnxruntime's fused SkipLayerNormalization (residual Add + LayerNormalization in one kernel) is several times
# slower on this CPU than the two ops it replaces: about 36 us against 10 on a 20 x 384 question, 12 a forward.
# Left unfused, a build batch of 32 x 128 word pieces takes 291 -> 261 ms (fp32; the vectors the same to 2e-7).
# The int8 query graph stays fused: unfused, its forward takes 2.21 -> 1.78 ms, but the changed rounding, which
# its per-block activation quantization amplifies (vectors up to 2e-3 apart), failed the retrieval gate
# (eval.encoder_gate: dense/test MRR@10 0.8671 -> 0.8654); docs/performance.md.
SKIP_LAYER_NORM_FUSION = "SkipLayerNormFusion"


def default_threads() -> int:
    """One thread per core this process may use: its affinity capped by its cgroup's CPU quota (rag.encoding.cpus)."""
    return usable_cores()


class OnnxEncoder:
    """Sentence embeddings from an `export_onnx` file; same contract as
    `SentenceTransformer.encode(texts, normalize_embeddings=True)`: float32 (n, dim), unit rows."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_dir: Path,
        max_seq_length: int = 256,
        threads: int | None = None,
        batch_size: int = 32,
        spinning: bool = False,
        token_states: bool = False,
        fuse_skip_layer_norm: bool = False,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
        # The packaged tokenizer.json pads to a fixed 128 and truncates at 128: replace both.
        tok.no_padding()
        tok.no_truncation()
        tok.enable_truncation(max_length=max_seq_length)
        self._tok_single = Tokenizer.from_str(tok.to_str())  # no padding: one text needs none
        pad_id = tok.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id
        tok.enable_padding(pad_id=self._pad_id, pad_token="[PAD]")
        self._tok = tok

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: on a shared 2-core machine spinning threads steal
        # the cores the other thread of the same forward (and the server) needs. Measured under load ~11:
        # batch-1 questions 31 vs 41 ms, a build batch of 40 paragraphs 2.8 vs 3.9 s (eval/bench_encoder.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self._token_output = None
        source = str(onnx_path)
        if token_states:
            try:
                source = str(ensure_token_output(Path(onnx_path)))
            except ValueError as exc:  # a graph of another make: the sentence vectors alone (the verdict embeds again)
                logger.warning("%s; word pieces not used", exc)
        self._session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"],
                                             disabled_optimizers=[] if fuse_skip_layer_norm else [SKIP_LAYER_NORM_FUSION])
        if source != str(onnx_path):
            self._token_output = next(o.name for o in self._session.get_outputs() if o.name != OUTPUT_NAME)
        names = {i.name for i in self._session.get_inputs()}
        if names != set(INPUT_NAMES):
            raise ValueError(f"{onnx_path}: unexpected inputs {sorted(names)}")
        self._outputs = [OUTPUT_NAME]
        self.dim = int(next(o for o in self._session.get_outputs() if o.name == OUTPUT_NAME).shape[-1])
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        if self._token_output is not None and not self._token_output_pools_to_the_vector():
            logger.warning("%s: the exposed hidden state does not pool to the sentence vector; not using it", onnx_path)
            self._token_output = None

    def _run(self, ids: np.ndarray, mask: np.ndarray, outputs: list[str] | None = None):
        """The sentence vectors of one batch; with `outputs`, every named output, in that order."""
        got = self._session.run(
            outputs or self._outputs,
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        return got if outputs else got[0]

    def _padded(self, encs) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask of tokenizer encodings, padded to the longest."""
        width = max(len(e.ids) for e in encs)
        ids = np.full((len(encs), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for row, e in enumerate(encs):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        return ids, mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings")
        n = len(texts)
        if n == 1:  # the query path: no padding, mask of ones, one run
            ids = np.array([self._tok_single.encode(texts[0]).ids], dtype=np.int64)
            return self._run(ids, np.ones_like(ids))
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        if n <= self.batch_size:
            encs = self._tok.encode_batch(list(texts))
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            return self._run(ids, mask)
        return self.encode_bucketed(texts)

    def _token_output_pools_to_the_vector(self) -> bool:
        """The graph surgery's check: the mean of the exposed word-piece vectors must be the sentence vector."""
        probe = self.embed_questions(["Which tensor does mean pooling sum?"])[0]
        if probe.tokens is None or probe.tokens.ndim != 2 or probe.tokens.shape[1] != self.dim:
            return False
        mean = probe.tokens.mean(axis=0)
        return float(mean @ probe.vector) / max(float(np.linalg.norm(mean)), 1e-12) > 0.999

    def embed_questions(self, texts: Sequence[str]) -> list[QuestionEmbedding]:
        """Sentence vectors and word-piece vectors (rag.encoding.base.QuestionEmbedding) of a few texts, one run; the
        vectors alone when this encoder was opened without `token_states` (or its check failed)."""
        if self._token_output is None:
            return [QuestionEmbedding(v) for v in self.encode(list(texts))]
        if not texts:
            return []
        encs = self._tok_single.encode_batch(list(texts))
        vectors, states = self._run(*self._padded(encs), outputs=[OUTPUT_NAME, self._token_output])
        return [QuestionEmbedding(vectors[row], states[row, :len(e.ids)].copy(), tuple(e.offsets)) for row, e in enumerate(encs)]

    def encode_bucketed(self, texts: Sequence[str], on_batch=None, max_batch: int = 128,
                        max_tokens: int = 512, lanes: Sequence["OnnxEncoder"] = ()) -> np.ndarray:
        """Many texts (index builds): tokenise once, sort by length, run batches of similar length
        (at most `max_batch` texts and `max_tokens` padded word pieces: small batches stay in cache; on the
        seed article 512 tokens took 17 s where 8192 took 31 s on a loaded machine), restore the input order.
        `on_batch(n)` is called after each batch with the number of texts it embedded (progress).

        `lanes`: more encoders of the same graph, one thread each (rag.encoding.build_encoder); the batches are
        then shared out among this one and them, each run by one session in a thread of its own. The batches are
        the same ones, so the vectors are the same bit for bit; what changes is that no product of a small
        batch is split between threads that wait for each other."""
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        encs = self._tok_single.encode_batch(list(texts))
        batches = length_buckets([len(e.ids) for e in encs], max_batch, max_tokens)
        progress = threading.Lock()

        def run(encoder: "OnnxEncoder", rows: list[int]) -> None:
            out[rows] = encoder._run(*self._padded([encs[i] for i in rows]))
            if on_batch is not None:
                with progress:
                    on_batch(len(rows))

        encoders = [self, *lanes][:max(1, len(batches))]
        if len(encoders) == 1:
            for rows in batches:
                run(self, rows)
            return out
        pending = iter(batches)
        taking = threading.Lock()
        failed = threading.Event()

        def drain(encoder: "OnnxEncoder") -> None:
            while not failed.is_set():
                with taking:
                    rows = next(pending, None)
                if rows is None:
                    return
                try:
                    run(encoder, rows)
                except BaseException:
                    failed.set()  # the other lanes stop after their current batch
                    raise

        with ThreadPoolExecutor(max_workers=len(encoders), thread_name_prefix="embed-lane") as pool:
            try:
                for done in [pool.submit(drain, encoder) for encoder in encoders]:
                    done.result()  # a lane's error is raised here, after the others stopped
            finally:
                failed.set()  # also on Ctrl-C in this thread: the lanes stop after their current batch
        return out


def length_buckets(widths: Sequence[int], max_batch: int, max_tokens: int) -> list[list[int]]:
    """Row numbers of texts `widths` word pieces long, grouped into batches longest first: each batch at most
    `max_batch` rows and `max_tokens` padded word pieces (its first row is its widest), never empty."""
    order = sorted(range(len(widths)), key=lambda i: -widths[i])
    batches, start = [], 0
    while start < len(order):
        size = max(1, min(max_batch, max_tokens // max(widths[order[start]], 1), len(order) - start))
        batches.append(order[start:start + size])
        start += size
    return batches


# --------------------------------------------------------------------------------------------
# The verified export the service uses, and the query encoder over it
# --------------------------------------------------------------------------------------------

ONNX_CHECK_TEXTS = (
    "Why did Trotsky think the bourgeoisie could not lead?",
    "a",
    "The theory of the permanent revolution was put to the test by new revolutionary uprisings in the mid-20th century. " * 12,
)
MIN_COSINE_TO_REFERENCE = 0.999


def onnx_path(encoder_dir: Path, spec: ModelSpec) -> Path:
    """Where the exported model for `spec` lives: a build artifact, named by the weights it came from."""
    return Path(encoder_dir) / f"{(spec.weights_sha256 or 'unknown')[:16]}.onnx"


def ensure_onnx(encoder_dir: Path, spec: ModelSpec, reference: Callable[[], Encoder]) -> Path:
    """The verified ONNX export of the default model (rag.encoding.artifacts), exported and checked first if needed.

    `reference` returns the sentence-transformers encoder; it is called only when an export has to be made and
    checked: the export must agree with it (cosine >= 0.999 on fixed texts) before it is accepted."""

    def verify(path: Path) -> float:
        ref = reference()
        expected = ref.encode(list(ONNX_CHECK_TEXTS))
        got = OnnxEncoder(path, spec.local_dir, max_seq_length=ref.max_seq_length).encode(list(ONNX_CHECK_TEXTS))
        worst = float(np.min(np.sum(expected * got, axis=1)))
        if worst < MIN_COSINE_TO_REFERENCE:
            raise ModelError(f"the ONNX export disagrees with sentence-transformers (cosine {worst:.4f}); not using it")
        return worst

    path = onnx_path(encoder_dir, spec)
    return ensure_artifact(path, {"weights_sha256": spec.weights_sha256}, lambda out: export_onnx(spec.local_dir, out), verify)


class OnnxQueryEncoder(Encoder):
    """The fast query path: a verified ONNX file (fp32 or a quantized variant) with the word pieces as a second output."""

    kind = "onnx"

    def __init__(self, spec: ModelSpec, path: Path, max_seq_length: int = 256, precision: str = "fp32"):
        self.spec = spec
        self.precision = precision  # "fp32" or a variant verified by rag.encoding.quantize and gated by eval.encoder_gate
        self.max_seq_length = max_seq_length
        # a quantized graph keeps the fused layer norm it was gated with (SKIP_LAYER_NORM_FUSION above)
        self._encoder = OnnxEncoder(path, spec.local_dir, max_seq_length=max_seq_length, token_states=True,
                                    fuse_skip_layer_norm=precision != "fp32")
        self.dimension = self._encoder.dim

    def encode(self, texts: Sequence[str], progress: bool = False, batch_size: int = 32, desc: str = "texts") -> np.ndarray:
        return self._encoder.encode(list(texts))

    def embed_questions(self, texts: Sequence[str]) -> list[QuestionEmbedding]:
        return self._encoder.embed_questions(list(texts))
