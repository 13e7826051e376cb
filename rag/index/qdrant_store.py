"""The Qdrant store: passage vectors and BM25 in a Qdrant collection, through the official client (qdrant-client).

Selected by `RAG_VECTOR_STORE=qdrant`. `RAG_VECTOR_STORE_URI` is a URL (`http://host:6333`) for a Qdrant
server or cluster, or a folder for qdrant-client's embedded local mode (default `<index_dir>/qdrant`; one
process at a time may open it). `RAG_VECTOR_STORE_COLLECTION` names the collection (one corpus each).

What lives where: the engine holds, per passage, one point with the passage vector (named `dense`, dot
product, the same float16-rounded values the FAISS store keeps, stored as float16), a BM25 sparse vector
(named `bm25`) and the payload {passage, document}. The index folder keeps what it always did except the
FAISS file: the manifest, the passages (text, offsets, sentences) and the sentence vectors for the
highlight and the verdict. Replicas share the folder (read-only) and the cluster.

BM25 as the default store computes it (bm25s, Lucene's variant): the client tokenizes exactly as bm25s
does (rag.index.lexical.tokens: Snowball stems, the same stop words), hashes each term to a 32-bit
index, and stores tf / (tf + k1 (1 - b + b dl / avgdl)) per term; the collection's IDF modifier makes
Qdrant multiply by ln(1 + (N - df + 0.5) / (df + 0.5)) over the points it holds at query time, so a
passage added or removed moves every IDF as it does in bm25s. avgdl is the build's own (so a fresh build
scores exactly as bm25s), and a rebuild keeps the previous build's while the corpus's average length stays
within AVGDL_DRIFT of it, so that a small change leaves unchanged passages' vectors (and points) as they are.
A question is the sparse vector of its term counts (a repeated term counts twice, as in bm25s).

Point ids are content-addressed (uuid5 of the passage id, its embedded text's sha256, the model and the
avgdl): a build adds the points the collection lacks, writes the manifest, then removes the points
no longer named (`add_passages`, `remove_others`); opening an index checks that every point it names is
there (else the index is stale: rebuilt, or refused with RAG_AUTO_BUILD=false).

A filter (one bool per passage) goes to the engine as a payload condition on `document` when it allows
whole documents, else as the list of allowed point ids; the engine searches within it, never a global
top-k cut down afterwards. Passages the engine returns that this snapshot does not name (points of a
newer build, before this replica reloads) are dropped.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
import uuid
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from rag.errors import IndexProblem, IndexStale
from rag.index.lexical import BM25, tokens
from rag.index.vector_store import DenseHits, LexicalHits

DENSE = "dense"
SPARSE = "bm25"
BATCH = 256  # points per upsert or retrieve call
NAMESPACE = uuid.UUID("0b7c4d1e-6f0a-4e55-9a51-3f1c2a9d8e11")
AVGDL_DRIFT = 0.05  # a rebuild keeps the previous avgdl while the corpus's is within 5 % of it

_connections: dict[str, "Connection"] = {}
_connections_lock = threading.Lock()


class Connection:
    """One client per URI in this process (local mode allows one per folder); local mode's calls are serialised."""

    def __init__(self, uri: str):
        from qdrant_client import QdrantClient

        self.uri = uri
        self.local = not uri.startswith(("http://", "https://"))
        try:
            self.client = QdrantClient(path=uri) if self.local else QdrantClient(url=uri, timeout=30)
        except RuntimeError as exc:  # the folder is held by another process (portalocker)
            raise IndexProblem(
                f"the embedded Qdrant at {uri} is open in another process ({exc}); local mode serves one process: "
                "run a Qdrant server for replicas and set RAG_VECTOR_STORE_URI to its URL"
            ) from exc
        self.lock = threading.RLock() if self.local else nullcontext()


@atexit.register
def close_all() -> None:
    """Close every client before the interpreter tears down (local mode persists and unlocks its folder on close)."""
    with _connections_lock:
        for connection in _connections.values():
            try:
                connection.client.close()
            except Exception:  # noqa: BLE001 - closing at exit must never raise
                pass
        _connections.clear()


