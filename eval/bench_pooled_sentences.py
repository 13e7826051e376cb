"""Measured and not taken: sentence vectors pooled from the passage's own forward pass instead of a second pass.

A build embeds every passage and then every distinct sentence (about 40% of the build's word pieces). Pooling each
sentence's word pieces out of its passage's forward pass would remove the second pass; this script measures what
that costs the eval: it opens the bundled article (or the SQuAD tune articles) as the service does, computes the
pooled vectors with the reference sentence-transformers model (fp32), swaps them into the served snapshot's
sentence array (the ranker, highlighter and verdict share it) and runs the eval before and after:

* `pooled`: the mean of the sentence's word-piece states, normalised;
* `pooled-a<α>`: minus α times the passage's own pooled vector (the shared context) before normalising;
* `mapped` (with `--map FILE`, written by a `--save-map` run on another corpus): a ridge map from
  [pooled, passage] to the standalone vector.

    python eval/bench_pooled_sentences.py article --alphas 0,0.5
    python eval/bench_pooled_sentences.py squad --save-map /tmp/map.npy
    python eval/bench_pooled_sentences.py article --map /tmp/map.npy

Figures: docs/performance.md (builds). Nothing here is used by the service.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval.evalset import load_squad  # noqa: E402
from eval.evaluation import Config, evaluate, load_questions, open_systems, squad_config  # noqa: E402
from eval.harness import ROOT  # noqa: E402

SQUAD = ROOT.parent / "shared" / "external" / "squad2-tune" / "squad2-tune.json"
SHOWN = ("r@1", "r@5", "mrr@10", "highlight@1", "auroc_near", "auroc_all", "kept_answerable", "refused_unanswerable")


def pooled_vectors(snapshot, model, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(pooled sentence vectors, the passage's pooled vector on each sentence's row), rows as the index stores them."""
    import torch

    from rag.corpus.passage_text import embedding_texts, fit_heading

    tokenizer, transformer = model.tokenizer, model[0].auto_model
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    passages, documents = snapshot.index.passages, snapshot.documents
    texts = embedding_texts(passages, documents, count, limit)
    first_row = np.cumsum([0] + [len(p.sentences) for p in passages])
    pooled = np.zeros((int(first_row[-1]), snapshot.index.sentence_vectors.shape[1]), np.float32)
    context = np.zeros_like(pooled)
    for start in range(0, len(passages), 32):
        batch = range(start, min(start + 32, len(passages)))
        encoded = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=limit + 2,
                            return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping").numpy()
        with torch.inference_mode():
            hidden = transformer(**encoded).last_hidden_state.numpy()
        for j, i in enumerate(batch):
            p = passages[i]
            shift = len(fit_heading(documents[p.document], p, count, limit)) - len(p.text)  # where the passage starts
            real = encoded["attention_mask"][j].numpy().astype(bool) & (offsets[j, :, 1] > offsets[j, :, 0])
            whole = hidden[j][real].mean(0)
            for k, (s, e) in enumerate(p.sentences):
                lo, hi = shift + s - p.start, shift + e - p.start
                inside = real & (offsets[j, :, 1] > lo) & (offsets[j, :, 0] < hi)
                vector = hidden[j][inside].mean(0) if inside.any() else whole
                pooled[first_row[i] + k] = vector / np.linalg.norm(vector)
                context[first_row[i] + k] = whole / np.linalg.norm(whole)
    return pooled, context


def report(name: str, systems, questions, gold) -> None:
    summary = evaluate(systems, questions, gold, 10)["systems"]["hybrid"]
    for group in sorted(g for g in summary if g == "all" or g.startswith("split=")):
        print(f"{name:>12} {group:<11}", " ".join(f"{k} {summary[group].get(k)}" for k in SHOWN), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=("article", "squad"))
    parser.add_argument("--alphas", default="0,0.5", help="comma-separated α for pooled-a<α>")
    parser.add_argument("--map", type=Path, help="apply this ridge map (a --save-map file)")
    parser.add_argument("--save-map", type=Path, help="fit the ridge map on this corpus and write it here")
    args = parser.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from rag.config import Settings
    from rag.encoding.model import resolve_model

    work = Path(tempfile.mkdtemp(prefix="pooled-"))
    base = Settings(index_dir=work / "index", verifier=False)  # the bundled seeds/, a fresh index: the user's is not touched
    if args.corpus == "squad":
        config, (_, questions) = squad_config(SQUAD, base, work / "cache"), load_squad(SQUAD)
    else:
        config, questions = Config("default", base), load_questions()
    systems, gold, _, _, service, _ = open_systems([config], questions, ["hybrid"], 10)
    snapshot = service.snapshot
    sentences = snapshot.retriever.highlighter.sentences  # the one array the ranker, highlighter and verdict read
    standalone = np.asarray(sentences.vectors, np.float32)
    model = SentenceTransformer(resolve_model(base.model).location, device="cpu")
    pooled, context = pooled_vectors(snapshot, model, model.max_seq_length - 2)
    report("standalone", systems, questions, gold)
    variants = {f"pooled-a{a}": pooled - float(a) * context for a in args.alphas.split(",")}
    features = np.hstack([pooled, context])
    if args.save_map:
        ridge = np.linalg.solve(features.T @ features + np.eye(features.shape[1]), features.T @ standalone)
        np.save(args.save_map, ridge)
    if args.map:
        variants["mapped"] = features @ np.load(args.map)
    for name, vectors in variants.items():
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        print(f"{name:>12} cosine to the standalone vectors {float(np.mean(np.sum(vectors * standalone, 1))):.3f}")
        sentences.vectors = vectors.astype(np.float16)
        report(name, systems, questions, gold)
    sentences.vectors = standalone
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
