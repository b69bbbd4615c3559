"""The functional core: `Navigator.handle(event) -> list[Reply]`.

It decides everything the bot does and never talks to Telegram or a terminal. State
(the user, where they are in the flows, what was last searched, tickets) is read and
written through the store, inside one transaction per event, so a restarted process or
another process continues every conversation where it was.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from navigator import desk, erasure, flood
from navigator.answers import InvalidAnswer, looks_like_question, parse_answer
from navigator.content import Content
from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentText,
    AnonymousAgentMessage,
    Button,
    ButtonPressed,
    DeleteMessage,
    DeliveryFailed,
    Event,
    Redacted,
    Reply,
    SendText,
    Tick,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.flows import MAIN_FLOW, FlowSet, Option, Step, expression, template
from navigator.inbox import begin_handling, mark_about
from navigator.knowledge import Article, KnowledgeBase, Section
from navigator.outbox import enqueue
from navigator.render import fit_blocks, html_to_plain, markdown_blocks
from navigator.report import survey
from navigator.search import Hit, SearchBackend
from navigator.secret_guard import Placeholders, placeholders_in, redact_event
from navigator.store import Repository, Store
from navigator.store.models import as_utc
from navigator.telegram_html import TEXT_LIMIT, fit_replies, visible_length
from navigator.texts import Texts
from navigator.turn import Turn

log = logging.getLogger(__name__)

ASK, SEARCH, HANDOVER_QUESTION = "ask", "search", "handover_question"
MAX_STEP_CHAIN = 50  # automatic steps in a row; more means a loop `check` should have caught
SUGGESTIONS = 3
# Buttons about a ticket (its rating), /forgetme's and a survey's: they work however
# long the user was away.
ANYTIME_BUTTONS = ("rate", "unsolved", "nocomment", "forget", survey.SURVEY_BUTTON)
FREE_TEXT_ANSWERS = ("text", "regex")  # any words can be the answer: never read as a question
SECURITY_ARTICLE = "stellar-security"  # offered to a user who sent a secret key


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
    duplicate: bool = False  # the update was handled before: nothing was decided


class Navigator:
    """Decides what to do with each event. Give it the store, content and a searcher.

    `content` (optional) keeps flows and articles fresh from disk; `clock` gives "now"
    (tests pass a fake one); a user away longer than `resume_after` in the middle of a
    flow is asked whether to continue. With `digest_hour` (local to `timezone`) the
    agents' chat gets a daily digest; None (the default here; Settings says 9): none.
    On weekday `digest_report_day` (0 Monday; None, the default here: never) the digest
    is followed by the report of the week before, as a file.
    A user sending more than `flood_per_minute` messages a minute is not answered one by
    one (navigator.flood; None: no limit); texts older than `keep_messages_days` are
    erased once a day (navigator.erasure; None: kept).
    """

    def __init__(self, store: Store, flows: FlowSet, knowledge: KnowledgeBase,
                 searcher: SearchBackend | None, texts: Texts | None = None, *,
                 default_language: str = "ru", history_size: int = 20,
                 content: Content | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 resume_after: timedelta = timedelta(hours=24),
                 remind_untaken: timedelta = timedelta(minutes=15),
                 remind_waiting: timedelta = timedelta(minutes=60),
                 digest_hour: int | None = None, timezone: str = "Europe/Podgorica",
                 digest_report_day: int | None = None,
                 flood_per_minute: int | None = 20, keep_messages_days: int | None = 365):
        self.store = store
        self.content = content or Content(flows, knowledge)
        self.searcher = searcher
        self.texts = texts or Texts()
        self.default_language = default_language
        self.history_size = history_size
        self.clock = clock
        self.resume_after = resume_after
        self.remind_untaken, self.remind_waiting = remind_untaken, remind_waiting
        self.digest_hour, self.zone = digest_hour, ZoneInfo(timezone)
        self.digest_report_day = digest_report_day
        self.flood_per_minute, self.keep_messages_days = flood_per_minute, keep_messages_days
        self._tokens: tuple[int, dict[str, str]] = (0, {})
        self._placeholders: dict[str, Placeholders] = {}

    @property
    def flows(self) -> FlowSet:
        return self.content.flows

    @property
    def knowledge(self) -> KnowledgeBase:
        return self.content.knowledge

    def placeholders(self, language: str) -> Placeholders:
        """What a secret is replaced with in `language` (navigator.secret_guard)."""
        if language not in self._placeholders:
            self._placeholders[language] = placeholders_in(self.texts.say, language)
        return self._placeholders[language]

    def _article_id(self, token: str) -> str | None:
        if self._tokens[0] != id(self.knowledge):
            self._tokens = (id(self.knowledge),
                            {article_token(a.id): a.id for a in self.knowledge.articles})
        return self._tokens[1].get(token)

    # Entry point ------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Reply]:
        """Decide the replies to one event; state changes are committed with them."""
        return self.handle_recorded(event).replies

    def anticipate(self, event: Event) -> None:
        """A hint, before `event` waits for its turn: start what does not depend on
        state, so it is ready (or batched with others) when `handle` gets to it. Today:
        a user's text is embedded for search in the background. Cheap, never blocks,
        never changes what is decided; the transport may skip it."""
        if isinstance(event, UserText) and self.searcher is not None:
            self.searcher.prefetch(event.text.strip())

    def handle_recorded(self, event: Event, update_id: int | None = None) -> Handled:
        """`handle`, also saying which outbox rows hold the replies: they are written
        to the outbox in the same transaction as the state change (navigator.outbox).

        `update_id` names the stored update the event came from (navigator.inbox): it
        is marked handled in the same transaction, and an update handled before (a
        redelivery, a replay after a crash) decides nothing again (`duplicate`).
        """
        self.content.refresh()
        with self.store.transaction() as repo:
            if update_id is not None and not begin_handling(repo, update_id):
                return Handled([], [], duplicate=True)
            # Every text fits Telegram's limits before it is queued.
            replies = fit_replies(self._decide(repo, event))
            if update_id is not None and (about := _user_concerned(repo, event)) is not None:
                mark_about(repo, update_id, about)
            return Handled(replies, enqueue(repo, replies))

    def _decide(self, repo: Repository, event: Event) -> list[Reply]:
        if isinstance(event, AgentText | AgentCommand | AgentButtonPressed |
                      AnonymousAgentMessage):
            # The transports take secrets out first; this catches any they missed.
            event = redact_event(event, self.placeholders(AGENTS_LANGUAGE))
            return desk.AgentDesk(repo, self.texts, self.clock(), self.searcher,
                                  zone=self.zone).handle(event)
        if isinstance(event, DeliveryFailed):
            return desk.delivery_failed(repo, self.texts, self.clock(), event)
        if isinstance(event, Tick):
            now = self.clock()
            return [*desk.daily_digest(repo, self.texts, now, self.digest_hour, self.zone,
                                      self.digest_report_day),
                    *desk.reminders(repo, self.texts, now, self.remind_untaken,
                                    self.remind_waiting),
                    *desk.report_folds(repo, self.texts, now),
                    *erasure.daily_retention(repo, now, self.zone, self.keep_messages_days)]
        if not isinstance(event, UserText | UserCommand | ButtonPressed):
            log.warning("engine got an unknown event: %r", event)  # a transport bug
            return []
        turn = self._begin(repo, event.user)
        event = redact_event(event, self.placeholders(turn.language))
        # A request to erase one's data is answered however fast the user writes.
        over_limit = not _about_forgetting(event) and \
            flood.over_limit(repo, turn.user.id, turn.now, self.flood_per_minute)
        away = self._away_for(turn)
        if isinstance(event, UserCommand):
            said = f"/{event.name} {event.args}".strip()
        elif isinstance(event, ButtonPressed):
            said = f"[{self._button_label(turn, event)}]"
        else:
            said = event.text
        message = repo.add_message(turn.user.id, "in", said, turn.now)
        redacted = getattr(event, "redacted", None)
        if redacted:  # even in a flood: the key is compromised now, not later
            self._warn_about_secret(turn, redacted)
        if over_limit:
            flood.hold(turn, self.texts, message, self.flood_per_minute or 0,
                       relayable=isinstance(event, UserText))
        elif isinstance(event, UserCommand):
            self._on_command(turn, event)
        elif isinstance(event, ButtonPressed):
            if away and event.data not in ("r", "menu") and \
                    event.data.partition("|")[0] not in ANYTIME_BUTTONS:
                self._offer_resume(turn)
            else:
                self._on_button(turn, event.data)
        elif away:
            self._back_after_a_while(turn, event.text.strip(), redacted is not None)
        else:
            self._on_text(turn, event.text.strip(), redacted is not None)
        turn.conversation.updated_at = turn.now
        for reply in turn.replies:
            if isinstance(reply, SendText):
                repo.add_message(turn.user.id, "out", html_to_plain(reply.text), turn.now)
        return turn.replies

    def _begin(self, repo: Repository, ref: UserRef) -> Turn:
        default = language_for(ref.language_code, self.default_language)
        user = repo.user(ref, default)
        return Turn(repo, user, repo.conversation(user.id), self.clock())

    def _away_for(self, turn: Turn) -> bool:
        """True if the user left a dialogue midway longer than `resume_after` ago. Menus
        of the main flow are plain navigation: pressing one days later just works."""
        conversation = turn.conversation
        last = conversation.updated_at
        mid_dialogue = conversation.awaiting is not None or \
            conversation.flow_id not in (None, MAIN_FLOW)
        if last is None or not mid_dialogue:
            return False
        return turn.now - as_utc(last) > self.resume_after

    # Commands ---------------------------------------------------------------------------

    def _on_command(self, turn: Turn, command: UserCommand) -> None:
        name = command.name.lower()
        desk.forget_comment(turn)  # a command is never a rating's comment
        survey.forget_comment(turn)
        if name in ("start", "menu"):
            self._reset(turn)
            self._show_main_menu(turn)
        elif name == "help":
            turn.send(self.texts.say(turn.language, "help"), [self._menu_button(turn)])
        elif name == "lang":
            self._set_language(turn, command.args.strip().lower())
        elif name == "human":
            self._start_handover(turn, "question")
        elif name == "cancel":
            self._cancel(turn)
        elif name == "status":
            desk.status(turn, self.texts)
        elif name == "survey":
            survey.opt(turn, self.texts, command.args)
        elif name == "forgetme":
            erasure.ask(turn, self.texts)
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
            desk.withdraw(turn, ticket)
            self._reset(turn)
            turn.send(self.texts.say(turn.language, "ticket_withdrawn", ticket=ticket.id),
                      [self._menu_button(turn)])
        elif conversation.flow_id or conversation.awaiting:
            self._reset(turn)
            turn.send(self.texts.say(turn.language, "cancelled"), [self._menu_button(turn)])
        else:
            turn.send(self.texts.say(turn.language, "nothing_to_cancel"),
                      [self._menu_button(turn)])

    # Buttons ----------------------------------------------------------------------------

    def _on_button(self, turn: Turn, data: str) -> None:
        kind, _, rest = data.partition("|")
        if kind not in ("rate", "nocomment"):
            desk.forget_comment(turn)  # the user moved on: no comment on the rating
        if kind != survey.SURVEY_BUTTON:
            survey.forget_comment(turn)
        if kind == "o":
            self._on_option(turn, rest)
        elif kind == "c":
            self._on_choice(turn, rest)
        elif kind == "menu":
            self._reset(turn)
            self._show_main_menu(turn)
        elif kind == "r":
            self._resume(turn)
        elif kind == "a":
            self._show_found_article(turn, self._article_id(rest))
        elif kind == "fb":
            helped, _, token = rest.partition("|")
            self._on_feedback(turn, helped == "y", self._article_id(token))
        elif kind == "rate":
            number, _, rating = rest.partition("|")
            # isdecimal, not isdigit: "²" is a digit that int() refuses.
            if number.isdecimal() and rating.isdecimal():
                desk.rate(turn, self.texts, int(number), int(rating))
        elif kind == "unsolved":
            if rest.isdecimal():
                desk.not_solved(turn, self.texts, int(rest))
        elif kind == "nocomment":
            desk.skip_comment(turn, self.texts)
        elif kind == survey.SURVEY_BUTTON:
            survey.on_button(turn, self.texts, rest)
        elif kind == "forget":
            if rest == "yes":
                erasure.confirm(turn, self.texts)
            else:  # back to where they were, if they were somewhere
                erasure.cancel(turn, self.texts, [self._resume_button(turn)]
                               if self._in_flow(turn) else [])
        elif kind == "h":
            self._start_handover(turn, "question",
                                 question=turn.conversation.last_search.get("question"),
                                 reason=rest if rest in desk.OPENING_REASONS else desk.ASKED)
        else:
            log.info("unknown button data %r from user %s", data, turn.user.id)
            self._show_main_menu(turn, self.texts.say(turn.language, "menu_outdated"))

    def _on_option(self, turn: Turn, rest: str) -> None:
        flow_id, step_id, option = self._option(rest)
        if option is None:
            # The flow changed since this button was sent: show what exists now.
            self._reset(turn)
            self._show_main_menu(turn, self.texts.say(turn.language, "menu_outdated"))
            return
        if self._is_stale(turn, flow_id, step_id):
            self._reshow(turn)
            return
        turn.conversation.flow_id, turn.conversation.step_id = flow_id, step_id
        turn.conversation.trail = [*turn.conversation.trail, option.label.get("ru")][-20:]
        if option.target == "goto":
            self._run_step(turn, flow_id, option.value)
        elif option.target == "flow":
            self._run_step(turn, option.value, self.flows.flows[option.value].start)
        elif option.target == "article":
            self._show_article(turn, option.value)
            if self._in_flow(turn):
                turn.add_buttons(self._resume_button(turn))
        elif option.target == "handover":
            self._start_handover(turn, option.value, reason=desk.ASKED
                                 if option.value == desk.QUESTION else desk.FLOW)

    def _option(self, rest: str) -> tuple[str, str, Option | None]:
        try:
            flow_id, step_id, index = rest.split("|")
            step = self.flows.step(flow_id, step_id)
            return flow_id, step_id, step.options[int(index)] if step else None
        except (ValueError, IndexError):
            return "", "", None

    def _on_choice(self, turn: Turn, rest: str) -> None:
        """A button answering an `ask` step (a choice, or yes/no)."""
        try:
            flow_id, step_id, index = rest.split("|")
            number = int(index)
        except ValueError:
            flow_id, step_id, number = "", "", -1
        step = self.flows.step(flow_id, step_id)
        conversation = turn.conversation
        if step is None or conversation.awaiting != ASK or \
                (conversation.flow_id, conversation.step_id) != (flow_id, step_id):
            self._reshow(turn)  # an old question's button: never answer twice
            return
        if step.ask_type == "yesno" and number in (0, 1):
            self._accept_answer(turn, step, number == 0)
        elif 0 <= number < len(step.choices):
            self._accept_answer(turn, step, step.choices[number].value)
        else:
            self._reshow(turn)

    def _is_stale(self, turn: Turn, flow_id: str, step_id: str) -> bool:
        """A menu button from an older message while the user is in the middle of a
        question: acting on it would abandon (or double) what they are doing."""
        conversation = turn.conversation
        return conversation.awaiting in (ASK, SEARCH, HANDOVER_QUESTION) and \
            (conversation.flow_id, conversation.step_id) != (flow_id, step_id)

    def _reshow(self, turn: Turn) -> None:
        conversation = turn.conversation
        if self.flows.step(conversation.flow_id, conversation.step_id) is None:
            self._reset(turn)
            self._show_main_menu(turn, self.texts.say(turn.language, "menu_outdated"))
            return
        turn.send(self.texts.say(turn.language, "stale_button"))
        self._run_step(turn, conversation.flow_id or "", conversation.step_id or "")

    def _resume(self, turn: Turn) -> None:
        if self.flows.step(turn.conversation.flow_id, turn.conversation.step_id) is None:
            self._reset(turn)
            self._show_main_menu(turn)
        else:
            self._run_step(turn, turn.conversation.flow_id or "",
                           turn.conversation.step_id or "")

    def _back_after_a_while(self, turn: Turn, text: str, secret: bool = False) -> None:
        """Text from someone who left a flow days ago is not taken as the answer to a
        days-old question: a question gets answered, then they choose where to go on."""
        turn.conversation.awaiting = None
        if turn.repo.open_ticket(turn.user.id) is not None:
            self._on_text(turn, text, secret)
            return
        if looks_like_question(text) and not secret:
            self._search(turn, text)
        self._offer_resume(turn)

    def _offer_resume(self, turn: Turn) -> None:
        turn.send(self.texts.say(turn.language, "resume_offer", title=self._flow_title(turn)),
                  [Button(self.texts.say(turn.language, "button_continue"), "r"),
                   self._menu_button(turn)])

    def _button_label(self, turn: Turn, event: ButtonPressed) -> str:
        kind, _, rest = event.data.partition("|")
        option = self._option(rest)[2] if kind == "o" else None
        return option.label.get(turn.language) if option else event.data

    def _on_feedback(self, turn: Turn, helped: bool, article_id: str | None) -> None:
        search = dict(turn.conversation.last_search)
        turn.repo.log_self_service(turn.user.id, "helped" if helped else "not_helped",
                                   turn.now, question=search.get("question"),
                                   article_id=article_id)
        if helped:
            search["helped"] = article_id
            turn.conversation.last_search = search
            turn.send(self.texts.say(turn.language, "helped_thanks"), [self._menu_button(turn)])
            return
        shown = set(search.get("shown", []))
        remaining = [h for h in search.get("hits", []) if h["id"] not in shown]
        if remaining:
            self._offer_articles(turn, "more_suggestions", remaining, desk.NOT_HELPED)
        else:
            self._offer_human(turn, "not_helped_offer", desk.NOT_HELPED)

    # Free text --------------------------------------------------------------------------

    def _on_text(self, turn: Turn, text: str, secret: bool = False) -> None:
        """Free text. With `secret`, a secret was taken out of it (the user was warned):
        an open request still hears it (the agents see the placeholder, so they know a
        key was sent, never the key), a question about to go to the agents goes if
        there is more to it than the secret, and what the user was asked is asked again;
        nothing is searched."""
        if desk.take_comment(turn, self.texts, text) or \
                survey.take_comment(turn, self.texts, text):
            return
        conversation = turn.conversation
        ticket = turn.repo.open_ticket(turn.user.id)
        step = self.flows.step(conversation.flow_id, conversation.step_id)
        resolved = turn.repo.latest_ticket(turn.user.id, desk.RESOLVED) \
            if ticket is None and conversation.awaiting is None else None
        if ticket is not None:
            desk.add_to_ticket(turn, self.texts, ticket, text,
                               self._suggestions(turn, text, secret))
        elif resolved is not None:  # before the rating: the same matter (see desk)
            desk.reopen_by_user(turn, self.texts, resolved, text,
                                self._suggestions(turn, text, secret))
        elif conversation.awaiting == HANDOVER_QUESTION:
            if secret and self.placeholders(turn.language).only_placeholders(text):
                turn.send(self.texts.say(turn.language, "handover_ask_question"),
                          [self._exit_button(turn)])
                return
            request_type = conversation.variables.get("_request_type", "question")
            self._open_ticket(turn, request_type, text,
                              conversation.variables.get("_handover_reason"))
        elif secret:
            if conversation.awaiting in (ASK, SEARCH) and step is not None:
                self._run_step(turn, conversation.flow_id or "", step.id)  # asked again
            elif self._in_flow(turn):
                turn.add_buttons(self._resume_button(turn))
            else:
                turn.add_buttons(self._menu_button(turn))
        elif conversation.awaiting == ASK and step is not None:
            try:
                value = parse_answer(step, text, turn.language)
            except InvalidAnswer as problem:
                if step.ask_type in FREE_TEXT_ANSWERS or not looks_like_question(text, step):
                    self._retry(turn, step, problem.reason)
                    return
                # Not an answer but a question: search it and offer the way back.
                conversation.awaiting = None
                self._search(turn, text)
                turn.add_buttons(self._resume_button(turn))
                return
            self._accept_answer(turn, step, value)
        elif conversation.awaiting == SEARCH and step is not None:
            conversation.awaiting = None
            self._search(turn, text)
            self._continue(turn, conversation.flow_id or "", step)
        elif text:
            self._search(turn, text)
            if self._in_flow(turn) and conversation.awaiting is None:
                turn.add_buttons(self._resume_button(turn))

    def _suggestions(self, turn: Turn, text: str, secret: bool = False
                     ) -> list[dict[str, Any]]:
        """What the bot would have suggested for a question, for the agents' eyes only
        (nothing for a message a secret was taken out of: the placeholder is no question)."""
        if self.searcher is None or secret or not looks_like_question(text):
            return []
        try:
            result = self.searcher.search(text, language=turn.language)
        except Exception:
            log.exception("search failed for user %s", turn.user.id)
            return []
        if result.decision == "escalate":
            return []
        return [_hit_record(h) for h in result.hits[:SUGGESTIONS]]

    def _warn_about_secret(self, turn: Turn, redacted: Redacted) -> None:
        """The user sent a secret key or a recovery phrase (the transport took it out):
        their message is deleted from the chat, and they are told, at once, to treat the
        key as compromised and what to do, with the article on keeping keys safe."""
        if redacted.message_id is not None:
            turn.replies.append(DeleteMessage(redacted.message_id, turn.user.id))
        buttons = []
        if self.knowledge.get(SECURITY_ARTICLE, turn.language) is not None:
            buttons.append(Button(self.texts.say(turn.language, "button_security_article"),
                                  f"a|{article_token(SECURITY_ARTICLE)}"))
        turn.send(self.texts.say(turn.language, "secret_leaked", kinds=redacted.kinds,
                                 deleted=redacted.message_id is not None), buttons)

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
        turn.repo.log_self_service(turn.user.id, "search", turn.now, decision=result.decision,
                                   question=question, article_id=hits[0]["id"] if hits else None,
                                   score=hits[0]["score"] if hits else None)
        if result.decision == "answer":
            self._show_answer(turn, result.hits[0])
        elif result.decision == "suggest":
            self._offer_articles(turn, "suggest_intro", hits, desk.NO_ANSWER)
        else:
            self._offer_human(turn, "escalate_offer", desk.NO_ANSWER)

    def _search_unavailable(self, turn: Turn, question: str) -> None:
        turn.conversation.last_search = {"question": question, "hits": [], "shown": []}
        self._offer_human(turn, "search_unavailable", desk.NO_ANSWER)

    # Showing content --------------------------------------------------------------------

    def _show_answer(self, turn: Turn, hit: Hit) -> None:
        """A search answer: the article's summary and its best section, with feedback."""
        article = hit.article
        self._mark_shown(turn, article.id)
        sections = [s for s in article.sections if s.headings == hit.headings] or \
            list(article.sections[:1])
        intro = [s for s in article.sections[:1] if not s.headings]
        blocks = _section_blocks(article, dict.fromkeys([*intro, *sections]))
        footer = f"<i>{self.texts.say(turn.language, 'answer_source', title=article.title)}</i>"
        room = TEXT_LIMIT - visible_length(footer) - 2
        turn.send(fit_blocks(blocks, limit=room) + "\n\n" + footer,
                  self._feedback_buttons(turn, article))

    def _show_found_article(self, turn: Turn, article_id: str | None) -> None:
        article = self.knowledge.get(article_id, turn.language) if article_id else None
        if article is None:
            self._offer_human(turn, "article_missing", desk.NO_ANSWER)
            return
        turn.repo.log_self_service(turn.user.id, "chosen", turn.now, article_id=article.id,
                                   question=turn.conversation.last_search.get("question"))
        self._mark_shown(turn, article.id)
        turn.send(self._article_html(article), self._feedback_buttons(turn, article))

    def _show_article(self, turn: Turn, article_id: str, feedback: bool = True) -> bool:
        """A whole article, from a menu or a flow step. False if it does not exist."""
        article = self.knowledge.get(article_id, turn.language)
        if article is None:
            log.warning("flow points at missing article %r", article_id)
            self._offer_human(turn, "article_missing", desk.NO_ANSWER)
            return False
        turn.conversation.last_search = {"question": article.title, "hits": [], "shown": []}
        self._mark_shown(turn, article.id)
        turn.send(self._article_html(article),
                  self._feedback_buttons(turn, article) if feedback else ())
        return True

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

    def _in_flow(self, turn: Turn) -> bool:
        """Somewhere in a flow other than the main menu itself."""
        conversation = turn.conversation
        main = self.flows.flows.get(MAIN_FLOW)
        return conversation.flow_id is not None and \
            (conversation.flow_id, conversation.step_id) != (MAIN_FLOW, main.start if main else "")

    def _run_step(self, turn: Turn, flow_id: str, step_id: str, depth: int = 0) -> None:
        """Run a step, and the automatic steps after it, until one waits for the user."""
        step = self.flows.step(flow_id, step_id)
        if step is None or depth > MAX_STEP_CHAIN:
            log.error("flow %s: cannot run step %r (missing, or a loop)", flow_id, step_id)
            self._reset(turn)
            turn.send(self.texts.say(turn.language, "menu_outdated"), [self._menu_button(turn)])
            return
        conversation = turn.conversation
        conversation.flow_id, conversation.step_id = flow_id, step_id
        conversation.awaiting = None
        text = self._step_text(turn, step.text)
        links = [Button(o.label.get(turn.language), "", url=o.value) for o in step.links]
        if step.kind == "menu" or (step.kind == "message" and step.options):
            buttons = [*links, *(Button(o.label.get(turn.language), f"o|{flow_id}|{step_id}|{i}")
                                 for i, o in enumerate(step.options))]
            if self._in_flow(turn):
                buttons.append(self._menu_button(turn))
            turn.send(text, buttons, step.image, collapse=_screen(flow_id, step_id))
        elif step.kind == "message":
            turn.send(text, links, step.image)
            self._continue(turn, flow_id, step, depth)
        elif step.kind == "ask":
            conversation.awaiting = ASK
            turn.send(text, [*self._answer_buttons(turn, flow_id, step),
                             self._exit_button(turn)], collapse=_screen(flow_id, step_id))
        elif step.kind == "branch":
            self._branch(turn, flow_id, step, depth)
        elif step.kind == "set":
            context = self._template_context(turn)
            variables = dict(conversation.variables)
            for name, value in step.assignments:
                variables[name] = template(value).render(**context)
            conversation.variables = variables
            self._continue(turn, flow_id, step, depth)
        elif step.kind == "article":
            if text:
                turn.send(text)
            if self._show_article(turn, step.article or "", feedback=not step.next):
                self._continue(turn, flow_id, step, depth)
        elif step.kind == "search":
            conversation.awaiting = SEARCH
            turn.send(text or self.texts.say(turn.language, "search_prompt"),
                      [self._exit_button(turn)], collapse=_screen(flow_id, step_id))
        elif step.kind == "handover":
            self._start_handover(turn, step.request_type, step=step, reason=desk.FLOW)
        elif step.kind in ("goto", "call"):
            target = self.flows.flows[step.flow or ""]
            if step.kind == "call":
                conversation.stack = [*conversation.stack, {"flow": flow_id, "next": step.next}]
            self._run_step(turn, target.id, step.target_step or target.start, depth + 1)
        elif step.kind == "end":
            if text:
                turn.send(text)
            self._finish_flow(turn, depth)

    def _continue(self, turn: Turn, flow_id: str, step: Step, depth: int = 0) -> None:
        if step.next:
            self._run_step(turn, flow_id, step.next, depth + 1)
        else:
            self._finish_flow(turn, depth)

    def _finish_flow(self, turn: Turn, depth: int = 0) -> None:
        """The flow is over: return to the flow that called it, or leave the user with a
        way back to the main menu."""
        conversation = turn.conversation
        if conversation.stack:
            *rest, frame = conversation.stack
            conversation.stack = rest
            caller = self.flows.flows.get(frame["flow"])
            if caller and frame.get("next") in caller.steps:
                self._run_step(turn, caller.id, frame["next"], depth + 1)
            else:
                self._finish_flow(turn, depth + 1)
            return
        conversation.flow_id = conversation.step_id = conversation.awaiting = None
        last = turn.last_message()
        if last is None:
            turn.send(self.texts.say(turn.language, "flow_done"), [self._menu_button(turn)])
        elif not any(b.data for b in last.buttons):
            turn.add_buttons(self._menu_button(turn))

    def _branch(self, turn: Turn, flow_id: str, step: Step, depth: int) -> None:
        context = self._template_context(turn)
        for case in step.cases:
            try:
                matched = bool(expression(case.when)(**context))
            except Exception:  # a condition on a missing or odd value is simply false
                log.warning("flow %s step %s: condition %r failed", flow_id, step.id, case.when,
                            exc_info=True)
                matched = False
            if matched:
                self._run_step(turn, flow_id, case.goto, depth + 1)
                return
        if step.otherwise:
            self._run_step(turn, flow_id, step.otherwise, depth + 1)
        else:
            self._finish_flow(turn, depth)

    def _accept_answer(self, turn: Turn, step: Step, value: Any) -> None:
        conversation = turn.conversation
        conversation.variables = {**conversation.variables, step.var or "answer": value}
        conversation.awaiting = None
        self._continue(turn, conversation.flow_id or "", step)

    def _retry(self, turn: Turn, step: Step, reason: str) -> None:
        """Say what is wrong with the answer, and offer the ways out."""
        message = self._step_text(turn, step.retry) if step.retry else self.texts.say(
            turn.language, reason, minimum=step.minimum, maximum=step.maximum)
        turn.send(message + "\n" + self.texts.say(turn.language, "answer_way_out"),
                  [*self._answer_buttons(turn, turn.conversation.flow_id or "", step),
                   self._human_button(turn), self._exit_button(turn)])

    def _answer_buttons(self, turn: Turn, flow_id: str, step: Step) -> list[Button]:
        if step.ask_type == "yesno":
            labels = [self.texts.say(turn.language, "button_yes"),
                      self.texts.say(turn.language, "button_no")]
        elif step.ask_type == "choice":
            labels = [c.label.get(turn.language) for c in step.choices]
        else:
            return []
        return [Button(label, f"c|{flow_id}|{step.id}|{i}") for i, label in enumerate(labels)]

    def _template_context(self, turn: Turn) -> dict[str, Any]:
        return {**desk.public_variables(turn.conversation.variables),
                "name": turn.user.name, "language": turn.language,
                "has_request": lambda request_type: desk.has_request(turn, request_type)}

    def _step_text(self, turn: Turn, text: Any) -> str:
        return text.render(turn.language, **self._template_context(turn)) if text else ""

    def _flow_title(self, turn: Turn) -> str:
        flow = self.flows.flows.get(turn.conversation.flow_id or "")
        return flow.title.get(turn.language) if flow else ""

    def _reset(self, turn: Turn) -> None:
        conversation = turn.conversation
        conversation.flow_id = conversation.step_id = conversation.awaiting = None
        conversation.variables = {}
        conversation.trail = []
        conversation.stack = []

    # Hand-over --------------------------------------------------------------------------

    def _start_handover(self, turn: Turn, request_type: str, question: str | None = None,
                        step: Step | None = None, reason: str = desk.ASKED) -> None:
        """Open a ticket, or ask for its question first. `reason`: why (desk.OPENING_REASONS)."""
        ticket = turn.repo.open_ticket(turn.user.id)
        if ticket is not None:
            turn.send(self.texts.say(turn.language, "ticket_already_open", ticket=ticket.id))
            return
        if turn.user.ignored:  # an agent's /ignore: nothing more reaches the agents
            turn.send(self.texts.say(turn.language, "handover_unavailable"),
                      [self._menu_button(turn)])
            return
        if step is not None:
            earlier = desk.earlier_request(turn, request_type, step.once, step.unique_by)
            if earlier is not None:
                message = self._step_text(turn, step.duplicate) if step.duplicate else \
                    self.texts.say(turn.language, "duplicate_request", ticket=earlier.id)
                turn.send(message, [self._human_button(turn)])
                self._finish_flow(turn)
                return
            if step.question:
                self._open_ticket(turn, request_type, html_to_plain(
                    self._step_text(turn, step.question)), reason)
                return
        if question:
            self._open_ticket(turn, request_type, question, reason)
            return
        conversation = turn.conversation
        conversation.awaiting = HANDOVER_QUESTION
        conversation.variables = {**conversation.variables, "_request_type": request_type,
                                  "_handover_reason": reason}
        prompt = self._step_text(turn, step.text) if step else ""
        turn.send(prompt or self.texts.say(turn.language, "handover_ask_question"),
                  [self._exit_button(turn)])

    def _open_ticket(self, turn: Turn, request_type: str, question: str,
                     reason: str | None) -> None:
        # A typed request is named after the flow that makes it ("Вступление в Ассоциацию"),
        # so the user can later be told which request was done or refused.
        flow = self.flows.flows.get(turn.conversation.flow_id or "")
        title = dict(flow.title.texts) if flow and request_type != desk.QUESTION else None
        desk.open_ticket(turn, self.texts, request_type, question, self.history_size, title,
                         reason)
        self._reset(turn)
        turn.conversation.last_search = {}

    # Buttons ----------------------------------------------------------------------------

    def _menu_button(self, turn: Turn) -> Button:
        return Button(self.texts.say(turn.language, "button_menu"), "menu")

    def _exit_button(self, turn: Turn) -> Button:
        return Button(self.texts.say(turn.language, "button_exit"), "menu")

    def _human_button(self, turn: Turn, reason: str = desk.ASKED) -> Button:
        """The button carries why a person is wanted (desk.OPENING_REASONS): the report
        counts hand-overs by it."""
        return Button(self.texts.say(turn.language, "button_human"), f"h|{reason}")

    def _resume_button(self, turn: Turn) -> Button:
        """Back to where the user is in a flow (a submenu of the main flow is just "back")."""
        if turn.conversation.flow_id == MAIN_FLOW:
            return Button(self.texts.say(turn.language, "button_back"), "r")
        return Button(self.texts.say(turn.language, "button_resume",
                                     title=self._flow_title(turn)), "r")

    def _feedback_buttons(self, turn: Turn, article: Article) -> list[Button]:
        token = article_token(article.id)
        return [Button(self.texts.say(turn.language, "button_helped"), f"fb|y|{token}"),
                Button(self.texts.say(turn.language, "button_not_helped"), f"fb|n|{token}")]

    def _offer_articles(self, turn: Turn, message: str, hits: list[dict[str, Any]],
                        reason: str) -> None:
        """Say `message` with a button per article (the first few) and one for a human
        (`reason`: why the bot offers one)."""
        buttons = [Button(h["title"], f"a|{article_token(h['id'])}") for h in hits[:SUGGESTIONS]]
        turn.send(self.texts.say(turn.language, message),
                  [*buttons, self._human_button(turn, reason)])

    def _offer_human(self, turn: Turn, message: str, reason: str) -> None:
        """Say `message` with the choice of a human (`reason`: why) or the main menu."""
        turn.send(self.texts.say(turn.language, message),
                  [self._human_button(turn, reason), self._menu_button(turn)])


def _about_forgetting(event: UserText | UserCommand | ButtonPressed) -> bool:
    """/forgetme or its buttons."""
    if isinstance(event, UserCommand):
        return event.name.lower() == "forgetme"
    return isinstance(event, ButtonPressed) and event.data.startswith("forget|")


def _screen(flow_id: str, step_id: str) -> str:
    """The collapse key of a step's message: shown again back to back, the newest copy
    is enough (navigator.outbox)."""
    return f"step|{flow_id}|{step_id}"


def _user_concerned(repo: Repository, event: Event) -> int | None:
    """The user whose ticket an agent's update is about (its stored copy may quote
    them: /forgetme erases it too); None for anything else."""
    if isinstance(event, AgentButtonPressed):  # "action|ticket..."
        number = event.data.partition("|")[2].partition("|")[0]
        ticket_id = int(number) if number.isdecimal() else None
    elif isinstance(event, AgentText | AgentCommand | AnonymousAgentMessage):
        ticket_id = event.ticket_id
    else:
        return None
    ticket = repo.ticket(ticket_id)
    return ticket.user_id if ticket is not None else None


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
