"""Hypothesis strategies for what comes from outside: texts people type, button data,
agents' commands, and actions of users, agents and time against the engine."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentRef,
    AgentText,
    ButtonPressed,
    Event,
    Tick,
    UserCommand,
    UserRef,
    UserText,
)

from .world import AGENTS, USERS, Session

PHRASES = (
    "Как вступить в ассоциацию?", "что такое линия доверия", "Где купить EURMTL",
    "не работает кошелёк", "Спасибо!", "да", "нет", "ок", "42", "1,5", "-3", "1e9",
    "anna@example.org", "мой адрес GABC123", "How do I create a wallet?", "привет",
    "GAOQJGUAB7NI7K7I62ORBXMN3J4SSWQUQ7FOEPSDJ322W2HMCNWPHXFB",
    "мой адрес gaoqjguab7ni7k7i62orbxmn3j4sswquq7foepsdj322w2hmcnwphxfb, спасибо",
    "SCZANGBA5YHTNYVVV3C7CAZMTQDBJHJG6C34CJDQ66EQ7DZTSBP3QQK2", "ABC-123", "Красный",
    "#12 ответ", "/start", "12", "١٢", "²", "99999999999999999999999", "…", "🇲🇪", "",
    "   ", "\n\n", "<b>жирный</b> & <a href='x'>", "{{ name }}", "{% if %}", "a < b",
)

# Letters people type, and the odd ones: digits of other scripts, superscripts, emoji,
# joiners, control characters, right-to-left marks.
ODD_CHARACTERS = "Ёё١٢٣۴۵߁०²³¹½Ⅻⅷ🇲🇪👍🏽\u200d\u200b\u202e\ufeff\x00\x07\t\r\n|#@/ "


def texts(max_size: int = 300) -> st.SearchStrategy[str]:
    """Free text as users and agents type it, realistic and not."""
    return st.one_of(
        st.sampled_from(PHRASES),
        st.text(max_size=max_size),
        st.text(alphabet=st.sampled_from(ODD_CHARACTERS + "абвгдеёжзabcXYZ0123456789.,-+"),
                max_size=40),
        st.tuples(st.sampled_from(PHRASES), st.text(max_size=20), st.sampled_from(PHRASES))
        .map(" ".join),
    )


def numbers_as_typed() -> st.SearchStrategy[str]:
    """A ticket number as an agent might type it: usual, huge, negative, other digits."""
    return st.one_of(
        st.integers(min_value=-3, max_value=12).map(str),
        st.integers(min_value=2**31 - 2, max_value=2**70).map(str),
        st.text(alphabet=st.sampled_from("0123456789١٢٣۴०²³¹½Ⅻ-+_ "), min_size=1, max_size=25),
    )


BUTTON_KINDS = ("o", "c", "a", "fb", "h", "r", "menu", "rate", "unsolved", "nocomment",
                "take", "resolve", "done", "refuse", "reopen", "note", "ignore", "unignore",
                "queue", "stats", "myname", "find")


def callback_data() -> st.SearchStrategy[str]:
    """Button data up to Telegram's 64 bytes: arbitrary, and shaped like the engine's
    own (`kind|part|part`) with odd parts."""
    part = st.one_of(numbers_as_typed(), st.sampled_from(
        ("main", "menu", "answers", "number", "airdrop", "account", "y", "n", "0", "-1", "5",
         "", "da39a3ee5e6b")), st.text(max_size=12))
    shaped = st.tuples(st.sampled_from(BUTTON_KINDS), st.lists(part, max_size=4)).map(
        lambda kp: "|".join([kp[0], *kp[1]]))
    return st.one_of(st.text(max_size=64), shaped).map(_fit_callback)


def _fit_callback(data: str) -> str:
    """Cut to 64 bytes of UTF-8 on a character boundary (what Telegram would deliver)."""
    encoded = data.encode("utf-8")[:64]
    return encoded.decode("utf-8", "ignore")


# Actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Press:
    """A user presses button `index` of the keyboard the bot last showed them."""

    user: UserRef
    index: int

    def event(self, session: Session) -> Event:
        buttons = session.keyboards.get(self.user.id)
        if not buttons:
            return UserCommand(self.user, "start")
        return ButtonPressed(self.user, buttons[self.index % len(buttons)].data)


@dataclass(frozen=True)
class PressCard:
    """An agent presses button `index` of the ticket card the agents' chat last got."""

    agent: AgentRef
    index: int

    def event(self, session: Session) -> Event:
        if not session.card:
            return AgentCommand(self.agent, "queue")
        return AgentButtonPressed(self.agent, session.card[self.index % len(session.card)].data)


