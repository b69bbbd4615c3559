"""Hybrid search over the index: articles ranked by meaning and words, and the decision
to answer, suggest or hand over; `SearchBackend` is what the engine and the desk ask of it."""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from navigator.knowledge import Article, KnowledgeBase
from navigator.search.embedder import QueryEmbedder
from navigator.search.index import CANDIDATE_CHUNKS, Index
from navigator.search.lexical import LexicalIndex

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
# CANDIDATE_CHUNKS (in navigator.search.index): the nearest chunks fetched to find the
# shortlist; the HNSW index is tuned to it.
LENGTH_PENALTY = 0.004  # per ln(chunks of the article)
LEXICAL_WEIGHT = 0.005  # per standard deviation of BM25 among the candidates


@dataclass(frozen=True)
class Hit:
    """One article found: its fused score (see Searcher) and its best section's headings."""

    article: Article
    score: float
    headings: tuple[str, ...]


@dataclass(frozen=True)
class SearchResult:
    """What one search found: the question as searched (spaces collapsed, at most
    MAX_QUESTION_CHARS), the decision, up to k hits best first, the milliseconds taken."""

    question: str
    decision: Decision
    hits: tuple[Hit, ...]
    ms: float


class SearchBackend(Protocol):
    """A searcher as its users see it: a Searcher, or a wrapper serving one."""

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        """The `k` best articles for `question` and the decision to make."""
        ...

    def prefetch(self, question: str) -> None:
        """`question` may well be searched soon: start what can start now (never blocks)."""
        ...


MAX_QUESTION_CHARS = 2000  # far past any chat question; the model reads ~512 tokens anyway


class Searcher:
    """Hybrid search over the index, one result per article, and the decision to make.

    Each article's score: its best chunk's cosine (dense), minus LENGTH_PENALTY x
    ln(its chunks), plus LEXICAL_WEIGHT x its BM25 z-score among the CANDIDATE_ARTICLES
    best by cosine. `answer` when the best article scores at least `answer_threshold`,
    `suggest` when at least `suggest_threshold`, otherwise `escalate` (hand to a human).
    The weights are arguments so that benchmarks can switch each signal off.
    """

    def __init__(self, knowledge: KnowledgeBase, index: Index, embedder: QueryEmbedder,
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
        language when a translation exists (scored by its best version). Returns a
        SearchResult with up to `k` hits, best first."""
        started = time.perf_counter()
        question = _normalized(question)
        if not _searchable(question):
            return SearchResult(question, "escalate", (), _ms(started))
        query = self.embedder.embed_query(question)
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
        """`question` may well be searched soon: embed it now, in the background (when
        the embedder is a QueryBatcher; a plain Embedder does nothing)."""
        question = _normalized(question)
        if _searchable(question):
            self.embedder.prefetch(question)

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
