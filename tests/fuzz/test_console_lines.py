"""The terminal chat's lines: `>> ` for an agent, a number for a button, `/commands`,
anything else a question. Whatever is typed (or piped), the chat goes on, and each line
means what the README says it means."""

from __future__ import annotations

import io

from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from navigator.events import (
    AgentCommand,
    AgentRef,
    AgentText,
    ButtonPressed,
    UserCommand,
    UserText,
)
from navigator.transports.console import ConsoleChat

from .strategies import numbers_as_typed, texts
from .world import ANNA, OLGA, World, share

lines = st.one_of(
    st.integers(0, 12).map(str),
    st.sampled_from(("/start", "/human", "/menu", "/status", "/cancel", "/lang en", "/",
                     ">> /myname Мария", ">> /take", ">> /resolve", ">> /queue", ">>",
                     ">> ", ">>>", "[bold]жирный[/bold]", "[/]", "\\[x]", "[link=x]y[/link]")),
    st.builds(lambda prefix, text: f"{prefix}{text}",
              st.sampled_from((">> ", ">> #", ">> #1 ", ">>#", ">> /refuse ", ">> /note ")),
              st.one_of(numbers_as_typed(), texts(40))),
    texts(80),
).map(lambda line: line.replace("\n", " "))  # the terminal reads lines


@share(0.5)
@given(script=st.lists(lines, min_size=1, max_size=20))
@example(script=["/start", "²", "¹", ">> #99999999999999999999 ответ", ">> /take12", "/ x"])
@example(script=["/human", "вопрос", ">> /myname [red]Мария", ">> ответ [/]", ">> /resolve"])
def test_any_typed_line_is_read_and_the_chat_goes_on(world: World, script):
    with world.navigator() as (navigator, _):
        chat = ConsoleChat(navigator, ANNA, Console(file=io.StringIO(), width=100),
                           echo_input=True, agent=AgentRef(OLGA.id, OLGA.name),
                           agent_pseudonym="Агент")
        for line in script:
            shown = chat.buttons
            event = chat.event_for(line)
            chat.handle_line(line)
            typed = line.strip()
            if line.startswith(">>"):
                assert event is None or isinstance(event, AgentCommand | AgentText)
            elif not typed:
                assert event is None
            elif typed.startswith("/"):  # the name: up to a space (and without @bot)
                name = typed[1:].split(maxsplit=1)[0] if typed[1:2].strip() else ""
                assert isinstance(event, UserCommand), (line, event)
                assert event.name == name.partition("@")[0], (line, event)
            elif typed.isdecimal() and 1 <= int(typed) <= len(shown):
                assert event == ButtonPressed(ANNA, shown[int(typed) - 1].data)
            else:
                assert event == UserText(ANNA, typed)
