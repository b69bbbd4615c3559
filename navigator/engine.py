"""The functional core: `Engine.decide(repo, event) -> list[Reply]`.

It decides everything the bot does and never talks to Telegram or a terminal: it routes
each event (commands, buttons, text) to the piece that decides it, each a function of a
turn (navigator.turn): flows (navigator.flows.runner), answering, handover, the desk.
State (the user, where they are in the flows, what was last searched, tickets) is read
and written through the repository, inside the event's transaction (navigator.handling),
so a restarted process or another process continues every conversation where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from navigator import answering, buttons, desk, erasure, flood, handover
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
from navigator.flows import MAIN_FLOW, FlowSet, runner
from navigator.flows.answers import looks_like_question
from navigator.handover import HANDOVER_QUESTION
from navigator.knowledge import KnowledgeBase
from navigator.languages import LANGUAGES, language_for
from navigator.render import html_to_plain
from navigator.report import survey
from navigator.search import SearchBackend
from navigator.secret_guard import Placeholders, placeholders_in, redact_event
from navigator.store import Repository
from navigator.store.models import as_utc
from navigator.texts import Texts
from navigator.turn import Turn

log = logging.getLogger(__name__)

SECURITY_ARTICLE = "stellar-security"  # offered to a user who sent a secret key


class Engine:
    """Decides what to do with each event. Give it the content and a searcher.

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

    def __init__(self, flows: FlowSet, knowledge: KnowledgeBase,
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
                            {buttons.article_token(a.id): a.id for a in self.knowledge.articles})
        return self._tokens[1].get(token)

    # Entry points -----------------------------------------------------------------------

    def anticipate(self, event: Event) -> None:
        """A hint, before `event` waits for its turn: start what does not depend on
        state, so it is ready (or batched with others) when `decide` gets to it. Today:
        a user's text is embedded for search in the background. Cheap, never blocks,
        never changes what is decided; the transport may skip it."""
        if isinstance(event, UserText) and self.searcher is not None:
            self.searcher.prefetch(event.text.strip())

    def decide(self, repo: Repository, event: Event) -> list[Reply]:
        """The replies to one event; the state it changes is changed through `repo`
        (navigator.handling commits both together)."""
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
            if away and event.data not in (buttons.RESUME, buttons.MENU) and \
                    buttons.kind_of(event.data)[0] not in buttons.ANYTIME:
                runner.offer_resume(turn)
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
        return Turn(repo, user, repo.conversation(user.id), self.clock(), self.texts,
                    self.content, self.searcher, self.history_size)

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
            turn.leave_flows()
            runner.show_main_menu(turn)
        elif name == "help":
            turn.send(turn.say("help"), [buttons.menu(turn)])
        elif name == "lang":
            self._set_language(turn, command.args.strip().lower())
        elif name == "human":
            handover.start(turn, "question")
        elif name == "cancel":
            self._cancel(turn)
        elif name == "status":
            desk.status(turn, self.texts)
        elif name == "survey":
            survey.opt(turn, self.texts, command.args)
        elif name == "forgetme":
            erasure.ask(turn, self.texts)
        else:
            turn.send(turn.say("unknown_command", command=command.name)
                      + "\n\n" + turn.say("help"))

    def _set_language(self, turn: Turn, language: str) -> None:
        if language not in LANGUAGES:
            turn.send(turn.say("language_usage"))
            return
        turn.user.language = language
        turn.send(self.texts.say(language, "language_set"), [buttons.menu(turn)])

    def _cancel(self, turn: Turn) -> None:
        ticket = turn.repo.open_ticket(turn.user.id)
        conversation = turn.conversation
        if ticket is not None:
            desk.withdraw(turn, ticket)
            turn.leave_flows()
            turn.send(turn.say("ticket_withdrawn", ticket=ticket.id), [buttons.menu(turn)])
        elif conversation.flow_id or conversation.awaiting:
            turn.leave_flows()
            turn.send(turn.say("cancelled"), [buttons.menu(turn)])
        else:
            turn.send(turn.say("nothing_to_cancel"), [buttons.menu(turn)])

    # Buttons ----------------------------------------------------------------------------

    def _on_button(self, turn: Turn, data: str) -> None:
        kind, rest = buttons.kind_of(data)
        if kind not in (buttons.RATE, buttons.NO_COMMENT):
            desk.forget_comment(turn)  # the user moved on: no comment on the rating
        if kind != buttons.SURVEY:
            survey.forget_comment(turn)
        if kind == buttons.OPTION:
            runner.on_option(turn, rest)
        elif kind == buttons.CHOICE:
            runner.on_choice(turn, rest)
        elif kind == buttons.MENU:
            turn.leave_flows()
            runner.show_main_menu(turn)
        elif kind == buttons.RESUME:
            runner.resume(turn)
        elif kind == buttons.ARTICLE:
            answering.show_found_article(turn, self._article_id(rest))
        elif kind == buttons.FEEDBACK:
            helped, token = buttons.feedback_of(rest)
            answering.on_feedback(turn, helped, self._article_id(token))
        elif kind == buttons.RATE:
            if (rating := buttons.rating_of(rest)) is not None:
                desk.rate(turn, self.texts, *rating)
        elif kind == buttons.NOT_SOLVED:
            if (ticket_id := buttons.ticket_of(rest)) is not None:
                desk.not_solved(turn, self.texts, ticket_id)
        elif kind == buttons.NO_COMMENT:
            desk.skip_comment(turn, self.texts)
        elif kind == buttons.SURVEY:
            survey.on_button(turn, self.texts, rest)
        elif kind == buttons.FORGET:
            if data == buttons.forget(confirmed=True):
                erasure.confirm(turn, self.texts)
            else:  # back to where they were, if they were somewhere
                erasure.cancel(turn, self.texts, [buttons.resume(turn)]
                               if runner.in_flow(turn) else [])
        elif kind == buttons.HUMAN:
            handover.start(turn, "question", turn.conversation.last_search.get("question"),
                           why=rest if rest in desk.OPENING_REASONS else desk.ASKED)
        else:
            log.info("unknown button data %r from user %s", data, turn.user.id)
            runner.show_main_menu(turn, turn.say("menu_outdated"))

    def _back_after_a_while(self, turn: Turn, text: str, secret: bool = False) -> None:
        """Text from someone who left a flow days ago is not taken as the answer to a
        days-old question: a question gets answered, then they choose where to go on."""
        turn.conversation.awaiting = None
        if turn.repo.open_ticket(turn.user.id) is not None:
            self._on_text(turn, text, secret)
            return
        if looks_like_question(text) and not secret:
            answering.search(turn, text)
        runner.offer_resume(turn)

    def _button_label(self, turn: Turn, event: ButtonPressed) -> str:
        kind, rest = buttons.kind_of(event.data)
        option = runner.option_of(turn, rest)[2] if kind == buttons.OPTION else None
        return option.label.get(turn.language) if option else event.data

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
                               answering.suggestions(turn, text, secret))
        elif resolved is not None:  # before the rating: the same matter (see desk)
            desk.reopen_by_user(turn, self.texts, resolved, text,
                                answering.suggestions(turn, text, secret))
        elif conversation.awaiting == HANDOVER_QUESTION:
            if secret and self.placeholders(turn.language).only_placeholders(text):
                turn.send(turn.say("handover_ask_question"), [buttons.exit_flow(turn)])
                return
            request_type = conversation.variables.get("_request_type", "question")
            handover.open_ticket(turn, request_type, text,
                                 conversation.variables.get("_handover_reason"))
        elif secret:
            if conversation.awaiting in (runner.ASK, runner.SEARCH) and step is not None:
                runner.run_step(turn, conversation.flow_id or "", step.id)  # asked again
            elif runner.in_flow(turn):
                turn.add_buttons(buttons.resume(turn))
            else:
                turn.add_buttons(buttons.menu(turn))
        elif conversation.awaiting in (runner.ASK, runner.SEARCH) and step is not None:
            runner.take_text(turn, step, text)
        elif text:
            answering.search(turn, text)
            if runner.in_flow(turn) and conversation.awaiting is None:
                turn.add_buttons(buttons.resume(turn))

    def _warn_about_secret(self, turn: Turn, redacted: Redacted) -> None:
        """The user sent a secret key or a recovery phrase (the transport took it out):
        their message is deleted from the chat, and they are told, at once, to treat the
        key as compromised and what to do, with the article on keeping keys safe."""
        if redacted.message_id is not None:
            turn.replies.append(DeleteMessage(redacted.message_id, turn.user.id))
        offered = []
        if self.knowledge.get(SECURITY_ARTICLE, turn.language) is not None:
            offered.append(Button(turn.say("button_security_article"),
                                  buttons.article(SECURITY_ARTICLE)))
        turn.send(turn.say("secret_leaked", kinds=redacted.kinds,
                           deleted=redacted.message_id is not None), offered)


def _about_forgetting(event: UserText | UserCommand | ButtonPressed) -> bool:
    """/forgetme or its buttons."""
    if isinstance(event, UserCommand):
        return event.name.lower() == "forgetme"
    return isinstance(event, ButtonPressed) and buttons.kind_of(event.data)[0] == buttons.FORGET
