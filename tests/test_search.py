"""The search index and its decisions on the shipped knowledge base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from navigator import evaluation
from navigator.knowledge import load_knowledge
from navigator.search import (
    Embedder,
    IndexUnavailable,
    Searcher,
    build_index,
    index_is_fresh,
    load_index,
)
from navigator.settings import Settings
from tests.conftest import SHIPPED_KNOWLEDGE


def test_the_index_holds_normalised_vectors_and_a_manifest(shipped_index_dir, embedder):
    index = load_index(shipped_index_dir, embedder.name)
    manifest = json.loads((shipped_index_dir / "manifest.json").read_text())
    assert manifest["model"] == "multilingual-e5-small" and manifest["dimension"] == 384
    assert len(index.chunks) == index.vectors.shape[0] > 100
    norms = (index.vectors ** 2).sum(axis=1)
    assert norms.min() > 0.999 and norms.max() < 1.001


def test_a_rebuild_embeds_only_the_edited_article(tmp_path, embedder):
    knowledge = tmp_path / "knowledge"
    (knowledge / "ru").mkdir(parents=True)
    # A few articles are enough to see what is reused; the whole base took ~100 s of a
    # loaded test run to embed twice over.
    for name in ("stellar-trustline.md", "stellar-wallet-create.md", "stellar-security.md"):
        shutil.copy(SHIPPED_KNOWLEDGE / "ru" / name, knowledge / "ru" / name)
    first = build_index(load_knowledge(knowledge), embedder, tmp_path / "index")
    assert first.reused == 0 and first.embedded > 0
    article = knowledge / "ru" / "stellar-trustline.md"
    article.write_text(article.read_text(encoding="utf-8") + "\n## Новый раздел\nТекст.\n",
                       encoding="utf-8")
    base = load_knowledge(knowledge)
    assert not index_is_fresh(tmp_path / "index", base, embedder.name)
    second = build_index(base, embedder, tmp_path / "index")
    assert second.embedded == 1, "only the new section is embedded"
    assert second.reused == second.chunks - 1
    assert index_is_fresh(tmp_path / "index", base, embedder.name)


def test_an_index_of_another_model_asks_for_a_rebuild(shipped_index_dir, tmp_path):
    shutil.copytree(shipped_index_dir, tmp_path / "index")
    with pytest.raises(IndexUnavailable, match=r"built with model 'multilingual-e5-small'.*"
                                               r"rebuild"):
        load_index(tmp_path / "index", "some-other-model")
    with pytest.raises(IndexUnavailable, match=r"no index in .*navigator index"):
        load_index(tmp_path / "nothing-here", "multilingual-e5-small")


def test_each_article_appears_once_in_the_users_language(shipped_searcher: Searcher):
    result = shipped_searcher.search("how do I create a wallet", language="en")
    ids = [hit.article.id for hit in result.hits]
    assert len(ids) == len(set(ids))
    assert result.hits[0].article.id == "stellar-wallet-create"
    assert result.hits[0].article.lang == "en"


@pytest.mark.parametrize("question", ["", "😀😀", "?!", " " * 10])
def test_questions_without_words_escalate_without_searching(shipped_searcher, question):
    result = shipped_searcher.search(question)
    assert (result.decision, result.hits) == ("escalate", ())


def test_a_huge_question_is_searched_not_crashed_on(shipped_searcher):
    result = shipped_searcher.search("как создать кошелёк " * 2000)
    assert result.hits[0].article.id == "stellar-wallet-create"


def test_the_shipped_questions_do_not_regress(shipped_searcher):
    """Floors a little under what the hybrid ranking measured at the Settings thresholds
    on the 276 shipped questions (88 articles in ru and en: top-1 0.881, top-5 0.996,
    out-of-scope escalated 0.951, in-scope kept 0.864; on the first 148 questions and
    50 articles it had been 0.85, 1.0, 0.857, 0.90): a drop below them is a regression.
    Confident mistakes (a direct answer with the wrong article) measured 4.7% of all
    questions; issue 16 allows at most 5%."""
    questions = evaluation.load_questions(SHIPPED_KNOWLEDGE / "questions.jsonl")
    assert len(questions) >= 60 and sum(not q.in_scope for q in questions) >= 10
    report = evaluation.report(evaluation.run(shipped_searcher, questions),
                               shipped_searcher.answer_threshold,
                               shipped_searcher.suggest_threshold)
    assert report.top1 >= 0.80
    assert report.top5 >= 0.97
    assert report.out_escalated >= 0.85
    assert report.in_not_escalated >= 0.85
    assert report.confidently_wrong <= 0.05


@pytest.mark.load
def test_questions_in_bfloat16_get_the_same_decisions_and_passages_stay_float32(
        shipped_knowledge, shipped_index_dir):
    embedder = Embedder(Settings().model, Settings().model_cache_dir)  # not the shared one
    settings = Settings()
    questions = evaluation.load_questions(SHIPPED_KNOWLEDGE / "questions.jsonl")
    texts = [q.text for q in questions]
    exact, passage = embedder.embed_queries(texts), embedder.embed_passages(texts[:3])

    thresholds = (settings.answer_threshold, settings.suggest_threshold)

    def decisions() -> list[tuple[str, str | None, float, float]]:
        searcher = Searcher(shipped_knowledge, load_index(shipped_index_dir, embedder.name),
                            embedder, *thresholds)
        results = [searcher.search(text) for text in texts]
        return [(r.decision, r.hits[0].article.id, r.hits[0].score,
                 r.hits[1].score if len(r.hits) > 1 else 0.0) for r in results]

    before = decisions()
    # Used whatever this CPU's speed, to check the vectors.
    checked = embedder.use_bfloat16_queries(max_time_ratio=float("inf"))
    assert checked["used"] and checked["min_cosine"] >= 0.9999
    fast = embedder.embed_queries(texts)
    assert fast.dtype == np.float32 and np.allclose((fast ** 2).sum(axis=1), 1, atol=1e-4)
    assert (fast * exact).sum(axis=1).min() >= 0.9999
    after = decisions()
    # bfloat16 moves a fused score by up to ~5e-4 (measured on the 276 shipped questions);
    # with that many questions some always sit closer than that to a threshold or to
    # their runner-up, where either side is as right. Everywhere else: the same decision,
    # the same first article, and scores within that margin.
    margin = 1e-3
    clear = [i for i, (_, _, top, second) in enumerate(before)
             if min(abs(top - cut) for cut in thresholds) > margin and top - second > margin]
    assert len(clear) >= 0.85 * len(texts), "the margin leaves most questions checked"
    assert [after[i][:2] for i in clear] == [before[i][:2] for i in clear], \
        "every question clear of the thresholds: the same decision, the same first article"
    assert max(abs(a[2] - b[2]) for a, b in zip(after, before, strict=True)) < margin
    assert np.array_equal(embedder.embed_passages(texts[:3]), passage), "the index is float32"


def test_bfloat16_is_not_used_when_it_disagrees_or_is_slower():
    embedder = Embedder(Settings().model, Settings().model_cache_dir)
    assert not embedder.use_bfloat16_queries(min_cosine=1.01)["used"]
    assert not embedder.use_bfloat16_queries(max_time_ratio=0.0)["used"]
    assert embedder.query_encoder is None


def test_a_confident_mistake_is_a_direct_answer_with_the_wrong_article_or_to_no_question():
    def outcome(in_scope: bool, rank: int | None, score: float) -> evaluation.Outcome:
        paths = frozenset({"ru/stellar-dex.md"}) if in_scope else frozenset()
        return evaluation.Outcome(evaluation.LabelledQuestion("вопрос", paths, in_scope),
                                  rank, score, 1.0)

    outcomes = [
        outcome(True, 1, 0.90),    # answered with the right article
        outcome(True, 2, 0.90),    # answered, but the right article came second: wrong
        outcome(True, 3, 0.86),    # only suggested: not a confident answer
        outcome(False, None, 0.90),  # an out-of-scope question answered anyway: wrong
        outcome(False, None, 0.50),  # escalated, as it should be
    ]
    report = evaluation.report(outcomes, answer_threshold=0.864, suggest_threshold=0.856)
    assert report.confidently_wrong == 0.4
    assert report.as_dict()["confidently_wrong"] == 0.4, "in `navigator eval --json` too"


def test_the_recommended_answer_threshold_keeps_confident_mistakes_within_five_percent():
    """Twenty questions. Answering everything (cut 0.80) is 90% precise, but its two
    mistakes are 10% of all questions; at 0.865 precision falls to 9 of 11; at 0.88 it
    is 9 of 10 and the one mistake is 5% of all: the lowest cut that keeps both bars,
    placed halfway between 0.865 and 0.88 so that neither question sits on it."""
    def outcome(rank: int | None, score: float) -> evaluation.Outcome:
        return evaluation.Outcome(evaluation.LabelledQuestion(
            "вопрос", frozenset({"ru/stellar-dex.md"}), True), rank, score, 1.0)

    outcomes = ([outcome(1, 0.95)] * 9 + [outcome(2, 0.88)]    # 10 at >= 0.87: 1 wrong
                + [outcome(2, 0.865)]                           # one more wrong at 0.865
                + [outcome(1, 0.80)] * 9)                       # below any answer cut
    recommended = evaluation.recommend_thresholds(outcomes)
    assert recommended["answer_threshold"] == 0.8725
    cut = [o for o in outcomes if o.top_score >= recommended["answer_threshold"]]
    assert sum(o.rank != 1 for o in cut) / len(outcomes) <= evaluation.MAX_CONFIDENTLY_WRONG


def test_a_question_answered_by_the_translation_of_its_article_counts_as_right(
        shipped_searcher):
    """The bot shows each article once, in the user's language: an English question
    labelled with the Russian article is right when the English twin comes first."""
    question = evaluation.LabelledQuestion("how do I create a wallet",
                                           frozenset({"ru/stellar-wallet-create.md"}), True)
    [outcome] = evaluation.run(shipped_searcher, [question])
    assert outcome.rank == 1


def test_a_bad_line_in_a_questions_file_names_its_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"q": "ok", "doc": null, "kind": "out"}\n{"q": broken}\n',
                    encoding="utf-8")
    with pytest.raises(Exception, match=r"q.jsonl:2: bad labelled question"):
        evaluation.load_questions(path)


def test_heavy_typos_and_a_latin_letter_still_rank_the_article_first(shipped_searcher):
    """Too mangled to answer outright (it may escalate), yet the agents' card shows the
    right article as the bot's first guess."""
    result = shipped_searcher.search("што такое линия давeрия в стелларе")
    assert result.hits[0].article.id == "stellar-trustline"
