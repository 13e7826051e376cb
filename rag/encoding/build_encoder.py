"""The encoders that build indexes: bf16 torch on CPUs with bfloat16 units, else the verified fp32 ONNX export;
both length-bucketed, with a progress bar.

Index builds embed every passage and every sentence of the corpus. sentence-transformers does that
in torch with batches in input order (padding each batch to its longest text); this module sorts texts by
token length so batches carry little padding, and runs them in one of two precisions (`RAG_BUILD_PRECISION`,
resolved by `resolve_build_precision`, recorded in the index fingerprint):

* `fp32`: the fp32 ONNX export that rag.encoding.torch_encoder verifies against sentence-transformers
  (cosine >= 0.999; about 0.999999 in practice, tests/encoding/test_build_encoder.py);
* `bf16` (`Bf16BuildEncoder`, opt-in; `auto` picks it where the CPU has AVX-512 BF16 or AMX): the
  sentence-transformers model under torch's CPU autocast, whose matrix products run in bfloat16 on oneDNN's
  kernels with fp32 accumulation. Here (a Xeon with AMX) that embeds python3-doc passages 2.3x and sentences
  1.8x faster than the fp32 export, at cosine >= 0.99994 to it; larger batches (4,096 padded word pieces)
  feed the wide units. It is not the default because it misses the retrieval gate the int8 query model
  passed (eval/encoder_gate.py's `compare_encoders` over a bf16 and an fp32 build,
  tests/eval/test_build_precision_gate.py): one near tie on the test split moves from rank 2 to 3 in
  dense mode. Only the FFN (or every linear layer but the last) in bf16 keeps half the error and a
  fifth to a half of the gain, so only the whole model under autocast is offered. Stored vectors are float16
  either way (rag.index.ann). A bf16 vector depends slightly on its batch (padding width,
  kernel blocking): an index updated around one document is then not bit for bit a build from nothing, but
  equal to what `rag index` writes over the served index, which reuses every unchanged vector.

It also owns the two costs around the forward pass of a build:

* token counting for the chunker: `count_tokens` uses the Rust tokenizer directly and remembers
  its answers (the chunker asks about the same paragraph and growing prefixes again and again);
* progress: `progress_bar` draws one tqdm bar on stderr (files while chunking, then passages and
  sentences while embedding, each with its rate and ETA).

`build_encoder(encoder_setting, spec, encoder_dir, reference)` picks it for the packaged default model unless RAG_ENCODER=torch;
any other model builds with sentence-transformers as before.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

from rag.encoding.base import Encoder
from rag.encoding.model import is_default_model
from rag.encoding.onnx_encoder import OnnxEncoder, default_threads, ensure_onnx

log = logging.getLogger(__name__)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True):
    """A tqdm bar on stderr (rate and ETA), or a silent stand-in with the same `update`/iteration when disabled."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=0.5)


LANE_MIN_TEXTS = 2_000  # texts in one call before it is shared among one-thread sessions (a few seconds of work or more)
MAX_LANES = 4  # one-thread sessions at most (90 MB of weights each): a many-core host does not hold dozens of copies


class OnnxBuildEncoder(Encoder):
    """The build encoder (rag.encoding.base.Encoder), plus `count_tokens(text)` for the chunker."""

    kind = "onnx"

    def __init__(self, spec, onnx_path: Path, max_seq_length: int = 256, threads: int | None = None):
        self.spec = spec
        self.max_seq_length = max_seq_length
        # Many texts are embedded by one session of one thread per core (at most MAX_LANES), each running whole batches
        # (OnnxEncoder.encode_bucketed's lanes): the same vectors bit for bit as one session over every core, 2.3%
        # faster on the mean of seven paired 100-file builds (no small product split between threads that wait
        # for each other). Those sessions (90 MB of weights each, 0.2-0.4 s to make) exist only during such a
        # call, so a serving process that built once or took an upload keeps the one session over every core.
        self._onnx_path = onnx_path
        self._cores = threads or default_threads()
        self._encoder = OnnxEncoder(onnx_path, spec.local_dir, max_seq_length=max_seq_length, threads=self._cores)
        self.dimension = self._encoder.dim
        counter = Tokenizer.from_file(str(Path(spec.local_dir) / "tokenizer.json"))
        counter.no_padding()
        counter.no_truncation()
        self._counter = counter
        self.count_tokens = lru_cache(maxsize=1 << 18)(self._count_tokens)

    def _count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without [CLS]/[SEP] (what the chunker budgets)."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str], progress: bool = False, batch_size: int = 128, desc: str = "texts") -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with progress_bar(total=len(texts), desc=f"embedding {desc}", unit=desc.rstrip("s") or "text",
                          enabled=progress) as bar:
            if len(texts) < LANE_MIN_TEXTS or self._cores < 2:
                return self._encoder.encode_bucketed(texts, on_batch=bar.update, max_batch=batch_size)
            first, *lanes = self._one_thread_sessions(min(self._cores, MAX_LANES))
            return first.encode_bucketed(texts, on_batch=bar.update, max_batch=batch_size, lanes=lanes)

    def _one_thread_sessions(self, count: int) -> list[OnnxEncoder]:
        """`count` one-thread sessions, made side by side (each 0.2-0.4 s alone), dropped after the call."""
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="embed-lane-load") as pool:
            return list(pool.map(lambda _: OnnxEncoder(self._onnx_path, self.spec.local_dir,
                                                       max_seq_length=self.max_seq_length, threads=1), range(count)))