@dataclass(frozen=True)
class Say:
    """A user sends an event as it is (text, a command, forged button data)."""

    fixed: Event

    def event(self, session: Session) -> Event:
        return self.fixed


@dataclass(frozen=True)
class AgentAct:
    """An agent's command or answer about the newest ticket (or no ticket, or `number`)."""

    agent: AgentRef
    name: str | None  # None: a text answer
    text: str
    about: str  # "newest", "none", "number"
    number: int = 0

    def event(self, session: Session) -> Event:
        ticket = {"newest": session.newest_ticket(), "none": None,
                  "number": self.number}[self.about]
        if self.name is None:
            return AgentText(self.agent, ticket, self.text)
        return AgentCommand(self.agent, self.name, self.text, ticket)


@dataclass(frozen=True)
class Wait:
    """Time passes (minutes), then the minute tick (reminders, digests)."""

    minutes: float

    def event(self, session: Session) -> Event:
        session.clock.advance(self.minutes)
        return Tick()


users = st.sampled_from(USERS)
agents = st.sampled_from(AGENTS)
USER_COMMANDS = ("start", "menu", "help", "lang", "human", "cancel", "status")
AGENT_COMMANDS = ("take", "resolve", "done", "refuse", "reopen", "note", "ignore", "unignore",
                  "queue", "stats", "myname", "find")


def user_actions() -> st.SearchStrategy:
    press = st.builds(Press, users, st.integers(0, 20))
    return st.one_of(
        press, press, press,
        st.builds(lambda u, t: Say(UserText(u, t)), users, texts().filter(str.strip)),
        st.builds(lambda u, n, a: Say(UserCommand(u, n, a)), users,
                  st.sampled_from(USER_COMMANDS), st.sampled_from(("", "en", "ru", "de"))),
        # The test flow with every answer type (its menu is not in the main menu).
        st.builds(lambda u, i: Say(ButtonPressed(u, f"o|answers|menu|{i}")), users,
                  st.integers(0, 6)),
    )


def agent_actions() -> st.SearchStrategy:
    return st.one_of(
        st.builds(PressCard, agents, st.integers(0, 5)),
        st.builds(lambda a, p: Say(AgentCommand(a, "myname", p)), agents,
                  st.sampled_from(("Мария", "Пётр", ""))),
        st.builds(AgentAct, agents, st.one_of(st.none(), st.sampled_from(AGENT_COMMANDS)),
                  texts(80), st.sampled_from(("newest", "newest", "none", "number")),
                  st.integers(-2, 12)),
    )


def handover() -> st.SearchStrategy:
    """A user asks for a person (a ticket opens), so the desk has something to work on."""
    return st.builds(lambda u, t: [Say(UserCommand(u, "human")), Say(UserText(u, t))],
                     users, st.sampled_from(PHRASES[:6]))


def real_actions() -> st.SearchStrategy[list]:
    """What users, agents and time do, pressing only buttons the bot built."""
    step = st.one_of(user_actions(), user_actions(), agent_actions(), agent_actions(),
                     handover(), st.builds(Wait, st.sampled_from((1, 20, 90, 60 * 30))))
    return st.lists(step, min_size=3, max_size=30).map(
        lambda steps: [a for s in steps for a in (s if isinstance(s, list) else [s])])


def forged_presses() -> st.SearchStrategy:
    """Buttons nobody built: a user's or an agent's press with arbitrary data."""
    return st.one_of(
        st.builds(lambda u, d: Say(ButtonPressed(u, d)), users, callback_data()),
        st.builds(lambda a, d: Say(AgentButtonPressed(a, d)), agents, callback_data()),
    )
