"""The verifier: a small cross-encoder that reads a question and one evidence window together.

A bi-encoder embeds the question and the text apart, so "when did he die?" and a sentence about his life land
close whether or not the sentence holds the date; a cross-encoder attends across both and can tell. This one is
the project's own: the first layers of the packaged all-MiniLM-L6-v2, fine-tuned by eval/train_verifier.py
(seeded, on these CPUs) to score (question, sentence window) pairs, exported to ONNX and quantized to int8. Its
files live in rag/assets/verifier/ beside `verifier.json`, the card that records their sha256, how they were
made and the tokenizer they expect (the packaged MiniLM's, whose vocabulary the weights were trained with).

This module owns loading (hash-checked like the embedding model: a file that does not match its card is refused),
the process's one `VerifierSlot` (loaded at start when every question is verified, else by the first question that
asks; a failed load remembered) and scoring; which windows are read and what the score is used for live in rag.query.verification. Serving needs
onnxruntime and tokenizers only, never torch. `pair_ids` is the one tokenisation, shared with the training script,
so training and serving cannot drift apart.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.encoding.model import file_sha256
from rag.errors import ModelError


ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "verifier"
CARD_NAME = "verifier.json"
QUESTION_PIECES = 48  # word pieces of the question read at most (longer questions: the rest is not read)
MAX_PIECES = 128  # the whole pair: [CLS] question [SEP] window [SEP]


@dataclass(frozen=True)
class Card:
    """What `verifier.json` says of the weights beside it."""

    file: str  # the ONNX file, relative to the card
    sha256: str
    base_model_sha256: str  # the all-MiniLM-L6-v2 weights it was initialised from (and whose tokenizer it reads)
    layers: int
    made_by: str  # the command that made it
    training: dict  # seed, data, epochs, seconds: for the record
    check_pairs: tuple[dict, ...] = ()  # held-out pairs with the fp32 export's logits (the int8 file is tested on them)

    @classmethod
    def read(cls, path: Path) -> "Card":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(raw["file"]), str(raw["sha256"]), str(raw["base_model_sha256"]), int(raw["layers"]),
                       str(raw.get("made_by", "")), dict(raw.get("training", {})), tuple(raw.get("check_pairs", ())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"the verifier card {path} cannot be read ({type(exc).__name__}); reinstall the project") from exc

    @classmethod
    def matching(cls, directory: Path, base_model_sha256: str | None) -> "Card":
        """The card in `directory`, if it was trained on the embedding model whose weights hash to `base_model_sha256`
        (None: not checked); ModelError otherwise."""
        card = cls.read(Path(directory) / CARD_NAME)
        if base_model_sha256 is not None and card.base_model_sha256 != base_model_sha256:
            raise ModelError("the verifier was trained with another tokenizer than the embedding model's; not using it")
        return card

    def identity(self) -> dict:
        """What the manifest and /ready record of it."""
        return {"sha256": self.sha256, "layers": self.layers, "file": self.file}


def pair_ids(tokenizer, question: str, windows: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, token_type_ids), int64 (len(windows), longest), for [CLS] q [SEP] w [SEP].

    The question keeps its first QUESTION_PIECES word pieces; each window is cut to what is left of MAX_PIECES.
    `tokenizer` is a `tokenizers.Tokenizer` without truncation or padding."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    q = tokenizer.encode(question, add_special_tokens=False).ids[:QUESTION_PIECES]
    room = MAX_PIECES - len(q) - 3
    rows = [[cls_id, *q, sep_id, *w.ids[:room], sep_id] for w in tokenizer.encode_batch(list(windows), add_special_tokens=False)]
    width = max((len(r) for r in rows), default=0)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for n, row in enumerate(rows):
        ids[n, : len(row)] = row
        mask[n, : len(row)] = 1
        types[n, len(q) + 2 : len(row)] = 1
    return ids, mask, types


def run_pairs(session, tokenizer, question: str, windows: Sequence[str]) -> np.ndarray:
    """One logit per window from an onnxruntime session of the verifier's graph (the shipped int8 file, or the
    training script's fp32 export); none for no windows."""
    if not windows:
        return np.zeros(0, dtype=np.float32)
    ids, mask, types = pair_ids(tokenizer, question, windows)
    out = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    return np.asarray(out, dtype=np.float32).reshape(-1)


