"""Knowledge search: Embedder (sentence-transformers), Index (FAISS + manifest), Searcher.

The index is a build artefact in one folder: `vectors.npy` (float32, one L2-normalised
row per chunk) and `manifest.json` (model, dimension, build time, and per chunk its
article and content hash). Rebuilding re-embeds only chunks whose hash changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import faiss
import numpy as np

from navigator.knowledge import Article, KnowledgeBase

INDEX_FORMAT = 1
CHUNK_WORDS = 120  # e5-small reads 512 tokens; ~120 Russian words stay well inside
CHUNK_OVERLAP = 30
Decision = Literal["answer", "suggest", "escalate"]


class IndexUnavailable(Exception):
    """The index cannot be used as it is (missing, other model, corrupt): rebuild it.

    `reason` is the short why ("no index yet"), the message adds what to do.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Chunk:
    """A piece of an article that gets one vector."""

    article_id: str
    lang: str
    path: str
    title: str
    headings: tuple[str, ...]
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:32]


def article_chunks(article: Article) -> list[Chunk]:
    """The chunks of one article: its example questions, then each section in windows."""
    chunks = []
    if article.questions:
        text = f"{article.title}\n" + "\n".join(article.questions)
        chunks.append(Chunk(article.id, article.lang, article.path, article.title, (), text))
    for section in article.sections:
        heading = " / ".join(section.headings)
        prefix = f"{article.title}. {heading}\n" if heading else f"{article.title}\n"
        for window in _windows(section.text.split()):
            chunks.append(Chunk(article.id, article.lang, article.path, article.title,
                                section.headings, prefix + " ".join(window)))
    if not chunks:
        chunks.append(Chunk(article.id, article.lang, article.path, article.title, (),
                            article.title))
    return chunks


def _windows(words: list[str]) -> list[list[str]]:
    if len(words) <= CHUNK_WORDS:
        return [words]
    step = CHUNK_WORDS - CHUNK_OVERLAP
    return [words[i:i + CHUNK_WORDS] for i in range(0, len(words) - CHUNK_OVERLAP, step)]


def knowledge_chunks(knowledge: KnowledgeBase) -> list[Chunk]:
    return [chunk for article in knowledge.articles for chunk in article_chunks(article)]


# Embedder -----------------------------------------------------------------------------


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors.

    Uses the model's `query`/`passage` prompts when it has them (e5 expects
    `query: ` / `passage: ` prefixes).
    """

    def __init__(self, model_name: str, cache_dir: Path | None = None):
        from transformers.utils import logging as transformers_logging

        from navigator.embedding_model import load_sentence_transformer

        # The library's "Loading weights" bars and notices would interleave with the chat.
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        self.name = model_name
        self.model = load_sentence_transformer(model_name, cache_dir)
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int = 32) -> np.ndarray:
        prompt_name = prompt if prompt in (self.model.prompts or {}) else None
        vectors = self.model.encode(list(texts), prompt_name=prompt_name, batch_size=batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dimension)."""
        return self._encode(texts, "query")

    def embed_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Shape (len(texts), dimension); calls `on_progress(done)` after each batch."""
        parts = []
        batch = 64
        for start in range(0, len(texts), batch):
            parts.append(self._encode(texts[start:start + batch], "passage"))
            if on_progress:
                on_progress(min(start + batch, len(texts)))
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack(parts)


# Index --------------------------------------------------------------------------------


@dataclass
class Index:
    """Chunk vectors with their manifest, searchable by inner product (= cosine)."""

    model: str
    dimension: int
    chunks: list[dict[str, Any]]
    vectors: np.ndarray
    built_at: str

    def __post_init__(self) -> None:
        # Exact search: the shipped base has hundreds of chunks, where a flat index
        # answers in well under a millisecond; an approximate index is a later,
        # measured choice for large bases.
        self.faiss = faiss.IndexFlatIP(self.dimension)
        if len(self.vectors):
            self.faiss.add(self.vectors)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, chunk positions) of the k nearest chunks, each shape (k,)."""
        k = min(k, len(self.chunks))
        if k == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores, ids = self.faiss.search(query.reshape(1, -1), k)
        return scores[0], ids[0]

    def hashes(self) -> list[str]:
        return [c["hash"] for c in self.chunks]


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
    last, so a crash mid-build leaves the previous index usable.
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


# Searcher -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One article found: its best-matching chunk and that chunk's cosine score."""

    article: Article
    score: float
    headings: tuple[str, ...]


@dataclass(frozen=True)
class SearchResult:
    question: str
    decision: Decision
    hits: tuple[Hit, ...]
    ms: float


class SearchBackend(Protocol):
    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult: ...


class Searcher:
    """Dense search over the index, one result per article, and the decision to make.

    `answer` when the best article scores at least `answer_threshold`, `suggest` when it
    scores at least `suggest_threshold`, otherwise `escalate` (hand over to a human).
    """

    def __init__(self, knowledge: KnowledgeBase, index: Index, embedder: Embedder,
                 answer_threshold: float, suggest_threshold: float):
        self.knowledge = knowledge
        self.index = index
        self.embedder = embedder
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self._articles = {a.path: a for a in knowledge.articles}

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        """Rank articles for `question`; with `language`, show each article in that
        language when a translation exists (scored by its best version)."""
        started = time.perf_counter()
        question = " ".join(question.split())[:2000]
        if not any(unicodedata.category(ch)[0] in "LN" for ch in question):
            return SearchResult(question, "escalate", (), _ms(started))
        query = self.embedder.embed_queries([question])[0]
        scores, rows = self.index.search(query, max(k * 8, 40))
        best: dict[str, Hit] = {}
        for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
            if row < 0:
                continue
            chunk = self.index.chunks[row]
            article = self._articles.get(chunk["path"])
            if article is None:
                continue
            key = article.id if language else article.path
            shown = self.knowledge.get(article.id, language) if language else article
            current = best.get(key)
            if current is None or score > current.score:
                best[key] = Hit(shown or article, float(score), tuple(chunk["headings"]))
        hits = tuple(sorted(best.values(), key=lambda h: -h.score)[:k])
        return SearchResult(question, self._decide(hits), hits, _ms(started))

    def _decide(self, hits: Sequence[Hit]) -> Decision:
        if hits and hits[0].score >= self.answer_threshold:
            return "answer"
        if hits and hits[0].score >= self.suggest_threshold:
            return "suggest"
        return "escalate"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class BackgroundSearcher:
    """Loads the model (and refreshes the index) on a thread; `search` waits until ready.

    Lets the terminal chat show its menu at once while the model loads.
    """

    def __init__(self, load: Callable[[], Searcher]):
        self._ready = threading.Event()
        self._searcher: Searcher | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), daemon=True,
                                        name="searcher-loader")
        self._thread.start()

    def _run(self, load: Callable[[], Searcher]) -> None:
        try:
            self._searcher = load()
        except BaseException as exc:  # reported to the caller of search()
            self._error = exc
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self) -> Searcher:
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._searcher is not None
        return self._searcher

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        return self.wait().search(question, language, k)
