"""Bot commands as people type them, `/name@bot arguments`: read the same way in
Telegram and in the terminal."""

from __future__ import annotations

import re

_COMMAND = re.compile(r"/(\S*)\s*(.*)", re.DOTALL)


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
