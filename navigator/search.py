"""Knowledge search: Embedder (sentence-transformers), Index (FAISS + manifest),
LexicalIndex (BM25), Searcher (hybrid ranking + decision), ReloadingSearcher.

The index is a build artefact in one folder: `vectors.npy` (float32, one L2-normalised
row per chunk) and `manifest.json` (model, dimension, build time, and per chunk its
article and content hash). Rebuilding re-embeds only chunks whose hash changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import faiss
import numpy as np

from navigator.knowledge import Article, KnowledgeBase

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
CHUNK_WORDS = 120  # e5-small reads 512 tokens; ~120 Russian words stay well inside
CHUNK_OVERLAP = 30
Decision = Literal["answer", "suggest", "escalate"]

# Ranking weights, measured on the reference corpus (MTLA documents, dev questions) and
# on knowledge/questions.jsonl (`benchmarks/search.py` prints the ablation). An article's
# score is its best chunk's cosine, minus a small penalty growing with its number of
# chunks (a 26-chunk report otherwise wins by having more chances at a high cosine:
# top-1 0.57 -> 0.61 on the reference corpus), plus a small share of its BM25 score,
# z-normalised over the dense candidates (then 0.64 top-1 and 0.82 -> 0.93 top-5 there;
# 0.76 -> 0.85 top-1 on the shipped base). Rank fusion (RRF: 0.46 / 0.79) and larger
# lexical weights scored below dense alone; query-term coverage, the margin between the
# top scores and per-query z-scores of the cosine did not separate out-of-scope
# questions better than the fused top score (AUC 0.51-0.95 vs 0.93-0.94).
CANDIDATE_ARTICLES = 20  # the dense shortlist BM25 may reorder; fixed, so the scale of the
#                          z-score does not depend on the size of the base
CANDIDATE_CHUNKS = 256  # nearest chunks fetched to find the shortlist
LENGTH_PENALTY = 0.004  # per ln(chunks of the article)
LEXICAL_WEIGHT = 0.005  # per standard deviation of BM25 among the candidates
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
        self.query_encoder: Any = None  # see use_bfloat16_queries
        self.batcher: QueryBatcher | None = None  # see QueryBatcher.start
        self._lock = threading.Lock()  # the encoder is swapped for questions (and back)
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int = 32,
                encoder: Any = None) -> np.ndarray:
        """Through `encoder` (a transformers model standing in for the model's own, e.g.
        the bfloat16 copy), or the model as loaded."""
        prompt_name = prompt if prompt in (self.model.prompts or {}) else None
        with self._lock:
            transformer, slot = self.model[0], _encoder_slot(self.model[0])
            own = getattr(transformer, slot)
            if encoder is not None:
                setattr(transformer, slot, encoder)
            try:
                vectors = self.model.encode(list(texts), prompt_name=prompt_name,
                                            batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True)
            finally:
                setattr(transformer, slot, own)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def use_bfloat16_queries(self, probe: Sequence[str] = (), min_cosine: float = 0.9999,
                             max_time_ratio: float = 0.8) -> dict[str, float]:
        """Embed questions (not passages) with a bfloat16 copy of the encoder, if on this
        CPU it is faster and agrees with float32; returns what was measured, `used` 1/0.

        CPUs with native bfloat16 (AVX512-BF16, AMX) run it about twice as fast alone and
        2.6x in batches (multilingual-e5-small, 2 shared cores: 25 -> 14 ms per question,
        12 -> 4.5 ms in eights), elsewhere it is emulated and slower. The vectors stay
        float32 and the index is untouched: the encoder's output is pooled and normalised
        in float32, and the word-embedding table (most of the model) is shared, not
        copied. Measured on knowledge/questions.jsonl and the reference corpus's
        questions: top scores within 0.0008 of float32, the same decision (answer,
        suggest, escalate) for all 183 questions, the same recommended thresholds.
        """
        import copy

        import torch

        probe = list(probe or PROBE_QUESTIONS)
        own = getattr(self.model[0], _encoder_slot(self.model[0]), None)
        if own is None or not hasattr(own, "get_input_embeddings"):
            return {"used": 0.0}
        with self._lock:
            words = own.get_input_embeddings()
            own.set_input_embeddings(torch.nn.Identity())  # the big table stays out
            try:
                fast = copy.deepcopy(own)
            finally:
                own.set_input_embeddings(words)
        fast.to(torch.bfloat16)
        fast.set_input_embeddings(_cast_embedding(words, torch.bfloat16))
        fast.forward = _float_output(fast.forward)  # an instance attribute: this copy only
        exact = self._embed_queries(probe, None)
        close = float((exact * self._embed_queries(probe, fast)).sum(axis=1).min())
        plain_s, fast_s = (self._time_queries(probe, encoder) for encoder in (None, fast))
        used = close >= min_cosine and fast_s <= max_time_ratio * plain_s
        self.query_encoder = fast if used else None
        return {"used": float(used), "min_cosine": close, "float32_ms": plain_s * 1000,
                "bfloat16_ms": fast_s * 1000}

    def _time_queries(self, texts: list[str], encoder: Any) -> float:
        """CPU seconds per question, one at a time (this thread's own time: torch runs
        on it, so other processes' load does not count)."""
        self._embed_queries(texts[:2], encoder)  # warm up
        started = time.thread_time()
        for text in texts:
            self._embed_queries([text], encoder)
        return (time.thread_time() - started) / len(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dimension).

        On one thread: a chat question is too small to split across cores, and when the
        other core is busy the second thread's waiting made a query 10x slower (measured
        on 2 shared cores: p50 70 ms on one thread, 810 ms on two).
        """
        return self._embed_queries(texts, self.query_encoder)

    def _embed_queries(self, texts: Sequence[str], encoder: Any) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._encode(texts, "query", encoder=encoder)
        finally:
            torch.set_num_threads(threads)

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


class QueryBatcher:
    """Embeds questions on its own thread, those waiting together in one model call.

    The bot decides on one database thread, one event after another; the model there
    ran one question at a time while other questions queued behind it. The transport
    knows a question is coming before the engine reaches it (`Searcher.prefetch`), so
    here questions are embedded as they arrive, beside the database thread's work, and
    those that arrive together share a batch: with the bfloat16 encoder on 2 shared
    cores, 14 ms for one question alone, 4.5 ms each in a batch of eight.

    `embed(text)` returns the vector of one prefetch of `text` (waiting for it), or
    embeds it now if none is waiting. Every prefetch is embedded, even of a text that
    another prefetch holds too: nothing is cached, each question costs the model once.
    A prefetch never asked for (the text was an answer to a flow's question, not a
    search) is dropped after `keep_s` seconds.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 16, keep_s: float = 60.0):
        self.embedder = embedder
        self.max_batch = max_batch
        self.keep_s = keep_s
        self.batches: list[int] = []  # sizes of the last batches (for benchmarks)
        self._lock = threading.Condition()
        self._queue: list[tuple[str, Future[np.ndarray]]] = []
        self._waiting: dict[str, list[tuple[float, Future[np.ndarray]]]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> QueryBatcher:
        """Run the model thread, and let the embedder's searchers use it."""
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="navigator-model")
        self._thread.start()
        self.embedder.batcher = self
        return self

    def stop(self) -> None:
        if self.embedder.batcher is self:
            self.embedder.batcher = None
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()

    def prefetch(self, text: str) -> None:
        """Start embedding `text` (returns at once)."""
        future: Future[np.ndarray] = Future()
        now = time.monotonic()
        with self._lock:
            self._forget_older_than(now - self.keep_s)
            self._waiting.setdefault(text, []).append((now, future))
            self._queue.append((text, future))
            self._lock.notify()

    def embed(self, text: str) -> np.ndarray:
        """The vector of `text`, shape (dimension,): a prefetched one, or embedded now
        (ahead of the prefetches still queued)."""
        with self._lock:
            waiting = self._waiting.get(text)
            if waiting:
                _, future = waiting.pop(0)
                if not waiting:
                    del self._waiting[text]
            else:
                future = Future()
                self._queue.insert(0, (text, future))
                self._lock.notify()
        return future.result()

    def _forget_older_than(self, moment: float) -> None:
        for text in [t for t, items in self._waiting.items() if items[0][0] < moment]:
            kept = [(at, f) for at, f in self._waiting[text] if at >= moment]
            if kept:
                self._waiting[text] = kept
            else:
                del self._waiting[text]

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    for _, future in self._queue:
                        future.cancel()
                    return
                batch, self._queue = self._queue[:self.max_batch], \
                    self._queue[self.max_batch:]
            self.batches = [*self.batches[-999:], len(batch)]
            try:
                vectors = self.embedder.embed_queries([text for text, _ in batch])
            except BaseException as exc:  # the searcher waiting on it reports it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