def connect(uri: str) -> Connection:
    if "://" in uri and not uri.startswith(("http://", "https://")):
        raise IndexProblem(f"RAG_VECTOR_STORE_URI {uri!r} is neither an http(s) URL nor a folder")
    key = uri if uri.startswith(("http://", "https://")) else str(Path(uri).resolve())
    with _connections_lock:
        if key not in _connections:
            if not uri.startswith(("http://", "https://")):
                Path(key).mkdir(parents=True, exist_ok=True)
            _connections[key] = Connection(key)
        return _connections[key]


def term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big")


def choose_avgdl(lengths: list[int], previous: float | None) -> float:
    """The average passage length BM25 normalises by: this build's, or the previous build's while close to it."""
    average = round(max(sum(lengths) / max(len(lengths), 1), 1.0), 6)
    if isinstance(previous, (int, float)) and previous > 0 and abs(average / previous - 1) <= AVGDL_DRIFT:
        return float(previous)
    return average


def passage_sparse(terms: list[str], avgdl: float):
    """BM25's document side of one passage (Lucene's tf part; Qdrant's IDF modifier supplies the rest)."""
    from qdrant_client import models

    counts = Counter(term_id(t) for t in terms)
    norm = BM25["k1"] * (1 - BM25["b"] + BM25["b"] * len(terms) / avgdl)
    indices = sorted(counts)
    return models.SparseVector(indices=indices, values=[counts[i] / (counts[i] + norm) for i in indices])


def question_sparse(question: str):
    from qdrant_client import models

    counts = Counter(term_id(t) for t in tokens([question])[0])
    indices = sorted(counts)
    return models.SparseVector(indices=indices, values=[float(counts[i]) for i in indices])