BF16_MAX_TOKENS = 4096  # padded word pieces per bf16 batch (512: 28 passages/s, 2,048: 38, 4,096: 43 here)
BF16_MAX_BATCH = 256


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo (Linux; False
    elsewhere, where bf16 would be emulated and slower than fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_build_precision(setting: str, device: str = "cpu") -> str:
    """"bf16" or "fp32": what RAG_BUILD_PRECISION means on this machine ('auto': bf16 on a CPU that has it)."""
    if setting == "auto":
        return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
    return setting


class Bf16BuildEncoder(Encoder):
    """The build encoder in bfloat16: the reference sentence-transformers model under torch's CPU autocast,
    length-bucketed; rows renormalised in float32. `count_tokens` is the same count as the fp32 builder's, so the
    chunker cuts the same passages in either precision."""

    kind = "torch"
    precision = "bf16"

    def __init__(self, reference, max_tokens: int = BF16_MAX_TOKENS):
        self.reference = reference
        self.spec = reference.spec
        self.dimension = reference.dimension
        self.max_seq_length = reference.max_seq_length
        self.max_tokens = max_tokens
        tokenizer_file = Path(self.spec.local_dir) / "tokenizer.json" if self.spec.local_dir else None
        if tokenizer_file is not None and tokenizer_file.exists():  # the Rust tokenizer: the fp32 builder's count, faster
            counter = Tokenizer.from_file(str(tokenizer_file))
            counter.no_padding()
            counter.no_truncation()
            self.count_tokens = lru_cache(maxsize=1 << 18)(lambda text: len(counter.encode(text, add_special_tokens=False).ids))
        else:
            self.count_tokens = lru_cache(maxsize=1 << 18)(reference.count_tokens)

    def encode(self, texts: Sequence[str], progress: bool = False, batch_size: int = BF16_MAX_BATCH, desc: str = "texts") -> np.ndarray:
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        model = self.reference.model
        prepare = getattr(model, "preprocess", None) or model.tokenize
        limit = self.max_seq_length
        widths = [min(self.count_tokens(t) + 2, limit) for t in texts]  # [CLS], [SEP]; cut at the window as the model cuts
        order = sorted(range(len(texts)), key=lambda i: -widths[i])
        with progress_bar(total=len(texts), desc=f"embedding {desc}", unit=desc.rstrip("s") or "text", enabled=progress) as bar, \
                torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            start = 0
            while start < len(order):
                size = max(1, min(batch_size, self.max_tokens // max(widths[order[start]], 1), len(order) - start))
                rows = order[start:start + size]
                features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in prepare([texts[i] for i in rows]).items()}
                vectors = model(features)["sentence_embedding"].float().cpu().numpy()
                out[rows] = vectors
                start += size
                bar.update(len(rows))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def build_encoder(encoder_setting: str, spec, encoder_dir: Path, reference, precision: str = "fp32") -> Encoder:
    """The encoder an index build should use. `precision` "bf16" (resolve_build_precision): `Bf16BuildEncoder` over
    the reference model, for any model. "fp32": the fp32 ONNX export for the packaged default model (unless
    RAG_ENCODER=torch, or the export cannot be made and RAG_ENCODER=auto), sentence-transformers otherwise.
    `reference` is a function returning the sentence-transformers encoder (loaded only when needed)."""
    if precision == "bf16":
        return Bf16BuildEncoder(reference())
    if encoder_setting != "torch" and is_default_model(spec):
        try:
            return OnnxBuildEncoder(spec, ensure_onnx(encoder_dir, spec, reference))
        except Exception as exc:  # auto: fall back to the reference encoder, as the query path does
            if encoder_setting == "onnx":
                raise
            log.warning("ONNX build encoder unavailable (%s); building with sentence-transformers", exc)
    return reference()