# Questions the bfloat16 copy is checked and timed on (Russian and English, short and long).
PROBE_QUESTIONS = (
    "как создать кошелёк",
    "Как открыть линию доверия для токена EURMTL в LOBSTR?",
    "what is the Montelibero association",
    "Где купить MTL и сколько стоит вступление в ассоциацию, если я живу в Черногории?",
    "how do I get a residence permit",
    "что делать если потерял секретный ключ",
    "Can I pay for a coworking with EURMTL, and where do I find the list of places?",
    "кто такие агенты поддержки",
)


def _cast_embedding(table: Any, dtype: Any) -> Any:
    """A module that looks words up in the shared float32 `table` and gives `dtype`. The
    table is held outside the module's registry: moving the copy to another dtype must
    never convert the original model's table."""
    import torch

    class CastEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = (table,)

        def forward(self, ids: Any) -> Any:
            return self.shared[0](ids).to(dtype)

    return CastEmbedding()


def _encoder_slot(transformer: Any) -> str:
    """The attribute of sentence-transformers' Transformer module that holds the
    transformers model: `auto_model` in 5.x; in 6.x that is a read-only alias of `model`."""
    alias = isinstance(getattr(type(transformer), "auto_model", None), property)
    return "model" if alias else "auto_model"


def _float_output(forward: Callable[..., Any]) -> Callable[..., Any]:
    """`forward` with its hidden states in float32, so pooling and normalising are exact.
    (Not a forward hook: sentence-transformers 6 calls `forward` itself, skipping hooks.)"""
    def float_forward(*args: Any, **kwargs: Any) -> Any:
        output = forward(*args, **kwargs)
        output["last_hidden_state"] = output["last_hidden_state"].float()
        return output

    return float_forward


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
    """Exact inner product below HNSW_FROM_CHUNKS rows (see there why), HNSW above."""
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


