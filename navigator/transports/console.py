"""The same engine in a terminal: lines in, replies printed; buttons become numbers.

Interactive (a prompt) or piped (`printf '/start\\n1\\n' | navigator chat`: every input
line is echoed so the transcript reads like a conversation, and EOF ends the chat).

The terminal plays both sides of the desk. A line starting with `>> ` is typed by an
agent in the agents' chat, as a reply to the newest message the agents' chat got about
a ticket (the terminal records what it prints to the agents as that chat's messages, so
the desk finds the ticket as it does in Telegram: navigator.desk.threads): `>> text`
answers that ticket, `>> #12 text` answers ticket 12, `>> /resolve` (`/take`,
`/note ...`, `/queue`...) is an agents' command about it. What the user receives is
printed after `бот ›`, what the agents' chat receives after `агентам ›` (a report,
`>> /report 7`, is written to a file in the temporary folder, its path printed).

Secret keys and recovery phrases are taken out of every line before anything else
happens (navigator.secret_guard), the echo of piped input included: the transcript
shows the placeholder, as the chat in Telegram keeps nothing of the deleted message.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape

from navigator import buttons
from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.events import (
    AgentCommand,
    AgentRef,
    AgentsDocument,
    AgentsReport,
    AgentsText,
    AgentText,
    Button,
    ButtonPressed,
    ChatPlace,
    CopyToUser,
    DeleteMessage,
    Event,
    NotifyAgents,
    Redacted,
    Reply,
    SendText,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.handling import Navigator
from navigator.languages import language_for
from navigator.outbox import AGENTS_LANE, Outbox, lane_of
from navigator.payouts.desk import PayoutsDesk, airdrop_action
from navigator.report import Period, report_document
from navigator.secret_guard import redact
from navigator.transports.commands import command_parts

AGENT_PREFIX = ">> "
AGENTS_CHAT = 0  # the terminal's agents' chat (no Telegram chat has id 0)
_TICKET = re.compile(r"^#(\d+)\s*(.*)$", re.DOTALL)
_TAGS = {"b": "bold", "i": "italic", "u": "underline", "s": "strike", "code": "cyan",
         "pre": "cyan", "blockquote": "italic"}
_HTML_TOKEN = re.compile(r"<(/?)(\w+)([^>]*)>|([^<]+)")


def html_to_rich(text: str) -> str:
    """Telegram HTML -> rich markup (unknown tags dropped, text escaped)."""
    import html

    out: list[str] = []
    links: list[str] = []
    for closing, tag, attrs, content in _HTML_TOKEN.findall(text):
        if content:
            out.append(escape(html.unescape(content)))
        elif tag == "a":
            if closing:
                out.append(f"[/underline] ({escape(links.pop())})" if links else "")
            else:
                href = re.search(r'href="([^"]*)"', attrs)
                links.append(html.unescape(href.group(1)) if href else "")
                out.append("[underline]")
        elif tag in _TAGS:
            out.append(f"[/{_TAGS[tag]}]" if closing else f"[{_TAGS[tag]}]")
    return "".join(out)


class ConsoleChat:
    """Drives a Navigator from terminal lines, as one user, and prints what it replies."""

    def __init__(self, navigator: Navigator, user: UserRef, console: Console,
                 echo_input: bool = False, search_ready: Callable[[], bool] | None = None,
                 agent: AgentRef | None = None, agent_pseudonym: str | None = None,
                 payouts: PayoutsDesk | None = None,
                 reports_dir: Path | None = None):
        self.navigator = navigator
        self.payouts = payouts  # /airdrop build|status are done here too
        self.outbox = Outbox(navigator.store)
        # Where `>> /report` leaves its file (the agents' chat would get it as a document).
        self.reports_dir = reports_dir or Path(tempfile.gettempdir())
        self.agent = agent or AgentRef(user.id + 1, "Агент (терминал)")
        self._pseudonym = agent_pseudonym
        self.search_ready = search_ready
        self._told_about_loading = False
        self.user = user
        self.console = console
        self.echo_input = echo_input
        self.buttons: tuple[Button, ...] = ()

    def event_for(self, line: str) -> Event | None:
        """What a typed line means: a command, a button number, or free text."""
        if line.startswith(AGENT_PREFIX.strip()):
            return self.agent_event_for(line[len(AGENT_PREFIX.strip()):])
        line = line.strip()
        if not line:
            return None
        if command := command_parts(line):
            return UserCommand(self.user, *command)
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if line.isdecimal() and 1 <= int(line) <= len(self.buttons):
            return ButtonPressed(self.user, self.buttons[int(line) - 1].data)
        return UserText(self.user, line)

    def agent_event_for(self, line: str) -> Event | None:
        """An agent's line (without `>>`): about ticket #N if it starts so, else a reply
        to the newest message the agents' chat got about a ticket."""
        line = line.strip()
        ticket_id = None
        if numbered := _TICKET.match(line):
            ticket_id, line = int(numbered.group(1)), numbered.group(2).strip()
        if not line:
            return None
        place = ChatPlace(AGENTS_CHAT, None, self.outbox.newest_ticket_message(AGENTS_CHAT))
        if command := command_parts(line):
            return AgentCommand(self.agent, *command, ticket_id, place=place)
        return AgentText(self.agent, ticket_id, line, place=place)

    def _sign_agent(self) -> None:
        """Give the terminal's agent its pseudonym once (quietly: it is setup, not talk)."""
        if self._pseudonym:
            self._handle(AgentCommand(self.agent, "myname", self._pseudonym), show=False)
            self._pseudonym = None

    def _handle(self, event: Event, show: bool = True) -> list[Reply]:
        handled = self.navigator.handle_recorded(event)
        for reply in handled.replies if show else ():
            self.show(reply)
        self._mark_delivered(zip(handled.outbox_ids, handled.replies, strict=True))
        if self.payouts is not None and isinstance(event, AgentCommand) and \
                event.name == "airdrop" and (action := airdrop_action(event.args)):
            return [*handled.replies, *self._payouts_job(self.payouts, action)]
        return handled.replies

    def _mark_delivered(self, rows: Iterable[tuple[int, Reply]]) -> None:
        """Printed is delivered: the terminal is this chat's (and the agents') transport.
        The agents' posts become messages of the terminal's agents' chat (a reply to one
        finds its ticket), the rest are just sent."""
        rows = list(rows)
        to_agents = [row for row, reply in rows if lane_of(reply) == AGENTS_LANE]
        self.outbox.mark_delivered(to_agents, chat_id=AGENTS_CHAT)
        self.outbox.mark_delivered({row for row, _ in rows} - set(to_agents))

    def _payouts_job(self, payouts: PayoutsDesk, action: str) -> list[Reply]:
        """/airdrop build|status, done here as the bot does it (against Horizon), and
        what it posted, printed."""
        before = self.outbox.last_id()
        asyncio.run(payouts.run(action))
        posted = self.outbox.added_since(before)
        for _, reply in posted:
            self.show(reply)
        self._mark_delivered(posted)
        return [reply for _, reply in posted]

    def handle_line(self, line: str) -> list[Reply]:
        by_agent = line.startswith(AGENT_PREFIX.strip())
        language = AGENTS_LANGUAGE if by_agent else \
            language_for(self.user.language_code, self.navigator.default_language)
        redaction = redact(line, self.navigator.placeholders(language))
        line = redaction.text
        if self.echo_input and line.strip():
            who = "[bold magenta]агент ›[/bold magenta]" if by_agent else \
                "[bold green]вы ›[/bold green]"
            shown = line[len(AGENT_PREFIX.strip()):] if by_agent else line
            self.console.print(f"{who} {escape(shown.strip())}")
        if by_agent:
            self._sign_agent()
        event = self.event_for(line)
        if event is None:
            return []
        if redaction and hasattr(event, "redacted"):
            event = replace(event, redacted=Redacted(redaction.kinds))
        if isinstance(event, UserText) and self.search_ready and not self.search_ready() \
                and not self._told_about_loading:
            self.console.print("[dim]Загружаю модель поиска — первый ответ займёт несколько "
                               "секунд…[/dim]")
            self._told_about_loading = True
        return self._handle(event)

    def show(self, reply: Reply) -> None:
        if isinstance(reply, SendText):
            if reply.image:
                self.console.print(f"[dim]🖼 {escape(reply.image)}[/dim]")
            self.console.print(f"[bold blue]бот ›[/bold blue] {html_to_rich(reply.text)}")
            for link in (b for b in reply.buttons if b.url):
                self.console.print(f"   🔗 {escape(link.label)}: {escape(link.url or '')}")
            pressable = tuple(b for b in reply.buttons if not b.url)
            if pressable:
                self.buttons = pressable
                for number, button in enumerate(pressable, start=1):
                    self.console.print(f"   [bold][{number}][/bold] {escape(button.label)}")
        elif isinstance(reply, CopyToUser):
            # Only a Telegram agent can attach a file; shown for completeness.
            self.console.print(f"[dim]📎 {escape(reply.attachment.kind)}[/dim]")
            if reply.caption:
                self.console.print(f"[bold blue]бот ›[/bold blue] {html_to_rich(reply.caption)}")
        elif isinstance(reply, NotifyAgents):
            self.console.print(f"[magenta]агентам › заявка №{reply.ticket_id}[/magenta]\n"
                               f"{html_to_rich(reply.text)}", style="dim")
            if reply.buttons:
                hints = ", ".join(f"{escape(b.label)} (>> /{buttons.agent_action_of(b.data)[0]})"
                                  for b in reply.buttons)
                self.console.print(f"   [dim]{hints}[/dim]")
        elif isinstance(reply, DeleteMessage):  # only Telegram messages have an id
            self.console.print("[dim]🗑 сообщение удалено[/dim]")
        elif isinstance(reply, AgentsText):
            self.console.print(f"[magenta]агентам ›[/magenta] {html_to_rich(reply.text)}",
                               style="dim")
        elif isinstance(reply, AgentsDocument):
            self.console.print(f"[magenta]агентам › 📎 {escape(reply.file_name)}[/magenta] "
                               f"{html_to_rich(reply.caption)}", style="dim")
        elif isinstance(reply, AgentsReport):
            self.console.print(f"[magenta]агентам › 📎 {escape(str(self._report_file(reply)))}"
                               f"[/magenta]\n{html_to_rich(reply.caption)}", style="dim")
        self.console.print()

    def _report_file(self, reply: AgentsReport) -> Path:
        period = Period(reply.first, reply.last, ZoneInfo(reply.zone))
        name, content = report_document(self.navigator.store, period, datetime.now(UTC),
                                        reply.language)
        path = self.reports_dir / name
        path.write_bytes(content)
        return path

    def run(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.handle_line(line)
