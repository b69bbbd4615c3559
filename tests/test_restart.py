"""Conversation state lives in the database: a new process continues where the user was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.helpers import press, say, text_of, to_agents


def test_a_restarted_engine_continues_the_conversation(make_navigator, anna):
    first = make_navigator()
    press(first, anna, say(first, anna, "/start"), "Поговорить с человеком")
    first.store.close()  # the process dies here

    second = make_navigator()  # a new process opens the same SQLite file
    replies = say(second, anna, "Как платить членские взносы из-за границы?")
    assert "заявка №1" in text_of(replies), "the restarted bot knew it was waiting for a question"
    assert "Поговорить с человеком" in to_agents(replies)[0].text


def test_language_and_history_survive_a_restart(make_navigator, anna):
    first = make_navigator()
    say(first, anna, "/lang en")
    say(first, anna, "how do I create a wallet?")
    first.store.close()

    second = make_navigator()
    assert "Hello, Анна!" in text_of(say(second, anna, "/start"))
    say(second, anna, "/human")
    card = to_agents(say(second, anna, "Nobody answers in the chat"))[0].text
    assert "how do I create a wallet?" in card, "messages from before the restart are context"


def chat(lines: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navigator", "chat"], input=lines,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_two_terminal_sessions_share_one_conversation(tmp_path: Path, shipped_index_dir: Path,
                                                      cli_env):
    env = {**cli_env, "NAVIGATOR_INDEX_DIR": str(shipped_index_dir)}
    first = chat("/start\n7\n", env)
    assert first.returncode == 0, first.stderr
    assert "Опишите, пожалуйста, ваш вопрос" in first.stdout

    second = chat("Не могу найти рекомендателя для вступления\n", env)
    assert second.returncode == 0, second.stderr
    assert "заявка №1" in second.stdout
    database = create_engine(f"sqlite:///{tmp_path / 'data' / 'navigator.db'}")
    with database.connect() as connection:
        question = connection.execute(text("select question from tickets")).scalar_one()
    assert question == "Не могу найти рекомендателя для вступления"