# Lexical signal ---------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[а-я]")


class Tokenizer:
    """Lower-cased words, `ё` read as `е`, Snowball-stemmed: Russian for Cyrillic words,
    English for the rest (questions mix both: "как открыть trustline в LOBSTR")."""

    def __init__(self) -> None:
        import Stemmer

        self._russian = Stemmer.Stemmer("russian")
        self._english = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower().replace("ё", "е"))
        return [self._russian.stemWord(w) if _CYRILLIC.search(w) else self._english.stemWord(w)
                for w in words if len(w) > 1 or w.isdigit()]


class LexicalIndex:
    """BM25 (bm25s) over whole articles: title, example questions and body."""

    def __init__(self, articles: Sequence[Article], tokenizer: Tokenizer | None = None):
        import bm25s

        self.tokenize = tokenizer or Tokenizer()
        self.paths = [a.path for a in articles]
        self.position = {path: i for i, path in enumerate(self.paths)}
        # bm25s sets its own logger to DEBUG, which would print into the chat's stderr.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25 = bm25s.BM25()
        if articles:
            self._bm25.index([self.tokenize(_article_text(a)) or ["\u2205"] for a in articles],
                             show_progress=False)

    def scores(self, question: str) -> np.ndarray:
        """BM25 of every article for `question`, shape (len(paths),), in `paths` order."""
        tokens = self.tokenize(question)
        if not tokens or not self.paths:
            return np.zeros(len(self.paths), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)


def _article_text(article: Article) -> str:
    return "\n".join([article.title, *article.questions, article.body])


# Searcher -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One article found: its fused score (see Searcher) and its best section's headings."""

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


MAX_QUESTION_CHARS = 2000  # far past any chat question; the model reads ~512 tokens anyway


