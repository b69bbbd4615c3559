"""The terminal chat: the same engine, buttons as numbers, driven by a script."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from navigator.events import ButtonPressed, UserCommand, UserRef, UserText
from navigator.transports.console import ConsoleChat, html_to_rich
from tests.conftest import ROOT


def console_chat(navigator=None) -> tuple[ConsoleChat, io.StringIO]:
    buffer = io.StringIO()
    chat = ConsoleChat(navigator, UserRef(7, "Гость"), Console(file=buffer, width=100),
                       echo_input=True)
    return chat, buffer


def test_lines_become_commands_button_presses_or_questions(make_navigator):
    chat, _ = console_chat(make_navigator())
    chat.handle_line("/start")
    assert chat.event_for("/lang en") == UserCommand(chat.user, "lang", "en")
    assert chat.event_for("2") == ButtonPressed(chat.user, chat.buttons[1].data)
    # A number with no such button is just text (someone typing "2026").
    assert chat.event_for("2026") == UserText(chat.user, "2026")
    assert chat.event_for("   ") is None


def test_replies_are_printed_with_numbered_buttons(make_navigator):
    chat, buffer = console_chat(make_navigator())
    chat.run(["/start", "2"])
    output = buffer.getvalue()
    assert "вы › /start" in output and "бот › Здравствуйте, Гость!" in output
    assert "[1] 🌱 Я здесь впервые" in output
    assert "[3] Линии доверия" in output


def test_telegram_html_is_shown_as_terminal_styles_without_markup_injection():
    assert html_to_rich("<b>Жирный</b> [red]текст[/red] &lt;тег&gt;") == \
        "[bold]Жирный[/bold] \\[red]текст\\[/red] <тег>"
    assert html_to_rich('<a href="https://montelibero.org">сайт</a>') == \
        "[underline]сайт[/underline] (https://montelibero.org)"


def test_piped_chat_walks_the_menu_and_answers_a_question(shipped_index_dir: Path, cli_env):
    """The walking skeleton's acceptance scenario, as a user would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "navigator", "chat", "--index", str(shipped_index_dir)],
        input="/start\n1\nкак создать кошелёк?\n", capture_output=True, text=True, cwd=ROOT,
        env=cli_env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[7] 🙋 Поговорить с человеком" in out, "the main menu"
    assert "Добро пожаловать! Монтелиберо" in out, "the reply to item 1"
    assert "Что вас привело в Монтелиберо?" in out, "...which starts the newcomer flow"
    assert "Источник: «Как создать кошелёк Stellar»" in out, "an answer from the knowledge base"
    assert out.index("Добро пожаловать") < out.index("Источник"), "in the order typed"
    assert "↩ Вернуться к «Я здесь впервые»" in out, "the question left the flow: a way back"
    assert "Traceback" not in result.stderr


def test_a_broken_flow_file_stops_the_chat_with_file_and_line(tmp_path: Path, cli_env):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text("id: main\nsteps:\n  menu:\n    kind: menu\n"
                                     "    text: [не закрыто\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "navigator", "chat", "--flows", str(flows)],
                            input="/start\n", capture_output=True, text=True, cwd=ROOT,
                            env=cli_env, timeout=120)
    assert result.returncode == 1
    assert f"{flows / 'main.yaml'}:5: YAML syntax error: a [ list opens here" in result.stderr
    assert "Traceback" not in result.stderr


def test_agent_lines_name_a_ticket_or_go_to_the_newest(make_navigator):
    from dataclasses import replace

    from navigator.desk.threads import in_ticket
    from navigator.events import AgentCommand, AgentText, Event

    chat, _ = console_chat(make_navigator())
    chat.run(["/human", "Где в Будве купить зимние шины?"])

    def event_for(line: str) -> Event | None:
        """What the line means, with the ticket the desk finds for it (navigator.desk.
        threads: the line replies to the newest ticket message the agents got)."""
        with chat.navigator.store.transaction() as repo:
            return replace(in_ticket(repo, chat.event_for(line)), place=None)

    assert event_for(">> Здравствуйте!") == AgentText(chat.agent, 1, "Здравствуйте!")
    assert event_for(">> #12 Добрый день") == AgentText(chat.agent, 12, "Добрый день")
    assert event_for(">> /resolve") == AgentCommand(chat.agent, "resolve", "", 1)
    assert event_for(">> #3 /take") == AgentCommand(chat.agent, "take", "", 3)


def test_piped_chat_plays_both_sides_of_the_desk(shipped_index_dir: Path, cli_env):
    """The desk's acceptance scenario: card, relayed answer, rating request, rating."""
    # A question outside the knowledge base: the bot offers a human, button 1.
    script = ("/start\nКакой рецепт у настоящего борща?\n1\n"
              ">> Здравствуйте! Классический рецепт — со свёклой и фасолью.\n"
              ">> /resolve\n5\n")
    result = subprocess.run(
        [sys.executable, "-m", "navigator", "chat", "--index", str(shipped_index_dir),
         "--agent-name", "Мария"],
        input=script, capture_output=True, text=True, cwd=ROOT, env=cli_env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "агентам › заявка №1" in out and "🆕 Заявка №1 · question" in out, "the card"
    assert "❓ Какой рецепт у настоящего борща?" in out
    assert "агент › Здравствуйте! Классический рецепт" in out, "the agent's line, echoed"
    assert "бот › 💬 Мария, поддержка · заявка №1:\nЗдравствуйте! Классический рецепт — " \
        "со свёклой и фасолью." in out, "relayed to the user under the pseudonym"
    assert "Мы решили ваш вопрос? Оцените" in out and "[5] 5" in out, "the rating request"
    assert "Спасибо за оценку 5! Заявка №1 закрыта." in out
    assert "⭐ Пользователь оценил заявку №1: 5 из 5" in out, "the stored rating"
    assert out.index("🆕 Заявка №1") < out.index("Мария, поддержка") < out.index("из 5")
    assert "Traceback" not in result.stderr
