"""Small helpers that let engine tests read like a conversation."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from navigator.events import (
    AgentCommand,
    AgentRef,
    AgentsText,
    AgentText,
    Attachment,
    Button,
    ButtonPressed,
    CopyToUser,
    NotifyAgents,
    Reply,
    SendText,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.handling import Navigator
from navigator.render import html_to_plain


def say(navigator: Navigator, user: UserRef, text: str) -> list[Reply]:
    if text.startswith("/"):
        name, _, args = text[1:].partition(" ")
        return navigator.handle(UserCommand(user, name, args))
    return navigator.handle(UserText(user, text))


def agent_says(navigator: Navigator, agent: AgentRef, text: str,
               ticket: int | None = None) -> list[Reply]:
    """An agent writes in the agents' chat (about `ticket`: replying to its card)."""
    if text.startswith("/"):
        name, _, args = text[1:].partition(" ")
        return navigator.handle(AgentCommand(agent, name, args, ticket))
    return navigator.handle(AgentText(agent, ticket, text))


def agent_attaches(navigator: Navigator, agent: AgentRef, attachment: Attachment,
                   caption: str = "", ticket: int | None = None) -> list[Reply]:
    """An agent posts a photo, a document... (with `caption`) about `ticket`."""
    return navigator.handle(AgentText(agent, ticket, caption, attachment))


def copies_to_user(replies: list[Reply]) -> list[CopyToUser]:
    return [r for r in replies if isinstance(r, CopyToUser)]


def to_chat(replies: list[Reply]) -> str:
    """Everything posted to the agents' chat, as plain text."""
    return "\n".join(html_to_plain(r.text) for r in replies
                     if isinstance(r, NotifyAgents | AgentsText))


def to_user(replies: list[Reply]) -> list[SendText]:
    return [r for r in replies if isinstance(r, SendText)]


def to_agents(replies: list[Reply]) -> list[NotifyAgents]:
    return [r for r in replies if isinstance(r, NotifyAgents)]


def text_of(replies: list[Reply]) -> str:
    """Everything the user was sent, as plain text."""
    return "\n".join(html_to_plain(r.text) for r in to_user(replies))


def buttons_of(replies: list[Reply]) -> tuple[Button, ...]:
    """The buttons of the last message that has any (what the user can press now)."""
    for reply in reversed(to_user(replies)):
        if reply.buttons:
            return reply.buttons
    return ()


def press(navigator: Navigator, user: UserRef, replies: list[Reply], label: str) -> list[Reply]:
    """Press the button whose label contains `label` in the latest keyboard."""
    choices = buttons_of(replies)
    for button in choices:
        if label.lower() in button.label.lower():
            return navigator.handle(ButtonPressed(user, button.data))
    raise AssertionError(f"no button {label!r} among {[b.label for b in choices]}")


def database_dump(database: Path | str) -> str:
    """Every row of every table of an SQLite database (a path or a sqlite:/// URL), as
    `sqlite3 navigator.db .dump` prints it, with JSON's \\uXXXX escapes read back (JSON
    columns store Cyrillic escaped, so a plain search would miss it)."""
    path = make_url(str(database)).database if str(database).startswith("sqlite:") else database
    connection = sqlite3.connect(str(path))
    try:
        text = "\n".join(connection.iterdump())
    finally:
        connection.close()
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