class Searcher:
    """Hybrid search over the index, one result per article, and the decision to make.

    Each article's score: its best chunk's cosine (dense), minus LENGTH_PENALTY x
    ln(its chunks), plus LEXICAL_WEIGHT x its BM25 z-score among the CANDIDATE_ARTICLES
    best by cosine. `answer` when the best article scores at least `answer_threshold`,
    `suggest` when at least `suggest_threshold`, otherwise `escalate` (hand to a human).
    The weights are arguments so that benchmarks can switch each signal off.
    """

    def __init__(self, knowledge: KnowledgeBase, index: Index, embedder: Embedder,
                 answer_threshold: float, suggest_threshold: float, *,
                 lexical_weight: float = LEXICAL_WEIGHT, length_penalty: float = LENGTH_PENALTY,
                 lexical: LexicalIndex | None = None):
        self.knowledge = knowledge
        self.index = index
        self.embedder = embedder
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self.lexical_weight = lexical_weight
        self.length_penalty = length_penalty
        self._articles = {a.path: a for a in knowledge.articles}
        chunk_counts: dict[str, int] = {}
        for chunk in index.chunks:
            chunk_counts[chunk["path"]] = chunk_counts.get(chunk["path"], 0) + 1
        self._penalty = {path: length_penalty * math.log(n) for path, n in chunk_counts.items()}
        self.lexical = lexical if lexical is not None or not lexical_weight else \
            LexicalIndex(knowledge.articles)

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        """Rank articles for `question`; with `language`, show each article in that
        language when a translation exists (scored by its best version)."""
        started = time.perf_counter()
        question = _normalized(question)
        if not _searchable(question):
            return SearchResult(question, "escalate", (), _ms(started))
        batcher = getattr(self.embedder, "batcher", None)
        query = batcher.embed(question) if batcher is not None else \
            self.embedder.embed_queries([question])[0]
        scores, rows = self.index.search(query, CANDIDATE_CHUNKS)
        dense: dict[str, tuple[float, tuple[str, ...]]] = {}  # path -> best cosine, headings
        for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
            if row < 0:
                continue
            chunk = self.index.chunks[row]
            if chunk["path"] in self._articles and chunk["path"] not in dense:
                dense[chunk["path"]] = (score, tuple(chunk["headings"]))
        candidates = sorted(dense, key=lambda p: -dense[p][0])[:max(CANDIDATE_ARTICLES, k)]
        fused = {p: dense[p][0] - self._penalty.get(p, 0.0) for p in candidates}
        if self.lexical is not None and len(candidates) > 1:
            lexical = self.lexical.scores(question)
            values = np.array([lexical[self.lexical.position[p]]
                               if p in self.lexical.position else 0.0 for p in candidates])
            spread = float(values.std())
            if spread > 0:
                for path, value in zip(candidates, values.tolist(), strict=True):
                    fused[path] += self.lexical_weight * (value - float(values.mean())) / spread
        best: dict[str, Hit] = {}
        for path in candidates:
            article = self._articles[path]
            key = article.id if language else article.path
            shown = self.knowledge.get(article.id, language) if language else article
            current = best.get(key)
            if current is None or fused[path] > current.score:
                best[key] = Hit(shown or article, float(fused[path]), dense[path][1])
        hits = tuple(sorted(best.values(), key=lambda h: -h.score)[:k])
        return SearchResult(question, self._decide(hits), hits, _ms(started))

    def prefetch(self, question: str) -> None:
        """`question` may well be searched soon: embed it now, in the background (with
        the embedder's QueryBatcher; without one this does nothing)."""
        batcher = getattr(self.embedder, "batcher", None)
        question = _normalized(question)
        if batcher is not None and _searchable(question):
            batcher.prefetch(question)

    def _decide(self, hits: Sequence[Hit]) -> Decision:
        if hits and hits[0].score >= self.answer_threshold:
            return "answer"
        if hits and hits[0].score >= self.suggest_threshold:
            return "suggest"
        return "escalate"


def _normalized(question: str) -> str:
    return " ".join(question.split())[:MAX_QUESTION_CHARS]


def _searchable(question: str) -> bool:
    """Has a letter or a digit: anything else (emoji, punctuation) escalates unsearched."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in question)


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


class ReloadingSearcher:
    """Serves a Searcher and swaps in a fresh one when the index on disk is rebuilt.

    At most every `every` seconds a search looks at the manifest's (inode, size, mtime);
    when they changed, `load` runs on a thread (a large base takes seconds to read and
    to tokenise for BM25) while the old searcher keeps answering, and the new one
    replaces it in one assignment. A rebuild that cannot be loaded (half-written,
    another model, broken file) is logged and the old index keeps serving until the
    manifest changes again.
    """

    def __init__(self, searcher: Searcher, directory: Path, load: Callable[[], Searcher],
                 every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._current = searcher
        self.directory = directory
        self._load = load
        self.every = every
        self._clock = clock
        self._signature = _manifest_signature(directory)
        self._next_check = clock() + every
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self.reloads = 0

    @property
    def current(self) -> Searcher:
        return self._current

    def __getattr__(self, name: str) -> Any:
        # answer_threshold, knowledge, embedder...: whatever the serving Searcher has.
        return getattr(self._current, name)

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        self.check()
        return self._current.search(question, language, k)

    def check(self, wait: bool = False) -> None:
        """Start a reload when the manifest changed and the last look is `every` s old;
        with `wait`, look now and return once any reload has finished."""
        now = self._clock()
        with self._lock:
            if not wait and (now < self._next_check or self._loading is not None):
                return
            self._next_check = now + self.every
            signature = _manifest_signature(self.directory)
            if self._loading is None and signature != self._signature:
                self._loading = threading.Thread(target=self._reload, args=(signature,),
                                                 daemon=True, name="index-reloader")
                self._loading.start()
            loading = self._loading
        if wait and loading is not None:
            loading.join()

    def _reload(self, signature: tuple[int, ...] | None) -> None:
        try:
            searcher = self._load()
        except Exception as exc:
            log.warning("the rebuilt index in %s is not used, the previous one keeps "
                        "serving: %s", self.directory, exc)
        else:
            self._current = searcher
            self.reloads += 1
            log.info("search index reloaded from %s (%d chunks)", self.directory,
                     len(searcher.index.chunks))
        finally:
            with self._lock:
                self._signature = signature
                self._loading = None


def _manifest_signature(directory: Path) -> tuple[int, ...] | None:
    try:
        stat = (directory / "manifest.json").stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
