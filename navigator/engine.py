"""The functional core: `Navigator.handle(event) -> list[Reply]`.

It decides everything the bot does and never talks to Telegram or a terminal. State
(the user, where they are in the flows, what was last searched, tickets) is read and
written through the store, inside one transaction per event, so a restarted process or
another process continues every conversation where it was.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from navigator.events import (
    Button,
    ButtonPressed,
    Event,
    NotifyAgents,
    Reply,
    SendText,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.flows import MAIN_FLOW, FlowSet, Option, Step
from navigator.knowledge import Article, KnowledgeBase, Section
from navigator.outbox import enqueue
from navigator.render import fit_blocks, html_to_plain, markdown_blocks
from navigator.search import Hit, SearchBackend
from navigator.store import Repository, Store
from navigator.store.models import Conversation, Ticket, User
from navigator.texts import Texts

log = logging.getLogger(__name__)

AWAITING_HANDOVER_QUESTION = "handover_question"
MAX_STEP_CHAIN = 20  # `next` chains longer than this are a loop in a flow
SUGGESTIONS = 3


def language_for(language_code: str | None, default: str) -> str:
    """The bot's language for a Telegram language code: Russian first, English second."""
    code = (language_code or "").lower()
    if code.startswith("en"):
        return "en"
    if code.startswith(("ru", "uk", "be", "kk")):
        return "ru"
    return default


