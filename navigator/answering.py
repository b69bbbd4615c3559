"""Answering from the knowledge base: search a question, show the answer or the
articles that may hold it (or offer a human), and take the user's "helped?" feedback.

What was searched and shown is kept in the conversation's `last_search`, so "not
helped" offers what was not shown yet, and a hand-over carries the question. Each
search, «помогло»/«не помогло» and article chosen is also logged for the report
(`self_service`, erased with the user's data); a person offered carries why (no answer,
not helped), so the report counts hand-overs by reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from html import escape
from typing import Any

from navigator import buttons
from navigator.desk.states import NO_ANSWER, NOT_HELPED
from navigator.events import Button
from navigator.flows.answers import looks_like_question
from navigator.knowledge import Article, Section
from navigator.render import fit_blocks, markdown_blocks
from navigator.search import Hit
from navigator.telegram_html import TEXT_LIMIT, visible_length
from navigator.turn import Turn

log = logging.getLogger(__name__)

SUGGESTIONS = 3  # articles offered when the search is unsure


def search(turn: Turn, question: str) -> None:
    """Answer `question` with the article found, the few that may hold the answer, or
    the offer of a human (the searcher decides which: navigator.search)."""
    if turn.searcher is None:
        _search_unavailable(turn, question)
        return
    try:
        result = turn.searcher.search(question, language=turn.language)
    except Exception:
        # A broken model or index must not cost the user their question: offer a human.
        log.exception("search failed for user %s", turn.user.id)
        _search_unavailable(turn, question)
        return
    hits = [_hit_record(h) for h in result.hits]
    turn.conversation.last_search = {"question": question, "decision": result.decision,
                                     "hits": hits, "shown": []}
    turn.repo.log_self_service(turn.user.id, "search", turn.now, decision=result.decision,
                               question=question, article_id=hits[0]["id"] if hits else None,
                               score=hits[0]["score"] if hits else None)
    if result.decision == "answer":
        show_answer(turn, result.hits[0])
    elif result.decision == "suggest":
        offer_articles(turn, "suggest_intro", hits, NO_ANSWER)
    else:
        offer_human(turn, "escalate_offer", NO_ANSWER)


def _search_unavailable(turn: Turn, question: str) -> None:
    turn.conversation.last_search = {"question": question, "hits": [], "shown": []}
    offer_human(turn, "search_unavailable", NO_ANSWER)


def suggestions(turn: Turn, text: str, secret: bool = False) -> list[dict[str, Any]]:
    """What the bot would have suggested for a question, for the agents' eyes only
    (nothing for a message a secret was taken out of: the placeholder is no question)."""
    if turn.searcher is None or secret or not looks_like_question(text):
        return []
    try:
        result = turn.searcher.search(text, language=turn.language)
    except Exception:
        log.exception("search failed for user %s", turn.user.id)
        return []
    if result.decision == "escalate":
        return []
    return [_hit_record(h) for h in result.hits[:SUGGESTIONS]]


def on_feedback(turn: Turn, helped: bool, article_id: str | None) -> None:
    """"Helped" is noted; "not helped" offers the articles not shown yet, or a human."""
    search = dict(turn.conversation.last_search)
    turn.repo.log_self_service(turn.user.id, "helped" if helped else "not_helped", turn.now,
                               question=search.get("question"), article_id=article_id)
    if helped:
        search["helped"] = article_id
        turn.conversation.last_search = search
        turn.send(turn.say("helped_thanks"), [buttons.menu(turn)])
        return
    shown = set(search.get("shown", []))
    remaining = [h for h in search.get("hits", []) if h["id"] not in shown]
    if remaining:
        offer_articles(turn, "more_suggestions", remaining, NOT_HELPED)
    else:
        offer_human(turn, "not_helped_offer", NOT_HELPED)


def show_answer(turn: Turn, hit: Hit) -> None:
    """A search answer: the article's summary and its best section, with feedback."""
    article = hit.article
    _mark_shown(turn, article.id)
    sections = [s for s in article.sections if s.headings == hit.headings] or \
        list(article.sections[:1])
    intro = [s for s in article.sections[:1] if not s.headings]
    blocks = _section_blocks(article, dict.fromkeys([*intro, *sections]))
    footer = f"<i>{turn.say('answer_source', title=article.title)}</i>"
    room = TEXT_LIMIT - visible_length(footer) - 2
    turn.send(fit_blocks(blocks, limit=room) + "\n\n" + footer,
              _feedback_buttons(turn, article))


def show_found_article(turn: Turn, article_id: str | None) -> None:
    """A whole article the user chose among the suggestions, with feedback."""
    article = turn.knowledge.get(article_id, turn.language) if article_id else None
    if article is None:
        offer_human(turn, "article_missing", NO_ANSWER)
        return
    turn.repo.log_self_service(turn.user.id, "chosen", turn.now, article_id=article.id,
                               question=turn.conversation.last_search.get("question"))
    _mark_shown(turn, article.id)
    turn.send(article_html(article), _feedback_buttons(turn, article))


def show_article(turn: Turn, article_id: str, feedback: bool = True) -> bool:
    """A whole article, from a menu or a flow step. False if it does not exist."""
    article = turn.knowledge.get(article_id, turn.language)
    if article is None:
        log.warning("flow points at missing article %r", article_id)
        offer_human(turn, "article_missing", NO_ANSWER)
        return False
    turn.conversation.last_search = {"question": article.title, "hits": [], "shown": []}
    _mark_shown(turn, article.id)
    turn.send(article_html(article),
              _feedback_buttons(turn, article) if feedback else ())
    return True


def article_html(article: Article) -> str:
    """The whole article as Telegram HTML, cut to fit one message."""
    return fit_blocks(_section_blocks(article, article.sections))


def _mark_shown(turn: Turn, article_id: str) -> None:
    search = dict(turn.conversation.last_search)
    search["shown"] = [*search.get("shown", []), article_id]
    turn.conversation.last_search = search


def _feedback_buttons(turn: Turn, article: Article) -> list[Button]:
    return [Button(turn.say("button_helped"), buttons.feedback(True, article.id)),
            Button(turn.say("button_not_helped"), buttons.feedback(False, article.id))]


def offer_articles(turn: Turn, message: str, hits: list[dict[str, Any]], why: str) -> None:
    """Say `message` with a button per article (the first few) and one for a human
    (`why`: why the bot offers one)."""
    offered = [Button(h["title"], buttons.article(h["id"])) for h in hits[:SUGGESTIONS]]
    turn.send(turn.say(message), [*offered, buttons.human(turn, why)])


def offer_human(turn: Turn, message: str, why: str) -> None:
    """Say `message` with the choice of a human (`why`: why) or the main menu."""
    turn.send(turn.say(message), [buttons.human(turn, why), buttons.menu(turn)])


def _hit_record(hit: Hit) -> dict[str, Any]:
    return {"id": hit.article.id, "path": hit.article.path, "title": hit.article.title,
            "score": round(hit.score, 4)}


def _section_blocks(article: Article, sections: Iterable[Section]) -> list[str]:
    """The article's title, then each section's heading and text, as Telegram HTML blocks."""
    blocks = [f"<b>{escape(article.title, quote=False)}</b>"]
    for section in sections:
        if section.headings:
            blocks.append(f"<b>{escape(section.headings[-1], quote=False)}</b>")
        blocks.extend(markdown_blocks(section.text))
    return blocks
