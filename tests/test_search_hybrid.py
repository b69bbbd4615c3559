"""Hybrid ranking, the index type, and a running searcher that picks up a rebuilt index."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from navigator.app import open_searcher
from navigator.knowledge import load_knowledge
from navigator.search import (
    LexicalIndex,
    ReloadingSearcher,
    Searcher,
    Tokenizer,
    build_index,
    faiss_index,
    load_index,
)
from navigator.search import index as search_index
from navigator.settings import Settings


def test_words_are_stemmed_in_russian_and_english_and_yo_is_e():
    tokenize = Tokenizer()
    assert tokenize("Кошельки, кошелёк") == tokenize("кошельков кошелек")
    assert tokenize("Creating wallets") == tokenize("create wallet")
    assert tokenize("trustline в LOBSTR") == ["trustlin", "lobstr"]  # one-letter words drop
    assert tokenize("😀 !!") == []


def test_bm25_scores_every_article_and_prefers_the_one_with_the_rare_words(shipped_knowledge):
    lexical = LexicalIndex(shipped_knowledge.articles)
    scores = lexical.scores("линия доверия trustline")
    assert scores.shape == (len(shipped_knowledge.articles),)
    assert lexical.paths[int(np.argmax(scores))].endswith("stellar-trustline.md")
    assert not lexical.scores("😀").any()


def test_each_signal_can_be_switched_off_for_measurement(shipped_knowledge, shipped_index_dir,
                                                         embedder):
    index = load_index(shipped_index_dir)
    dense = Searcher(shipped_knowledge, index, embedder, 1, 1, lexical_weight=0.0,
                     length_penalty=0.0)
    hybrid = Searcher(shipped_knowledge, index, embedder, 1, 1)
    assert dense.lexical is None and hybrid.lexical is not None
    question = "что такое линия доверия"
    plain, fused = dense.search(question, k=3), hybrid.search(question, k=3)
    assert plain.hits[0].article.path == fused.hits[0].article.path
    assert plain.hits[0].score != fused.hits[0].score  # the fused score is what decides


@pytest.mark.parametrize("question", [
    "как открыть trustline в LOBSTR?",  # mixed scripts
    "КАК СОЗДАТЬ КОШЕЛЁК 🙏🙏🙏",  # shouting, with emoji
    "kak sozdat koshelek stellar",  # transliterated
])
def test_messy_questions_still_find_wallet_articles(shipped_searcher, question):
    result = shipped_searcher.search(question)
    assert result.hits and result.hits[0].article.id.startswith("stellar-")


def test_the_best_sections_heading_comes_with_the_hit(shipped_searcher):
    hit = shipped_searcher.search("как добавить линию доверия к токену").hits[0]
    article_headings = {s.headings for s in hit.article.sections} | {()}
    assert hit.headings in article_headings


def test_small_bases_get_an_exact_index_and_large_ones_hnsw(monkeypatch):
    vectors = np.eye(8, dtype=np.float32)
    assert isinstance(faiss_index(vectors, 8), faiss.IndexFlatIP)
    monkeypatch.setattr(search_index, "HNSW_FROM_CHUNKS", 4)
    index = faiss_index(vectors, 8)
    assert isinstance(index, faiss.IndexHNSWFlat) and index.ntotal == 8
    scores, rows = index.search(vectors[3:4], 1)
    assert rows[0][0] == 3 and scores[0][0] == pytest.approx(1.0)


# Reloading ---------------------------------------------------------------------------


def _article(root: Path, name: str, title: str, body: str) -> None:
    (root / f"{name}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")


@pytest.fixture
def small_base(tmp_path: Path, embedder):
    """Two tiny articles and their index; returns (knowledge dir, index dir, open())."""
    root, directory = tmp_path / "knowledge", tmp_path / "index"
    root.mkdir()
    _article(root, "wallet", "Кошелёк", "Как создать кошелёк Stellar: установите LOBSTR.")
    _article(root, "court", "Суд", "Третейский суд разбирает споры участников.")
    build_index(load_knowledge(root), embedder, directory)

    def make(every: float = 0.0) -> ReloadingSearcher:
        def load() -> Searcher:
            return Searcher(load_knowledge(root), load_index(directory, embedder.name),
                            embedder, 0.9, 0.8)
        return ReloadingSearcher(load(), directory, load, every)

    return root, directory, make


def test_a_running_searcher_picks_up_a_rebuilt_index(small_base, embedder):
    root, directory, make = small_base
    searcher = make()
    before = searcher.current
    _article(root, "pizza", "Пицца", "Рецепт пиццы маргарита: тесто, томаты, моцарелла.")
    build_index(load_knowledge(root), embedder, directory)
    searcher.check(wait=True)
    assert searcher.current is not before and searcher.reloads == 1
    assert searcher.search("рецепт пиццы").hits[0].article.path == "pizza.md"


def test_the_index_is_looked_at_no_more_often_than_asked(small_base, embedder):
    root, directory, make = small_base
    now = [0.0]
    searcher = make(every=30)
    searcher._clock = lambda: now[0]
    searcher._next_check = 30
    _article(root, "pizza", "Пицца", "Рецепт пиццы.")
    build_index(load_knowledge(root), embedder, directory)
    searcher.search("пицца")
    assert searcher.reloads == 0, "too early to look"
    now[0] = 31
    searcher.search("пицца")  # starts the reload in the background
    searcher.check(wait=True)
    assert searcher.reloads == 1


def test_a_broken_rebuild_keeps_the_old_index_serving_and_says_why(small_base, caplog):
    _, directory, make = small_base
    searcher = make()
    serving = searcher.current
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest["chunks"] = manifest["chunks"][:1]  # vectors.npy no longer matches
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="navigator.search.serving"):
        searcher.check(wait=True)
    assert searcher.current is serving
    assert "previous one keeps serving" in caplog.text and "inconsistent" in caplog.text
    assert searcher.search("как создать кошелёк").hits[0].article.path == "wallet.md"


def test_open_searcher_reloads_and_refreshes_the_shared_knowledge(small_base, embedder,
                                                                  tmp_path):
    root, directory, _ = small_base
    settings = Settings(knowledge_dir=root, index_dir=directory, index_reload_seconds=5)
    knowledge = load_knowledge(root)
    searcher = open_searcher(settings, knowledge)
    assert isinstance(searcher, ReloadingSearcher)
    assert searcher.answer_threshold == settings.answer_threshold
    _article(root, "pizza", "Пицца", "Рецепт пиццы маргарита.")
    build_index(load_knowledge(root), embedder, directory)
    searcher.check(wait=True)
    assert knowledge.by_path("pizza.md") is not None, "the engine's knowledge sees the new one"
    no_reload = open_searcher(settings.model_copy(update={"index_reload_seconds": 0}),
                              load_knowledge(root))
    assert isinstance(no_reload, Searcher)
    shutil.rmtree(directory)
