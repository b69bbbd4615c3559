"""Agents' commands and ticket numbers: `/take 12`, `/refuse 12 причина`, `/note #12 …`,
`/take@botname 12`, `>> #12 ответ` in the terminal; with numbers in other scripts, huge,
negative or missing. Every command gets an answer and never fails; a number names the
ticket it says, or the agents are told there is no such ticket."""

from __future__ import annotations

import io
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console
from telegram import Update

from navigator.events import (
    AgentCommand,
    AgentRef,
    AgentsText,
    ButtonPressed,
    NotifyAgents,
    UserCommand,
    UserText,
)
from navigator.render import html_to_plain
from navigator.secret_guard import find_secrets
from navigator.transports.console import ConsoleChat
from navigator.transports.telegram.updates import agent_event_for, event_for

from .strategies import AGENT_COMMANDS, numbers_as_typed, texts
from .updates import AGENTS_CHAT_ID
from .world import ANNA, BOB, OLGA, Session, World, share

TICKETS = 3  # the example opens tickets 1-3



def desk_with_tickets(session: Session) -> None:
    """Three tickets: Анна's (resolved), Bob's and Анна's second (open); Ольга signs."""
    session.handle(AgentCommand(OLGA, "myname", "Ольга"))
    for user, question in ((ANNA, "Как вступить?"), (BOB, "Where is the fund?"),
                           (ANNA, "А ещё вопрос")):
        session.handle(UserCommand(user, "human"))
        session.handle(UserText(user, question))
        if user is ANNA and question == "Как вступить?":
            session.handle(AgentCommand(OLGA, "resolve", "", 1))
            session.handle(UserCommand(ANNA, "cancel"))


def number_in(args: str) -> int | None:
    """The ticket number the desk should read at the start of `args` (`12`, `#12`)."""
    found = re.match(r"#?(\d+)(?!\w)", args.strip())
    return int(found.group(1)) if found else None


@share(0.5)
@given(name=st.sampled_from(AGENT_COMMANDS), number=numbers_as_typed(),
       rest=st.one_of(st.just(""), texts(60)), hash_sign=st.booleans())
@example(name="take", number="99999999999999999999", rest="", hash_sign=False)
@example(name="refuse", number="²", rest="причина", hash_sign=False)
@example(name="note", number="١", rest="заметка", hash_sign=True)
@example(name="take", number="1", rest="SCZANGBA5YHTNYVVV3C7CAZMTQDBJHJG6C34CJDQ66EQ7DZTSBP3QQK2",
         hash_sign=False)
def test_a_command_names_the_ticket_its_number_says(world: World, name, number, rest,
                                                    hash_sign):
    args = f"{'#' if hash_sign else ''}{number} {rest}".strip()
    with world.navigator() as (navigator, clock):
        session = Session(navigator, clock)
        desk_with_tickets(session)
        replies = session.handle(AgentCommand(OLGA, name, args))
    assert replies, (name, args)  # every command is answered
    said = "\n".join(html_to_plain(r.text) for r in replies
                     if isinstance(r, NotifyAgents | AgentsText))
    wanted = number_in(args)
    if find_secrets(args):  # a pasted key: refused whatever the command, nothing acted on
        assert "оно НЕ передано пользователю" in said, (args, said)
        return
    if name in ("queue", "stats", "myname", "find"):
        return  # not about one ticket
    if wanted is None:
        assert world.say("agents_no_ticket", command=name) in said, (args, said)
    elif not 1 <= wanted <= TICKETS:
        assert world.say("agents_unknown_ticket", ticket=wanted) in said, (args, said)
    else:
        about = {r.ticket_id for r in replies if isinstance(r, NotifyAgents)}
        assert about <= {wanted} and (about or name == "note"), (args, replies)


# The same words in Telegram and in the terminal ----------------------------------------


def telegram_event(text: str, chat: dict[str, Any], entities: bool) -> Any:
    message: dict[str, Any] = {
        "message_id": 5, "date": 1_700_000_000, "chat": chat, "text": text,
        "from": {"id": chat["id"] if chat["type"] == "private" else OLGA.id, "is_bot": False,
                 "first_name": "Анна" if chat["type"] == "private" else OLGA.name,
                 "language_code": "ru"}}
    command = re.match(r"/[A-Za-z0-9_]+(@\w+)?", text)
    if entities and command:
        message["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": len(command.group(0).encode("utf-16-le")) // 2}]
    update = Update.de_json({"update_id": 1, "message": message}, None)
    if chat["type"] == "private":
        return event_for(update)
    return agent_event_for(update, AGENTS_CHAT_ID)


command_lines = st.one_of(
    texts(60),
    st.builds(lambda name, bot, gap, args: f"/{name}{bot}{gap}{args}",
              st.sampled_from(("start", "lang", "take", "refuse", "note", "Take", "take12",
                               "таке", "", "x_y")),
              st.sampled_from(("", "@mtl_nav_bot", "@")),
              st.sampled_from((" ", "  ", "\n", "\t", "")), st.one_of(numbers_as_typed(),
                                                                      texts(30))))


@given(line=command_lines, entities=st.booleans())
@example(line="/lang\ten", entities=True)
@example(line="/", entities=False)
@example(line="/take12", entities=True)
@example(line="¹", entities=False)
def test_a_line_means_the_same_in_telegram_and_in_the_terminal(world: World, line, entities):
    line = line.split("\n")[0].strip()  # the terminal reads lines
    if not line:
        return
    with world.navigator() as (navigator, _):
        console = ConsoleChat(navigator, ANNA, Console(file=io.StringIO()),
                              agent=AgentRef(OLGA.id, OLGA.name))
        in_terminal = console.event_for(line)
        in_telegram = telegram_event(line, {"id": ANNA.id, "type": "private",
                                            "first_name": "Анна"}, entities)
        if not line.startswith(">>") and not isinstance(in_terminal, ButtonPressed):
            assert _words(in_terminal) == _words(in_telegram), (line, in_terminal, in_telegram)
        agent_terminal = console.agent_event_for(line)
        agent_telegram = telegram_event(line, {"id": AGENTS_CHAT_ID, "type": "supergroup",
                                               "title": "Агенты"}, entities)
        if not line.startswith("#"):  # `#12 text` is the terminal's way to pick a ticket
            assert _words(agent_terminal) == _words(agent_telegram), \
                (line, agent_terminal, agent_telegram)


@given(name=st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True),
       bot=st.sampled_from(("", "@mtl_nav_bot")), gap=st.sampled_from((" ", "\n", "\t", "  \n")),
       args=texts(60))
@example(name="note", bot="", gap="\n", args="заметка на второй строке")
def test_a_commands_arguments_may_start_on_the_next_line(name, bot, gap, args):
    update = Update.de_json({"update_id": 1, "message": {
        "message_id": 5, "date": 1_700_000_000, "text": f"/{name}{bot}{gap}{args}",
        "chat": {"id": AGENTS_CHAT_ID, "type": "supergroup", "title": "Агенты"},
        "from": {"id": OLGA.id, "is_bot": False, "first_name": OLGA.name}}}, None)
    event = agent_event_for(update, AGENTS_CHAT_ID)
    assert isinstance(event, AgentCommand)
    assert (event.name, event.args) == (name, args.strip())


def _words(event: Any) -> tuple[str, ...]:
    """What an event says, apart from who and which ticket."""
    if event is None:
        return ()
    if hasattr(event, "name"):
        return ("command", event.name, event.args)
    return ("text", event.text)
