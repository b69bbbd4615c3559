"""What the fuzz tests drive: the engine on the shipped content (plus a flow with every
answer type), a fresh database per example, a fake clock and a searcher that needs no
model, and the checks every reply must pass."""

from __future__ import annotations

import contextlib
import shutil
import signal
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import settings
from sqlalchemy import select

from navigator.events import (
    AgentRef,
    AgentsText,
    Button,
    CopyToUser,
    Event,
    NotifyAgents,
    Reply,
    SendText,
    UserRef,
)
from navigator.flows import FlowSet, load_flows
from navigator.handling import Navigator
from navigator.knowledge import KnowledgeBase, load_knowledge
from navigator.render import html_to_plain
from navigator.search import Hit, SearchResult
from navigator.store import Store
from navigator.store.models import Conversation, Ticket
from navigator.telegram_html import CAPTION_LIMIT, TEXT_LIMIT
from navigator.texts import Texts
from tests.e2e.fakebot import parse_html

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
KNOWLEDGE = ROOT / "knowledge"
ANSWERS_FLOW = Path(__file__).with_name("answers.yaml")
CALLBACK_LIMIT = 64  # bytes of callback data Telegram keeps


def share(fraction: float, **overrides: Any) -> settings:
    """A property that costs more per example runs `fraction` of the profile's examples."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)),
                    **overrides)


@contextlib.contextmanager
def no_hang(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when the block runs longer than `seconds`.
    Only in the main thread (pytest's), where signals are delivered."""
    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class FakeSearcher:
    """Stands in for the model: the decision and the articles follow from a hash of the
    question, so every search outcome (answer, suggest, escalate) comes up, repeatably."""

    def __init__(self, knowledge: KnowledgeBase):
        self.articles = knowledge.articles

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        digest = zlib.crc32(question.encode("utf-8", "surrogatepass"))
        decision = ("answer", "suggest", "escalate")[digest % 3]
        pool = [a for a in self.articles if a.lang == language] or self.articles
        chosen = list(dict.fromkeys(pool[(digest >> (3 * i)) % len(pool)] for i in range(k)))
        hits = tuple(Hit(a, 0.9 - 0.05 * i, a.sections[0].headings if a.sections else ())
                     for i, a in enumerate(chosen))
        return SearchResult(question, decision, hits, 1.0)

    def prefetch(self, question: str) -> None:
        """Nothing to prepare: there is no model."""


class Clock:
    """Now, moved on by the test (reminders, rating windows, a user away for days)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


class World:
    """Content loaded once; a migrated database copied for each example. (A plain
    class: hypothesis prints a failing example's arguments, a dataclass field by field.)"""

    def __init__(self, directory: Path, template: Path, flows: FlowSet,
                 knowledge: KnowledgeBase):
        self.directory, self.template = directory, template
        self.flows, self.knowledge = flows, knowledge
        self.texts = Texts()
        self._count = 0

    def __repr__(self) -> str:
        return f"World({self.directory})"

    @classmethod
    def build(cls, directory: Path) -> World:
        template = directory / "template.db"
        Store(f"sqlite:///{template}").close()
        flows = directory / "flows"
        shutil.copytree(FLOWS, flows)
        shutil.copyfile(ANSWERS_FLOW, flows / ANSWERS_FLOW.name)
        return cls(directory, template, load_flows(flows), load_knowledge(KNOWLEDGE))

    @contextlib.contextmanager
    def navigator(self, flows: FlowSet | None = None) -> Iterator[tuple[Navigator, Clock]]:
        """A Navigator (on these flows, or the world's) on a fresh database, and its
        clock; closed afterwards."""
        self._count += 1
        path = self.directory / f"example-{self._count}.db"
        shutil.copyfile(self.template, path)
        store = Store(f"sqlite:///{path}", migrate=False)
        clock = Clock()
        try:
            yield Navigator(store, flows or self.flows, self.knowledge,
                            FakeSearcher(self.knowledge), self.texts, clock=clock), clock
        finally:
            store.close()
            for leftover in path.parent.glob(f"{path.name}*"):
                leftover.unlink()

    def say(self, key: str, language: str = "ru", **values: Any) -> str:
        return html_to_plain(self.texts.say(language, key, **values)).strip()


def sendable(text: str, limit: int = TEXT_LIMIT) -> bool:
    """Telegram would take the text: HTML its parser accepts (the fake Bot API's port of
    it), something to show, within the limit counted as Telegram counts it."""
    visible, _ = parse_html(text)
    return 0 < len(visible.strip()) <= limit


def check_replies(replies: list[Reply], users: set[int]) -> None:
    """What every reply must be, whatever came in: addressed to someone who wrote to the
    bot, with something to say that Telegram accepts, and with buttons it accepts."""
    for reply in replies:
        if isinstance(reply, SendText):
            assert reply.user_id in users, reply
            assert sendable(reply.text), reply
            check_buttons(reply.buttons)
        elif isinstance(reply, NotifyAgents):
            assert reply.ticket_id > 0 and sendable(reply.text), reply
            check_buttons(reply.buttons)
        elif isinstance(reply, AgentsText):
            assert sendable(reply.text), reply
        elif isinstance(reply, CopyToUser):
            assert reply.user_id in users, reply
            assert not reply.caption or sendable(reply.caption, CAPTION_LIMIT), reply
        else:
            raise AssertionError(f"unknown reply {reply!r}")


def check_buttons(buttons: tuple[Button, ...]) -> None:
    for button in buttons:
        assert button.label.strip(), button
        if button.url is None:
            assert 0 < len(button.data.encode("utf-8")) <= CALLBACK_LIMIT, button


# Driving a conversation --------------------------------------------------------------

ANNA = UserRef(1001, "Анна", "anna_m", "ru")
BOB = UserRef(1002, "Bob", None, "en")
USERS = (ANNA, BOB)
OLGA = AgentRef(5001, "Ольга Петрова", "olga_p")
IVAN = AgentRef(5002, "Иван", None)
AGENTS = (OLGA, IVAN)


@dataclass
class Session:
    """Two users and two agents talking to one Navigator; remembers the keyboards each
    was last shown, so an action can press a button the bot really built."""

    navigator: Navigator
    clock: Clock
    keyboards: dict[int, tuple[Button, ...]] = field(default_factory=dict)
    card: tuple[Button, ...] = ()
    log: list[tuple[Event, list[Reply]]] = field(default_factory=list)

    def handle(self, event: Event) -> list[Reply]:
        replies = self.navigator.handle(event)
        check_replies(replies, {u.id for u in USERS})
        for reply in replies:
            if isinstance(reply, SendText) and reply.buttons:
                self.keyboards[reply.user_id] = tuple(b for b in reply.buttons if not b.url)
            elif isinstance(reply, NotifyAgents) and reply.buttons:
                self.card = reply.buttons
        self.log.append((event, replies))
        return replies

    def note_reached(self) -> None:
        """Tell hypothesis's statistics which states the example reached (tickets'
        statuses, a question waiting for its answer), to see that the walks go deep."""
        with self.navigator.store.transaction() as repo:
            for status in sorted(set(repo.session.scalars(select(Ticket.status)))):
                hypothesis.event(f"a ticket {status}")
            for user in USERS:
                if (conversation := repo.session.get(Conversation, user.id)) is not None:
                    hypothesis.event(f"awaiting {conversation.awaiting}")

    def newest_ticket(self) -> int | None:
        with self.navigator.store.transaction() as repo:
            ticket = repo.newest_open_ticket() or repo.latest_ticket_of_anyone()
            return ticket.id if ticket else None
