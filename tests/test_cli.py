"""The `navigator` command: every command has help; check and ask keep their contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMMANDS = ["chat", "run", "config", "index", "ask", "eval", "check", "doctor", "forget",
            "forget-old"]


def navigator(*args: str, env: dict[str, str], stdin: str = "", timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "navigator", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, cli_env):
    result = navigator(command, "--help", env=cli_env)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_check_passes_on_the_shipped_content(cli_env):
    result = navigator("check", env=cli_env)
    assert result.returncode == 0, result.stdout
    assert "0 errors" in result.stdout


def test_check_reports_each_problem_with_file_and_line_and_fails(tmp_path: Path, cli_env):
    flows, knowledge = tmp_path / "flows", tmp_path / "knowledge"
    flows.mkdir()
    knowledge.mkdir()
    (flows / "main.yaml").write_text(
        "id: main\nsteps:\n  menu:\n    kind: menu\n    text: Меню\n    options:\n"
        "      - label: Кошелёк\n        article: wallet-missing\n", encoding="utf-8")
    (knowledge / "broken.md").write_text("---\ntitle: [\n---\n# Статья\n", encoding="utf-8")
    result = navigator("check", "--flows", str(flows), "--knowledge", str(knowledge),
                       env=cli_env)
    assert result.returncode == 1
    assert f"{flows / 'main.yaml'}:7: article 'wallet-missing' not found" in result.stdout
    assert f"{knowledge / 'broken.md'}:3: YAML syntax error" in result.stdout
    assert f"{flows / 'main.yaml'}:5: warning: missing 'en' translation" in result.stdout


def test_ask_json_reads_questions_from_stdin_and_answers_in_order(shipped_index_dir, cli_env):
    result = navigator("ask", "--index", str(shipped_index_dir), "--json", env=cli_env,
                       stdin="как создать кошелёк?\nрецепт борща\n")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["question"] == "как создать кошелёк?" and first["decision"] == "answer"
    assert first["results"][0] == {"path": "ru/stellar-wallet-create.md",
                                   "title": "Как создать кошелёк Stellar",
                                   "score": first["results"][0]["score"]}
    assert len(first["results"]) == 5 and isinstance(first["ms"], float)
    assert second["decision"] == "escalate"


def test_index_builds_when_missing_and_reports_what_it_did(tmp_path, cli_env):
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "a.md").write_text("# Линии доверия\n\nЧтобы держать токен, нужна линия.\n",
                                    encoding="utf-8")
    result = navigator("index", "--knowledge", str(knowledge), "--index",
                       str(tmp_path / "index"), env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "Indexed 1 articles, 1 chunks (1 embedded, 0 reused)" in result.stdout
    again = navigator("index", "--knowledge", str(knowledge), "--index",
                      str(tmp_path / "index"), env=cli_env)
    assert "(0 embedded, 1 reused)" in again.stdout


def test_forget_erases_a_user_after_asking_and_says_so_for_an_unknown_id(tmp_path, cli_env):
    from navigator.events import UserRef
    from navigator.store import Store
    from navigator.store.models import Message, User

    store = Store(f"sqlite:///{tmp_path / 'data' / 'navigator.db'}")
    with store.transaction() as repo:
        repo.user(UserRef(4242, "Милица Јовановић", "milica_j"), "ru")
        repo.session.flush()
        repo.add_message(4242, "in", "Живу на Његошевој 12, как вступить?")
    store.close()

    unknown = navigator("forget", "99", "--yes", env=cli_env)
    assert unknown.returncode == 1 and "No user 99" in unknown.stderr
    declined = navigator("forget", "4242", env=cli_env, stdin="n\n")
    assert declined.returncode == 1 and "Милица Јовановић @milica_j, 0 tickets" in \
        declined.stderr and "Nothing erased." in declined.stderr
    erased = navigator("forget", "4242", env=cli_env, stdin="y\n")
    assert erased.returncode == 0, erased.stderr
    assert "Erased user 4242: messages 1, tickets 0" in erased.stdout

    store = Store(f"sqlite:///{tmp_path / 'data' / 'navigator.db'}")
    with store.transaction() as repo:
        user = repo.session.get_one(User, 4242)
        assert (user.name, user.username) == ("", None)
        assert [m.text for m in repo.session.query(Message)] == [""]
    store.close()