def point_id(passage_id: str, embedded_key: str, tag: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{passage_id}:{embedded_key}:{tag}"))


def point_tag(model: dict, avgdl: float) -> str:
    return f"{hashlib.sha256(repr(sorted(model.items())).encode()).hexdigest()[:12]}:{avgdl}"


# --- the write side: add and remove passages -----------------------------------------------


def add_passages(uri: str, collection: str, passages, vectors: np.ndarray, lexical_texts: list[str], embedded_keys: list[str], model: dict,
                 previous: dict | None = None) -> dict:
    """Upsert the passages the collection lacks (vector, BM25 sparse vector, payload); returns the manifest's
    `store_state`: the avgdl and model tag the point ids were made with, and how many points were added.
    `previous`: the store_state of the index this build replaces (its avgdl is kept while close)."""
    from qdrant_client import models

    connection = connect(uri)
    dimension = int(vectors.shape[1])
    terms = tokens(lexical_texts)
    avgdl = choose_avgdl([len(t) for t in terms], (previous or {}).get("avgdl"))
    tag = point_tag(model, avgdl)
    ids = [point_id(p.id, key, tag) for p, key in zip(passages, embedded_keys)]
    with connection.lock:
        _ensure_collection(connection, collection, dimension, exists=_reachable(connection, collection))
        present = _present(connection, collection, ids)
        added = 0
        for start in range(0, len(ids), BATCH):
            batch = [
                models.PointStruct(
                    id=ids[i],
                    vector=_vector_of(vectors[i], terms[i], avgdl),
                    payload={"passage": passages[i].id, "document": passages[i].document},
                )
                for i in range(start, min(start + BATCH, len(ids)))
                if ids[i] not in present
            ]
            if batch:
                connection.client.upsert(collection, points=batch, wait=True)
                added += len(batch)
    return {"kind": "qdrant", "avgdl": avgdl, "tag": tag, "added": added}


def _vector_of(vector: np.ndarray, terms: list[str], avgdl: float) -> dict:
    dense = np.asarray(vector, dtype=np.float16).astype(np.float32).tolist()  # what the FAISS store keeps (fp16)
    return {DENSE: dense, SPARSE: passage_sparse(terms, avgdl)} if terms else {DENSE: dense}


def remove_others(uri: str, collection: str, keep: set[str]) -> int:
    """Delete the collection's points that `keep` does not name (passages no build serves any more)."""
    from qdrant_client import models

    connection = connect(uri)
    with connection.lock:
        stale, offset = [], None
        while True:
            points, offset = connection.client.scroll(collection, limit=10_000, offset=offset, with_payload=False, with_vectors=False)
            stale += [p.id for p in points if str(p.id) not in keep]
            if offset is None:
                break
        for start in range(0, len(stale), 10_000):
            connection.client.delete(collection, points_selector=models.PointIdsList(points=stale[start : start + 10_000]), wait=True)
    return len(stale)


def _reachable(connection: Connection, collection: str) -> bool:
    """Whether the collection exists; IndexProblem, with the reason, when the engine cannot be asked at all."""
    try:
        return connection.client.collection_exists(collection)
    except Exception as exc:  # noqa: BLE001 - connection refused, timeout, TLS, an HTTP error: the client's own types vary
        raise IndexProblem(f"cannot reach Qdrant at {connection.uri}: {str(exc)[:200] or type(exc).__name__}") from exc


def _ensure_collection(connection: Connection, collection: str, dimension: int, exists: bool) -> None:
    """The collection, made when it does not `exist` yet; one that holds vectors of another size is refused."""
    from qdrant_client import models

    client = connection.client
    if exists:
        size = _dense_size(client, collection)
        if size != dimension:
            raise IndexProblem(
                f"the Qdrant collection {collection!r} holds vectors of size {size}, this model makes {dimension}: "
                "choose another RAG_VECTOR_STORE_COLLECTION (or delete that collection)"
            )
        return
    client.create_collection(
        collection,
        vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.DOT, datatype=models.Datatype.FLOAT16)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    if not connection.local:  # local mode has no payload indexes (it scans); a server filters by this one
        client.create_payload_index(collection, "document", models.PayloadSchemaType.KEYWORD)


def _dense_size(client, collection: str) -> int | None:
    vectors = client.get_collection(collection).config.params.vectors
    params = vectors.get(DENSE) if isinstance(vectors, dict) else None
    return params.size if params is not None else None


def _present(connection: Connection, collection: str, ids: list[str]) -> set[str]:
    found = set()
    for start in range(0, len(ids), 10_000):
        points = connection.client.retrieve(collection, ids=ids[start : start + 10_000], with_payload=False, with_vectors=False)
        found.update(str(p.id) for p in points)
    return found


# --- the read side: one snapshot's store ----------------------------------------------------


def open_store(uri: str, collection: str, manifest: dict, passages, embedded_keys: list[str]) -> "QdrantStore":
    """The store over an index's passages, after checking that the collection holds every one of its points."""
    state = manifest.get("store_state")
    if not isinstance(state, dict) or not isinstance(state.get("tag"), str):
        raise IndexStale(f"index {manifest.get('id')} names no Qdrant points (no store_state); rebuild with `rag index`")
    connection = connect(uri)
    ids = [point_id(p.id, key, state["tag"]) for p, key in zip(passages, embedded_keys)]
    with connection.lock:
        if not _reachable(connection, collection):
            raise IndexStale(f"the Qdrant collection {collection!r} at {uri} does not exist; build it with `rag index`")
        dimension = _dense_size(connection.client, collection)
        missing = len(ids) - len(_present(connection, collection, ids))
    if missing or dimension != manifest.get("dimension"):
        raise IndexStale(f"the Qdrant collection {collection!r} at {uri} lacks {missing} of index {manifest.get('id')}'s {len(ids)} passages; rebuild with `rag index`")
    return QdrantStore(connection, collection, ids, [p.document for p in passages], int(dimension))


class QdrantStore:
    """One snapshot's passages in a Qdrant collection: the store seam (rag.index.vector_store) plus the FAISS-like
    `ntotal`, `d`, `reconstruct_n` that the build reads old vectors through."""

    kind = "qdrant"

    def __init__(self, connection: Connection, collection: str, point_ids: list[str], documents: list[str], dimension: int):
        self.connection = connection
        self.client = connection.client
        self.collection = collection
        self.point_ids = point_ids
        self.position = {pid: i for i, pid in enumerate(point_ids)}
        self.d = dimension
        self.ntotal = len(point_ids)
        names, self._document_codes = np.unique(np.array(documents, dtype=object), return_inverse=True) if documents else ([], np.zeros(0, np.int64))
        self._document_names = list(names)
        self._document_sizes = np.bincount(self._document_codes, minlength=len(self._document_names))

    # the seam

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> DenseHits:
        condition = self._filter(allowed)
        if condition is False or k <= 0:
            return DenseHits(np.zeros(0, dtype=np.int64), {})
        with self.connection.lock:
            found = self.client.query_points(
                self.collection, query=query.astype(np.float32).tolist(), using=DENSE, limit=k, query_filter=condition,
                with_payload=False, with_vectors=[DENSE],
            ).points
        positions, vectors = [], {}
        for point in found:
            i = self.position.get(str(point.id))
            if i is not None:
                positions.append(i)
                vectors[i] = np.asarray(point.vector[DENSE], dtype=np.float32)
        return DenseHits(np.array(positions, dtype=np.int64), vectors)

    def lexical_search(self, question: str, k: int, allowed: np.ndarray | None) -> LexicalHits:
        sparse = question_sparse(question)
        condition = self._filter(allowed)
        if condition is False or not sparse.indices or k <= 0:
            return LexicalHits(np.zeros(0, dtype=np.int64), scorer=lambda pool: np.zeros(len(pool), dtype=np.float32))
        scores = self._sparse_scores(sparse, k, condition)
        ranked = sorted(scores, key=lambda i: (-scores[i], i))  # ties by position, as the default store breaks them

        def scorer(pool: np.ndarray) -> np.ndarray:
            missing = [int(i) for i in pool if int(i) not in scores]
            if missing:
                from qdrant_client import models

                only = models.Filter(must=[models.HasIdCondition(has_id=[self.point_ids[i] for i in missing])])
                scores.update(self._sparse_scores(sparse, len(missing), only))
            return np.array([scores.get(int(i), 0.0) for i in pool], dtype=np.float32)

        return LexicalHits(np.array([i for i in ranked if scores[i] > 0], dtype=np.int64), scorer=scorer)

    def passage_vectors(self, positions: np.ndarray, known: DenseHits | None = None) -> np.ndarray:
        out = np.zeros((len(positions), self.d), dtype=np.float32)
        cached = known.vectors if known is not None and known.vectors else {}
        wanted = [j for j, i in enumerate(positions) if int(i) not in cached]
        for j, i in enumerate(positions):
            if int(i) in cached:
                out[j] = cached[int(i)]
        if wanted:
            fetched = self._fetch([int(positions[j]) for j in wanted])
            for j in wanted:
                out[j] = fetched[int(positions[j])]
        return out

    # FAISS-like reads, for the build's reuse of unchanged vectors and for tests

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        return self.passage_vectors(np.arange(start, start + n, dtype=np.int64))

    def reconstruct_batch(self, positions: np.ndarray) -> np.ndarray:
        return self.passage_vectors(np.asarray(positions, dtype=np.int64))

    # helpers

    def _fetch(self, positions: list[int]) -> dict[int, np.ndarray]:
        vectors = {}
        for start in range(0, len(positions), BATCH * 16):
            chunk = positions[start : start + BATCH * 16]
            with self.connection.lock:
                points = self.client.retrieve(self.collection, ids=[self.point_ids[i] for i in chunk], with_payload=False, with_vectors=[DENSE])
            for point in points:
                vectors[self.position[str(point.id)]] = np.asarray(point.vector[DENSE], dtype=np.float32)
        missing = [i for i in positions if i not in vectors]
        if missing:
            raise IndexProblem(f"the Qdrant collection {self.collection!r} lost {len(missing)} passage(s) of this index; rebuild with `rag index`")
        return vectors

    def _sparse_scores(self, sparse, limit: int, condition) -> dict[int, float]:
        with self.connection.lock:
            found = self.client.query_points(self.collection, query=sparse, using=SPARSE, limit=limit, query_filter=condition, with_payload=False).points
        scores = {}
        for point in found:
            i = self.position.get(str(point.id))
            if i is not None:
                scores[i] = float(point.score)
        return scores

    def _filter(self, allowed: np.ndarray | None):
        """The engine's filter for `allowed`: None (everything), False (nothing), whole documents by payload, or ids."""
        if allowed is None:
            return None
        from qdrant_client import models

        positions = np.flatnonzero(allowed)
        if not len(positions):
            return False
        codes = self._document_codes[positions]
        counts = np.bincount(codes, minlength=len(self._document_names))
        touched = np.flatnonzero(counts)
        if np.array_equal(counts[touched], self._document_sizes[touched]):  # whole documents: a payload condition
            names = [self._document_names[c] for c in touched]
            return models.Filter(must=[models.FieldCondition(key="document", match=models.MatchAny(any=names))])
        return models.Filter(must=[models.HasIdCondition(has_id=[self.point_ids[i] for i in positions])])
