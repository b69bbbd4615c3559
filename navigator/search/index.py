"""The search index: chunk vectors in FAISS, with the manifest that says what they are.

The index is a build artefact in one folder: `vectors.npy` (float32, one L2-normalised
row per chunk) and `manifest.json` (model, dimension, build time, and per chunk its
article and content hash). Rebuilding re-embeds only chunks whose hash changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from navigator.knowledge import KnowledgeBase
from navigator.search.chunking import knowledge_chunks
from navigator.search.embedder import Embedder

INDEX_FORMAT = 1
CANDIDATE_CHUNKS = 256  # nearest chunks a search fetches to find its shortlist (Searcher)
# Past this many chunks the exact (flat) FAISS index gives way to HNSW. Measured on 2
# loaded cores, one 384-d query on one thread, k=256 (`benchmarks/search.py --faiss`):
# flat 1.0 ms at 20,000 chunks (the 5,000-article base has ~19,000), 2.4 ms at 50,000,
# 5.9 ms at 100,000, growing linearly, while the model takes ~20 ms of the 25 ms budget
# of a question. HNSW(32) stays at 1.0-1.7 ms, but it is approximate and is built at
# every load and reload (8 s per 20,000 chunks, 53 s per 100,000 here), so exact search
# wins until the scan itself threatens the budget.
HNSW_FROM_CHUNKS = 100_000


class IndexUnavailable(Exception):
    """The index cannot be used as it is (missing, other model, corrupt): rebuild it.

    `reason` is the short why ("no index yet"), the message adds what to do.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Index:
    """Chunk vectors with their manifest, searchable by inner product (= cosine).

    `vectors` has shape (len(chunks), dimension); `chunks[i]` is the manifest's entry of
    row i (article_id, lang, path, title, headings, hash).
    """

    model: str
    dimension: int
    chunks: list[dict[str, Any]]
    vectors: np.ndarray
    built_at: str

    def __post_init__(self) -> None:
        self.faiss = faiss_index(self.vectors, self.dimension)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, chunk positions) of the k nearest chunks, each shape (k,)."""
        k = min(k, len(self.chunks))
        if k == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        with _one_faiss_thread():
            scores, ids = self.faiss.search(query.reshape(1, -1), k)
        return scores[0], ids[0]

    def hashes(self) -> list[str]:
        """The content hash of each chunk, in row order."""
        return [c["hash"] for c in self.chunks]


@contextlib.contextmanager
def _one_faiss_thread() -> Iterator[None]:
    """One query is searched on one thread: on 2 shared cores, OpenMP's second thread
    made a flat search of 19,000 chunks take 16 ms instead of 0.85 ms."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def faiss_index(vectors: np.ndarray, dimension: int) -> faiss.Index:
    """A FAISS index holding `vectors` (shape (n, dimension)): exact inner product below
    HNSW_FROM_CHUNKS rows (see there why), HNSW above."""
    if len(vectors) < HNSW_FROM_CHUNKS:
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = CANDIDATE_CHUNKS  # must cover the k asked for
    if len(vectors):
        index.add(vectors)
    return index


def load_index(directory: Path, model: str | None = None) -> Index:
    """Read an index folder; raise IndexUnavailable with a clear reason when it is unusable."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise IndexUnavailable(f"no index in {directory}: build it with `navigator index`",
                               "no index yet")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        vectors = np.load(directory / "vectors.npy")
    except (OSError, ValueError) as exc:
        raise _unusable(directory, f"is unreadable ({exc})") from None
    if manifest.get("format") != INDEX_FORMAT:
        raise _unusable(directory, "has an old format")
    if model and manifest.get("model") != model:
        raise _unusable(directory, f"was built with model {manifest.get('model')!r}, "
                                   f"not {model!r}")
    if vectors.shape != (len(manifest["chunks"]), manifest["dimension"]):
        raise _unusable(directory, "is inconsistent")
    return Index(manifest["model"], manifest["dimension"], manifest["chunks"],
                 vectors.astype(np.float32), manifest.get("built_at", ""))


def _unusable(directory: Path, reason: str) -> IndexUnavailable:
    return IndexUnavailable(f"index in {directory} {reason}: rebuild it with "
                            "`navigator index`", f"the index {reason}")


def index_is_fresh(directory: Path, knowledge: KnowledgeBase, model: str) -> bool:
    """True when the index holds exactly the current chunks, embedded by `model`."""
    try:
        index = load_index(directory, model)
    except IndexUnavailable:
        return False
    return index.hashes() == [c.hash for c in knowledge_chunks(knowledge)]


@dataclass(frozen=True)
class BuildReport:
    """What a build did: chunks in the index, of them embedded now and reused."""

    chunks: int
    embedded: int
    reused: int
    seconds: float


def build_index(
    knowledge: KnowledgeBase,
    embedder: Embedder,
    directory: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Build (or refresh) the index of `knowledge` in `directory`.

    Vectors of unchanged chunks are reused from the previous index of the same model;
    only new or edited chunks are embedded. Files are replaced atomically, manifest
    last, so a crash mid-build leaves the previous index usable. `on_progress(done,
    total)` follows the embedding. Returns a BuildReport.
    """
    started = time.perf_counter()
    chunks = knowledge_chunks(knowledge)
    previous: dict[str, np.ndarray] = {}
    try:
        old = load_index(directory, embedder.name)
        previous = {h: old.vectors[i] for i, h in enumerate(old.hashes())}
    except IndexUnavailable:
        pass
    missing = [c for c in chunks if c.hash not in previous]
    unique_missing = list({c.hash: c for c in missing}.values())
    fresh = embedder.embed_passages(
        [c.text for c in unique_missing],
        (lambda done: on_progress(done, len(unique_missing))) if on_progress else None,
    )
    new_vectors = dict(zip((c.hash for c in unique_missing), fresh, strict=True))
    vectors = np.zeros((len(chunks), embedder.dimension), dtype=np.float32)
    for row, chunk in enumerate(chunks):
        vectors[row] = new_vectors.get(chunk.hash, previous.get(chunk.hash))
    manifest = {
        "format": INDEX_FORMAT,
        "model": embedder.name,
        "dimension": embedder.dimension,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # Chunk texts stay out of the manifest: the articles are the source of truth.
        "chunks": [{**_without_text(asdict(c)), "hash": c.hash} for c in chunks],
    }
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / "vectors.npy", lambda f: np.save(f, vectors))
    _atomic_write(directory / "manifest.json",
                  lambda f: f.write(json.dumps(manifest, ensure_ascii=False, indent=1).encode()))
    return BuildReport(len(chunks), len(unique_missing), len(chunks) - len(missing),
                       time.perf_counter() - started)


def _without_text(chunk: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in chunk.items() if key != "text"}


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
