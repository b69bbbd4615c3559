"""Builds the pieces from Settings: content, searcher, store, engine. No decisions here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from navigator.content import Content
from navigator.flows import FlowSet, load_flows
from navigator.handling import Navigator
from navigator.knowledge import KnowledgeBase, load_knowledge
from navigator.search import (
    BuildReport,
    Embedder,
    IndexUnavailable,
    QueryBatcher,
    QueryEmbedder,
    ReloadingSearcher,
    SearchBackend,
    Searcher,
    build_index,
    index_is_fresh,
    load_index,
)
from navigator.settings import Settings
from navigator.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def load_content(settings: Settings) -> tuple[FlowSet, KnowledgeBase]:
    """Flows must be valid (ContentError otherwise); broken articles are logged and skipped."""
    flows = load_flows(settings.flows_dir)
    knowledge = load_knowledge(settings.knowledge_dir)
    for problem in knowledge.problems:
        log.warning("%s", problem)
    return flows, knowledge


def refresh_index(knowledge: KnowledgeBase, embedder: Embedder, directory: Path,
                  on_progress: Progress | None = None) -> BuildReport | None:
    """Rebuild the index when it is missing, stale or from another model; else None."""
    if index_is_fresh(directory, knowledge, embedder.name):
        return None
    return build_index(knowledge, embedder, directory, on_progress)


def open_searcher(settings: Settings, knowledge: KnowledgeBase,
                  on_rebuild: Callable[[str], None] | None = None,
                  batch_queries: bool = False) -> Searcher | ReloadingSearcher:
    """Load the model, make sure the index matches the knowledge base, return a searcher.

    With `settings.index_reload_seconds` > 0 the searcher picks up a rebuilt index (from
    `navigator index`) without a restart, and refreshes `knowledge` in place with it.
    With `batch_queries` questions are embedded on a model thread of their own, those
    waiting together in one batch (a started QueryBatcher, shared by every reload).
    """
    embedder = Embedder(settings.model, settings.model_cache_dir)
    directory = settings.effective_index_dir
    if not index_is_fresh(directory, knowledge, embedder.name):
        try:
            load_index(directory, embedder.name)
            reason = "the knowledge base changed"
        except IndexUnavailable as exc:
            reason = exc.reason
        if on_rebuild:
            on_rebuild(reason)
        build_index(knowledge, embedder, directory)
    if settings.bfloat16_queries:
        checked = embedder.use_bfloat16_queries()
        log.info("questions embedded in %s (float32 %.1f ms, bfloat16 %.1f ms a question, "
                 "vectors agree to cosine %.5f)",
                 "bfloat16" if checked["used"] else "float32", checked.get("float32_ms", 0),
                 checked.get("bfloat16_ms", 0), checked.get("min_cosine", 0))
    queries: QueryEmbedder = QueryBatcher(embedder).start() if batch_queries else embedder
    searcher = Searcher(knowledge, load_index(directory, embedder.name), queries,
                        settings.answer_threshold, settings.suggest_threshold)
    if not settings.index_reload_seconds:
        return searcher

    def reload() -> Searcher:
        # Knowledge and index are read together: the rebuild was made from these files.
        fresh = load_knowledge(settings.knowledge_dir)
        index = load_index(directory, embedder.name)
        if not fresh.articles and knowledge.articles:
            raise IndexUnavailable(f"no articles in {settings.knowledge_dir}", "no articles")
        replacement = Searcher(fresh, index, queries, settings.answer_threshold,
                               settings.suggest_threshold)
        # The engine looks articles up by id in the same KnowledgeBase object.
        knowledge.articles, knowledge.problems = fresh.articles, fresh.problems
        replacement.knowledge = knowledge
        return replacement

    return ReloadingSearcher(searcher, directory, reload, settings.index_reload_seconds)


def build_navigator(settings: Settings, flows: FlowSet, knowledge: KnowledgeBase,
                    searcher: SearchBackend | None) -> Navigator:
    store = Store(settings.effective_database_url)
    content = Content(flows, knowledge, flows_dir=settings.flows_dir)
    return Navigator(store, flows, knowledge, searcher, default_language=settings.default_language,
                     history_size=settings.history_size, content=content,
                     resume_after=timedelta(hours=settings.resume_after_hours),
                     remind_untaken=timedelta(minutes=settings.remind_untaken_minutes),
                     remind_waiting=timedelta(minutes=settings.remind_waiting_minutes),
                     digest_hour=settings.digest_hour, timezone=settings.timezone,
                     digest_report_day=settings.digest_report_day,
                     flood_per_minute=settings.flood_messages_per_minute or None,
                     keep_messages_days=settings.keep_messages_days or None)
