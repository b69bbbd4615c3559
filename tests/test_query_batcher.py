"""Questions are embedded on the model's own thread, those waiting together in one call;
each question costs the model once, and nothing is cached between questions."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from navigator.events import ButtonPressed, UserRef, UserText
from navigator.search import BackgroundSearcher, QueryBatcher, Searcher


class FakeEmbedder:
    """Vectors that name their text; the first call can be held to let others queue."""

    def __init__(self, hold_first: bool = False):
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def embed_queries(self, texts):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.release.wait(5)
        if any(t == "boom" for t in texts):
            raise RuntimeError("the model broke")
        return np.array([[float(len(t)), float(ord(t[0]))] for t in texts], dtype=np.float32)


@pytest.fixture
def batcher():
    started = []

    def make(embedder, **options):
        started.append(QueryBatcher(embedder, **options).start())
        return started[-1]

    yield make
    for running in started:
        running.embedder.release.set()
        running.stop()


def test_questions_waiting_together_go_through_the_model_in_one_call(batcher):
    embedder = FakeEmbedder(hold_first=True)
    queries = batcher(embedder)
    queries.prefetch("first")
    while not embedder.calls:
        time.sleep(0.001)
    for text in ("как создать кошелёк", "where to buy MTL", "вступить"):
        queries.prefetch(text)
    embedder.release.set()
    assert queries.embed_query("where to buy MTL").tolist() == [16.0, ord("w")]
    assert queries.embed_query("first").tolist() == [5.0, ord("f")]
    assert embedder.calls == [["first"], ["как создать кошелёк", "where to buy MTL", "вступить"]]


def test_a_question_nobody_announced_is_embedded_at_once_ahead_of_the_queue(batcher):
    embedder = FakeEmbedder(hold_first=True)
    queries = batcher(embedder)
    queries.prefetch("first")
    while not embedder.calls:
        time.sleep(0.001)
    queries.prefetch("later")
    result = []
    asking = threading.Thread(target=lambda: result.append(queries.embed_query("urgent")))
    asking.start()
    time.sleep(0.05)
    embedder.release.set()
    asking.join(5)
    assert result[0].tolist() == [6.0, ord("u")]
    assert embedder.calls[1][0] == "urgent"


def test_the_same_question_twice_is_embedded_twice_never_served_from_a_cache(batcher):
    embedder = FakeEmbedder()
    queries = batcher(embedder)
    queries.prefetch("как создать кошелёк")
    queries.prefetch("как создать кошелёк")
    queries.embed_query("как создать кошелёк")
    queries.embed_query("как создать кошелёк")
    queries.embed_query("как создать кошелёк")  # a third time: nothing prefetched is left
    assert sum(len(call) for call in embedder.calls) == 3


def test_prefetches_nobody_asks_for_are_forgotten(batcher):
    queries = batcher(FakeEmbedder(), keep_s=0.05)
    queries.prefetch("Анна")  # the answer to a flow's question: never searched
    time.sleep(0.1)
    queries.prefetch("как создать кошелёк")
    assert list(queries._waiting) == ["как создать кошелёк"]


def test_a_batcher_not_running_embeds_when_asked_and_ignores_prefetches():
    embedder = FakeEmbedder()
    queries = QueryBatcher(embedder)
    queries.prefetch("как создать кошелёк")  # not started: nobody would embed it
    assert queries.embed_query("как создать кошелёк").tolist() == [19.0, ord("к")]
    queries.start()
    queries.stop()
    queries.prefetch("вступить")
    assert queries.embed_query("where to buy MTL").tolist() == [16.0, ord("w")]
    assert embedder.calls == [["как создать кошелёк"], ["where to buy MTL"]]
    assert queries.batches == [], "both embedded on the asking thread"


def test_a_failing_model_fails_the_search_that_waits_for_it(batcher):
    queries = batcher(FakeEmbedder())
    queries.prefetch("boom")
    with pytest.raises(RuntimeError, match="the model broke"):
        queries.embed_query("boom")
    assert queries.embed_query("fine").tolist() == [4.0, ord("f")], "the thread goes on"


def test_the_engine_announces_user_texts_to_the_searcher(make_navigator):
    navigator = make_navigator()
    announced = []
    navigator.searcher = type("Searcher", (), {"prefetch": lambda self, q: announced.append(q),
                                               "search": None})()
    anna = UserRef(7, "Анна", None, "ru")
    navigator.anticipate(UserText(anna, "  как создать кошелёк "))
    navigator.anticipate(ButtonPressed(anna, "menu"))
    assert announced == ["как создать кошелёк"]


def test_a_searcher_over_a_batcher_finds_the_same_as_over_the_plain_embedder(
        shipped_searcher, embedder):
    question = "как открыть линию доверия в LOBSTR"
    plain = shipped_searcher.search(question)
    queries = QueryBatcher(embedder).start()
    searcher = Searcher(shipped_searcher.knowledge, shipped_searcher.index, queries,
                        shipped_searcher.answer_threshold, shipped_searcher.suggest_threshold,
                        lexical=shipped_searcher.lexical)
    try:
        searcher.prefetch(f"  {question} ")
        batched = searcher.search(question)
    finally:
        queries.stop()
    assert queries.batches == [1], "the search took the prefetched vector"
    assert [h.article.id for h in batched.hits] == [h.article.id for h in plain.hits]
    assert [h.score for h in batched.hits] == pytest.approx([h.score for h in plain.hits])
    assert batched.decision == plain.decision


def test_a_searcher_still_loading_lets_prefetches_pass_without_waiting():
    loaded, announced = threading.Event(), []
    ready = type("Searcher", (), {"prefetch": lambda self, q: announced.append(q)})()
    loading = BackgroundSearcher(lambda: loaded.wait(5) and ready)
    loading.prefetch("как создать кошелёк")  # returns at once, the model is not there yet
    loaded.set()
    loading.wait()
    loading.prefetch("где купить MTL")
    assert announced == ["где купить MTL"]