def article_token(article_id: str) -> str:
    """A short stable token for an article id: callback data is limited to 64 bytes."""
    return hashlib.sha1(article_id.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Handled:
    """The replies to one event and the ids of the outbox rows that deliver them."""

    replies: list[Reply]
    outbox_ids: list[int]


@dataclass
class Turn:
    """Everything about handling one event: the state it reads and the replies it makes."""

    repo: Repository
    user: User
    conversation: Conversation
    replies: list[Reply] = field(default_factory=list)

    @property
    def language(self) -> str:
        return self.user.language

    def send(self, text: str, buttons: list[Button] | tuple[Button, ...] = ()) -> None:
        self.replies.append(SendText(self.user.id, text, tuple(buttons)))


class Navigator:
    """Decides what to do with each event. Give it the store, content and a searcher."""

    def __init__(self, store: Store, flows: FlowSet, knowledge: KnowledgeBase,
                 searcher: SearchBackend | None, texts: Texts | None = None, *,
                 default_language: str = "ru", history_size: int = 20):
        self.store = store
        self.flows = flows
        self.knowledge = knowledge
        self.searcher = searcher
        self.texts = texts or Texts()
        self.default_language = default_language
        self.history_size = history_size
        self._articles_by_token = {article_token(a.id): a.id for a in knowledge.articles}

    # Entry point ------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Reply]:
        """Decide the replies to one event; state changes are committed with them."""
        return self.handle_recorded(event).replies

    def handle_recorded(self, event: Event) -> Handled:
        """`handle`, also saying which outbox rows hold the replies: they are written
        to the outbox in the same transaction as the state change (navigator.outbox)."""
        with self.store.transaction() as repo:
            turn = self._begin(repo, event.user)
            if isinstance(event, UserCommand):
                repo.add_message(turn.user.id, "in", f"/{event.name} {event.args}".strip())
                self._on_command(turn, event)
            elif isinstance(event, ButtonPressed):
                repo.add_message(turn.user.id, "in", f"[{self._button_label(turn, event)}]")
                self._on_button(turn, event.data)
            elif isinstance(event, UserText):
                repo.add_message(turn.user.id, "in", event.text)
                self._on_text(turn, event.text.strip())
            else:  # a transport bug, not a user's fault: say so in the log, answer nothing
                log.warning("engine got an unknown event: %r", event)
            for reply in turn.replies:
                if isinstance(reply, SendText):
                    repo.add_message(turn.user.id, "out", html_to_plain(reply.text))
            return Handled(turn.replies, enqueue(repo, turn.replies))

    def _begin(self, repo: Repository, ref: UserRef) -> Turn:
        default = language_for(ref.language_code, self.default_language)
        user = repo.user(ref, default)
        return Turn(repo, user, repo.conversation(user.id))

    # Commands ---------------------------------------------------------------------------

    def _on_command(self, turn: Turn, command: UserCommand) -> None:
        name = command.name.lower()
        if name in ("start", "menu"):
            self._reset(turn.conversation)
            self._show_main_menu(turn)
        elif name == "help":
            turn.send(self.texts.say(turn.language, "help"), [self._menu_button(turn)])
        elif name == "lang":
            self._set_language(turn, command.args.strip().lower())
        elif name == "human":
            self._start_handover(turn, "question", question=None)
        elif name == "cancel":
            self._cancel(turn)
        else:
            turn.send(self.texts.say(turn.language, "unknown_command", command=command.name)
                      + "\n\n" + self.texts.say(turn.language, "help"))

    def _set_language(self, turn: Turn, language: str) -> None:
        if language not in ("ru", "en"):
            turn.send(self.texts.say(turn.language, "language_usage"))
            return
        turn.user.language = language
        turn.send(self.texts.say(language, "language_set"), [self._menu_button(turn)])

    def _cancel(self, turn: Turn) -> None:
        ticket = turn.repo.open_ticket(turn.user.id)
        conversation = turn.conversation
        if ticket is not None:
            ticket.status = "closed"
            ticket.context = {**ticket.context, "closed_by": "user", "close_reason": "withdrawn"}
            self._reset(conversation)
            turn.send(self.texts.say(turn.language, "ticket_withdrawn", ticket=ticket.id),
                      [self._menu_button(turn)])
        elif conversation.flow_id or conversation.awaiting:
            self._reset(conversation)
            turn.send(self.texts.say(turn.language, "cancelled"), [self._menu_button(turn)])
        else:
            turn.send(self.texts.say(turn.language, "nothing_to_cancel"),
                      [self._menu_button(turn)])

    # Buttons ----------------------------------------------------------------------------

    def _on_button(self, turn: Turn, data: str) -> None:
        kind, _, rest = data.partition("|")
        if kind == "o":
            self._on_option(turn, rest)
        elif kind == "menu":
            self._reset(turn.conversation)
            self._show_main_menu(turn)
        elif kind == "a":
            self._show_found_article(turn, self._articles_by_token.get(rest))
        elif kind == "fb":
            helped, _, token = rest.partition("|")
            self._on_feedback(turn, helped == "y", self._articles_by_token.get(token))
        elif kind == "h":
            question = turn.conversation.last_search.get("question")
            self._start_handover(turn, "question", question=question)
        else:
            log.info("unknown button data %r from user %s", data, turn.user.id)
            self._show_main_menu(turn, self.texts.say(turn.language, "menu_outdated"))

    def _on_option(self, turn: Turn, rest: str) -> None:
        option = self._option(rest)
        if option is None:
            # The flow changed since this button was sent: show what exists now.
            self._reset(turn.conversation)
            self._show_main_menu(turn, self.texts.say(turn.language, "menu_outdated"))
            return
        flow_id = rest.split("|")[0]
        turn.conversation.trail = [*turn.conversation.trail, option.label.get("ru")][-20:]
        if option.target == "goto":
            self._run_step(turn, flow_id, option.value)
        elif option.target == "flow":
            self._run_step(turn, option.value, self.flows.flows[option.value].start)
        elif option.target == "article":
            self._show_article(turn, option.value)
        elif option.target == "handover":
            self._start_handover(turn, option.value, question=None)

    def _option(self, rest: str) -> Option | None:
        try:
            flow_id, step_id, index = rest.split("|")
            step = self.flows.step(flow_id, step_id)
            return step.options[int(index)] if step else None
        except (ValueError, IndexError):
            return None

    def _button_label(self, turn: Turn, event: ButtonPressed) -> str:
        kind, _, rest = event.data.partition("|")
        option = self._option(rest) if kind == "o" else None
        return option.label.get(turn.language) if option else event.data

    def _on_feedback(self, turn: Turn, helped: bool, article_id: str | None) -> None:
        search = dict(turn.conversation.last_search)
        if helped:
            search["helped"] = article_id
            turn.conversation.last_search = search
            turn.send(self.texts.say(turn.language, "helped_thanks"), [self._menu_button(turn)])
            return
        shown = set(search.get("shown", []))
        remaining = [h for h in search.get("hits", []) if h["id"] not in shown]
        if remaining:
            self._offer_articles(turn, "more_suggestions", remaining)
        else:
            self._offer_human(turn, "not_helped_offer")

    # Free text --------------------------------------------------------------------------

    def _on_text(self, turn: Turn, text: str) -> None:
        ticket = turn.repo.open_ticket(turn.user.id)
        if ticket is not None:
            self._add_to_ticket(turn, ticket, text)
        elif turn.conversation.awaiting == AWAITING_HANDOVER_QUESTION:
            request_type = turn.conversation.variables.get("request_type", "question")
            self._create_ticket(turn, request_type, text)
        elif text:
            self._search(turn, text)

    def _search(self, turn: Turn, question: str) -> None:
        if self.searcher is None:
            self._search_unavailable(turn, question)
            return
        try:
            result = self.searcher.search(question, language=turn.language)
        except Exception:
            # A broken model or index must not cost the user their question: offer a human.
            log.exception("search failed for user %s", turn.user.id)
            self._search_unavailable(turn, question)
            return
        hits = [_hit_record(h) for h in result.hits]
        turn.conversation.last_search = {"question": question, "decision": result.decision,
                                         "hits": hits, "shown": []}
        if result.decision == "answer":
            self._show_answer(turn, result.hits[0])
        elif result.decision == "suggest":
            self._offer_articles(turn, "suggest_intro", hits)
        else:
            self._offer_human(turn, "escalate_offer")

    def _search_unavailable(self, turn: Turn, question: str) -> None:
        turn.conversation.last_search = {"question": question, "hits": [], "shown": []}
        self._offer_human(turn, "search_unavailable")

    # Showing content --------------------------------------------------------------------

    def _show_answer(self, turn: Turn, hit: Hit) -> None:
        """A search answer: the article's summary and its best section, with feedback."""
        article = hit.article
        self._mark_shown(turn, article.id)
        sections = [s for s in article.sections if s.headings == hit.headings] or \
            list(article.sections[:1])
        intro = [s for s in article.sections[:1] if not s.headings]
        blocks = _section_blocks(article, dict.fromkeys([*intro, *sections]))
        footer = self.texts.say(turn.language, "answer_source", title=article.title)
        turn.send(fit_blocks(blocks, limit=4000) + "\n\n" + f"<i>{footer}</i>",
                  self._feedback_buttons(turn, article))

    def _show_found_article(self, turn: Turn, article_id: str | None) -> None:
        article = self.knowledge.get(article_id, turn.language) if article_id else None
        if article is None:
            self._offer_human(turn, "article_missing")
            return
        self._mark_shown(turn, article.id)
        turn.send(self._article_html(article), self._feedback_buttons(turn, article))

    def _show_article(self, turn: Turn, article_id: str, next_step: str | None = None,
                      flow_id: str | None = None) -> None:
        """A whole article, from a menu or a flow step; then the flow's next step."""
        article = self.knowledge.get(article_id, turn.language)
        if article is None:
            log.warning("flow points at missing article %r", article_id)
            self._offer_human(turn, "article_missing")
            return
        turn.conversation.last_search = {"question": article.title, "hits": [], "shown": []}
        self._mark_shown(turn, article.id)
        if next_step and flow_id:
            turn.send(self._article_html(article))
            self._run_step(turn, flow_id, next_step)
        else:
            turn.send(self._article_html(article), self._feedback_buttons(turn, article))

    def _article_html(self, article: Article) -> str:
        return fit_blocks(_section_blocks(article, article.sections))

    def _mark_shown(self, turn: Turn, article_id: str) -> None:
        search = dict(turn.conversation.last_search)
        search["shown"] = [*search.get("shown", []), article_id]
        turn.conversation.last_search = search

    # Flows ------------------------------------------------------------------------------

    def _show_main_menu(self, turn: Turn, notice: str | None = None) -> None:
        if notice:
            turn.send(notice)
        flow = self.flows.flows.get(MAIN_FLOW)
        if flow is None:
            turn.send(self.texts.say(turn.language, "help"))
            return
        self._run_step(turn, MAIN_FLOW, flow.start)

    def _run_step(self, turn: Turn, flow_id: str, step_id: str, depth: int = 0) -> None:
        step = self.flows.step(flow_id, step_id)
        if step is None or depth > MAX_STEP_CHAIN:
            log.error("flow %s: cannot run step %r (missing or a loop)", flow_id, step_id)
            self._reset(turn.conversation)
            turn.send(self.texts.say(turn.language, "menu_outdated"), [self._menu_button(turn)])
            return
        conversation = turn.conversation
        conversation.flow_id, conversation.step_id = flow_id, step_id
        conversation.awaiting = None
        text = self._step_text(turn, step)
        if step.kind == "menu" or (step.kind == "message" and step.options):
            buttons = [Button(o.label.get(turn.language), f"o|{flow_id}|{step_id}|{i}")
                       for i, o in enumerate(step.options)]
            if (flow_id, step_id) != (MAIN_FLOW, self.flows.flows[MAIN_FLOW].start):
                buttons.append(self._menu_button(turn))
            turn.send(text, buttons)
        elif step.kind == "message":
            if step.next:
                turn.send(text)
                self._run_step(turn, flow_id, step.next, depth + 1)
            else:
                turn.send(text, [self._menu_button(turn)])
        elif step.kind == "article":
            if text:
                turn.send(text)
            self._show_article(turn, step.article or "", next_step=step.next, flow_id=flow_id)
        elif step.kind == "handover":
            self._start_handover(turn, step.request_type, question=None, prompt=text or None)

    def _step_text(self, turn: Turn, step: Step) -> str:
        if step.text is None:
            return ""
        return step.text.render(turn.language, name=turn.user.name,
                                language=turn.language, **turn.conversation.variables)

    def _reset(self, conversation: Conversation) -> None:
        conversation.flow_id = conversation.step_id = conversation.awaiting = None
        conversation.variables = {}
        conversation.trail = []

    # Hand-over --------------------------------------------------------------------------

    def _start_handover(self, turn: Turn, request_type: str, question: str | None,
                        prompt: str | None = None) -> None:
        ticket = turn.repo.open_ticket(turn.user.id)
        if ticket is not None:
            turn.send(self.texts.say(turn.language, "ticket_already_open", ticket=ticket.id))
            return
        if question:
            self._create_ticket(turn, request_type, question)
            return
        conversation = turn.conversation
        conversation.awaiting = AWAITING_HANDOVER_QUESTION
        conversation.variables = {**conversation.variables, "request_type": request_type}
        turn.send(prompt or self.texts.say(turn.language, "handover_ask_question"))

    def _create_ticket(self, turn: Turn, request_type: str, question: str) -> None:
        conversation = turn.conversation
        variables = {k: v for k, v in conversation.variables.items() if k != "request_type"}
        earlier = turn.repo.ticket_count(turn.user.id)
        messages = [{"direction": m.direction, "text": m.text}
                    for m in turn.repo.recent_messages(turn.user.id, self.history_size)]
        context: dict[str, Any] = {
            "user": {"id": turn.user.id, "name": turn.user.name,
                     "username": turn.user.username, "language": turn.language},
            "trail": list(conversation.trail),
            "tried": conversation.last_search.get("hits", []),
            "variables": variables,
            "messages": messages,
        }
        ticket = turn.repo.create_ticket(turn.user.id, request_type, question, context)
        self._reset(conversation)
        conversation.last_search = {}
        turn.send(self.texts.say(turn.language, "handover_done", ticket=ticket.id))
        card = self.texts.render("agent_card.html", ticket=ticket, user=context["user"],
                                 earlier_tickets=earlier, trail=context["trail"],
                                 tried=context["tried"], variables=variables, messages=messages)
        turn.replies.append(NotifyAgents(ticket.id, card))

    def _add_to_ticket(self, turn: Turn, ticket: Ticket, text: str) -> None:
        turn.replies.append(NotifyAgents(ticket.id, self.texts.render(
            "agent_message.html", ticket=ticket, user=turn.user, text=text)))
        turn.send(self.texts.say(turn.language, "ticket_message_added", ticket=ticket.id))

    # Buttons ----------------------------------------------------------------------------

    def _menu_button(self, turn: Turn) -> Button:
        return Button(self.texts.say(turn.language, "button_menu"), "menu")

    def _human_button(self, turn: Turn) -> Button:
        return Button(self.texts.say(turn.language, "button_human"), "h")

    def _feedback_buttons(self, turn: Turn, article: Article) -> list[Button]:
        token = article_token(article.id)
        return [Button(self.texts.say(turn.language, "button_helped"), f"fb|y|{token}"),
                Button(self.texts.say(turn.language, "button_not_helped"), f"fb|n|{token}")]

    def _offer_articles(self, turn: Turn, message: str, hits: list[dict[str, Any]]) -> None:
        """Say `message` with a button per article (the first few) and one for a human."""
        buttons = [Button(h["title"], f"a|{article_token(h['id'])}") for h in hits[:SUGGESTIONS]]
        turn.send(self.texts.say(turn.language, message), [*buttons, self._human_button(turn)])

    def _offer_human(self, turn: Turn, message: str) -> None:
        """Say `message` with the choice of a human or the main menu."""
        turn.send(self.texts.say(turn.language, message),
                  [self._human_button(turn), self._menu_button(turn)])


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
