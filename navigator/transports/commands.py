"""Bot commands as people type them, `/name@bot arguments`, and the ticket a command's
arguments name (`/take 12`, `/refuse #12 причина`): read the same way in Telegram and in
the terminal, and nowhere else."""

from __future__ import annotations

import re

_COMMAND = re.compile(r"/(\S*)\s*(.*)", re.DOTALL)
_NUMBERED = re.compile(r"^#?(\d+)\b\s*(.*)$", re.DOTALL)


def command_parts(text: str) -> tuple[str, str] | None:
    """`/take@MTL_helper_bot 12` -> ("take", "12"); None if `text` is not a command.

    Any text that starts with `/` is one, as in Telegram's private chats: a mistyped
    `/таке 12` is meant as a command (the engine says it does not know it), never as
    words to search or to relay to a user. Any white space ends the name: `/note` with
    the note on the next line is a note.
    """
    found = _COMMAND.match(text)
    if found is None:
        return None
    name, args = found.groups()
    return name.partition("@")[0], args.strip()


def ticket_in_arguments(args: str) -> tuple[int | None, str]:
    """`12 причина` or `#12 причина` -> (12, "причина"): a command's arguments that start
    with a ticket's number; (None, `args`) when they do not (`/refuse причина` in the
    ticket's thread)."""
    numbered = _NUMBERED.match(args.strip())
    if numbered is None:
        return None, args
    return int(numbered.group(1)), numbered.group(2)