def plain_tokenizer(tokenizer_dir: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


class Verifier:
    """Scores (question, window) pairs: a logit each, higher = the window answers the question."""

    # threads: 1 here (tests, eval/bench_verifier.py choose their own); the service's come from RAG_VERIFIER_THREADS via `shipped`
    def __init__(self, directory: Path, tokenizer_dir: Path, base_model_sha256: str | None, threads: int = 1):
        card = Card.matching(directory, base_model_sha256)
        path = Path(directory) / card.file
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise ModelError(f"the verifier weights {path} cannot be read ({type(exc).__name__}); reinstall the project") from exc
        if digest != card.sha256:
            raise ModelError(f"{path} has sha256 {digest}, not the {card.sha256} its card records; refusing to use it")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ModelError(f"the verifier {path} cannot be loaded: {type(exc).__name__}") from exc
        self.card = card
        self.tokenizer = plain_tokenizer(tokenizer_dir)

    def identity(self) -> dict:
        """What /ready records of it (the card's identity)."""
        return self.card.identity()

    def reads_whole(self, question: str) -> bool:
        """Whether the verifier reads all of `question` (at most QUESTION_PIECES word pieces)."""
        return len(self.tokenizer.encode(question, add_special_tokens=False).ids) <= QUESTION_PIECES

    def logits(self, question: str, windows: Sequence[str]) -> np.ndarray:
        return run_pairs(self._session, self.tokenizer, question, windows)


NOT_DEFAULT = "not available: it was trained for the default model's features; the verdict is the bi-encoder one"
NOT_ON_REQUEST = "switched off (RAG_VERIFIER=false, RAG_VERIFY_ON_REQUEST=false); the verdict is the bi-encoder one"
ON_REQUEST = "not read by default (RAG_VERIFIER=false): a question asks for it with verify=true; the verdict is otherwise the bi-encoder one"


def manifest_entry(spec) -> dict:
    """What an index's manifest records of the verifier for its embedding model `spec` (rag.index.build): for the
    default model the shipped card's identity (its weights are hash-checked when a service loads them; whether a
    question is verified is a serving setting and a per-question choice, so none of this is part of the index
    fingerprint and switching it rebuilds nothing); for any other model, or an unreadable or mismatched card,
    that there is none and why. /ready says what a running service uses."""
    from rag.encoding.model import is_default_model

    if not is_default_model(spec):
        return {"available": False, "reason": NOT_DEFAULT}
    try:
        card = Card.matching(ASSET_DIR, spec.weights_sha256)
    except ModelError as exc:
        return {"available": False, "reason": str(exc)}
    return {"available": True, **card.identity(), "read_when": "RAG_VERIFIER=true, or a question's verify=true"}


def shipped(tokenizer_dir: str, base_model_sha256: str, threads: int = 0) -> Verifier:
    """The verifier shipped in rag/assets/verifier/, loaded once per process and thread count (ModelError when its
    files are missing or altered: a tampered verifier is refused, never used). `threads` 0: one per core (so 0 and
    the core count are the same verifier)."""
    from rag.encoding.onnx_encoder import default_threads

    return _shipped(str(tokenizer_dir), base_model_sha256, threads or default_threads())


@lru_cache(maxsize=4)
def _shipped(tokenizer_dir: str, base_model_sha256: str, threads: int) -> Verifier:
    return Verifier(ASSET_DIR, Path(tokenizer_dir), base_model_sha256, threads=threads)


class VerifierSlot:
    """The verifier one process may read, and what /ready says of it.

    `by_default`: every question is verified (RAG_VERIFIER=true): loaded when the slot is made, so broken weights
    stop the start. Otherwise a question asks for it (`verify=true`; `on_request`, unless RAG_VERIFY_ON_REQUEST=false)
    and the first such question loads it (a tenth of a second or so, once a process; a service that never verifies
    never pays it). A load that fails is remembered with its reason: later questions get the bi-encoder verdict and
    that reason as a warning, never a 500, and the weights are not read again until a restart (`for_model` gives
    every snapshot of a process the same slot, so a reload keeps what it knows). Thread-safe: questions run in
    worker threads."""

    def __init__(self, load, by_default: bool, on_request: bool = True):
        self._load = load  # () -> Verifier, or an exception saying why not
        self.by_default = by_default
        self.on_request = on_request or by_default
        self._lock = threading.Lock()
        self._verifier: Verifier | None = None
        self._failure: str | None = None
        if by_default:
            self._verifier = load()

    def get(self) -> tuple[Verifier | None, str | None]:
        """(the verifier, None), or (None, why it cannot be read)."""
        if self._verifier is None and self._failure is None:
            with self._lock:
                if self._verifier is None and self._failure is None:
                    try:
                        self._verifier = self._load()
                    except Exception as exc:  # ModelError says why; tokenizers and onnxruntime raise their own types
                        why = exc if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
                        self._failure = f"the verifier cannot be used: {why}"
        return self._verifier, self._failure

    def status(self) -> dict:
        """What /ready says: `used` (every question), `on_request` (a question may ask), the card's identity once
        loaded, or why not."""
        if self._failure is not None:
            return {"used": False, "on_request": False, "reason": self._failure}
        if not self.on_request:
            return {"used": False, "on_request": False, "reason": NOT_ON_REQUEST}
        status = {"used": self.by_default, "on_request": True}
        if not self.by_default:
            status["reason"] = ON_REQUEST
        return status | (self._verifier.identity() if self._verifier is not None else {})


@lru_cache(maxsize=8)
def _slot(tokenizer_dir: str, base_model_sha256: str, by_default: bool, on_request: bool, threads: int) -> VerifierSlot:
    """One slot per process and setting, shared by every snapshot (a reload keeps the loaded verifier or its failure)."""
    return VerifierSlot(lambda: shipped(tokenizer_dir, base_model_sha256, threads), by_default, on_request)


def for_model(spec, by_default: bool, on_request: bool = True, threads: int = 0) -> tuple[VerifierSlot | None, dict]:
    """The verifier slot for embedding model `spec`, and what /ready says of it: the shipped verifier for the
    default model (read for every question when `by_default`, else for the questions that ask unless not
    `on_request`), none for any other model (its verdict is the bi-encoder one, whatever a question asks)."""
    from rag.encoding.model import is_default_model

    if not is_default_model(spec):
        return None, {"used": False, "on_request": False, "reason": NOT_DEFAULT}
    slot = _slot(str(spec.local_dir), spec.weights_sha256, by_default, on_request, threads)
    return slot, slot.status()
