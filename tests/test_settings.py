"""Settings come from NAVIGATOR_* variables, .env and navigator.yaml; secrets stay masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from navigator.settings import Settings
from tests.conftest import ROOT


def test_defaults_work_from_the_repository_root(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.flows_dir == Path("flows") and settings.knowledge_dir == Path("knowledge")
    assert settings.effective_database_url == "sqlite:///data/navigator.db"
    assert settings.effective_index_dir == Path("data/index")
    assert settings.model == "multilingual-e5-small"


def test_environment_variables_override_the_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVIGATOR_DATABASE_URL", "postgresql://bot:secret@db/navigator")
    monkeypatch.setenv("NAVIGATOR_ANSWER_THRESHOLD", "0.95")
    monkeypatch.setenv("NAVIGATOR_AGENTS_CHAT_ID", "-1001234567890")
    settings = Settings()
    assert settings.effective_database_url == "postgresql://bot:secret@db/navigator"
    assert settings.answer_threshold == 0.95
    assert settings.agents_chat_id == -1001234567890


def test_yaml_file_and_dotenv_are_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "navigator.yaml").write_text("default_language: en\nhistory_size: 5\n")
    (tmp_path / ".env").write_text("NAVIGATOR_HISTORY_SIZE=7\n")
    assert (Settings().default_language, Settings().history_size) == ("en", 7)
    monkeypatch.setenv("NAVIGATOR_HISTORY_SIZE", "9")
    assert Settings().history_size == 9


def test_nonsense_is_refused_with_the_setting_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVIGATOR_DEFAULT_LANGUAGE", "de")
    with pytest.raises(ValidationError, match="default_language"):
        Settings()


def test_config_prints_the_effective_settings_with_secrets_masked(tmp_path, cli_env):
    env = {**cli_env, "NAVIGATOR_TELEGRAM_TOKEN": "123456:SECRET-TOKEN",
           "NAVIGATOR_DATABASE_URL": "postgresql://bot:hunter2@db/navigator"}
    result = subprocess.run([sys.executable, "-m", "navigator", "config"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SECRET-TOKEN" not in result.stdout and "hunter2" not in result.stdout
    assert "telegram_token" in result.stdout and "***" in result.stdout
    assert "postgresql://bot:***@db/navigator" in result.stdout


def test_a_bad_setting_is_one_clear_line_not_a_traceback(cli_env):
    env = {**cli_env, "NAVIGATOR_HISTORY_SIZE": "many"}
    result = subprocess.run([sys.executable, "-m", "navigator", "config"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 2
    assert "Invalid setting history_size" in result.stderr and "Traceback" not in result.stderr


def test_the_daily_digest_is_at_nine_in_podgorica_unless_switched_off(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert (Settings().digest_hour, Settings().timezone) == (9, "Europe/Podgorica")
    monkeypatch.setenv("NAVIGATOR_DIGEST_HOUR", "0")
    assert Settings().digest_hour == 0, "midnight is an hour like any other"
    monkeypatch.setenv("NAVIGATOR_DIGEST_HOUR", "off")
    assert Settings().digest_hour is None
    monkeypatch.setenv("NAVIGATOR_DIGEST_HOUR", "24")
    with pytest.raises(ValidationError, match="digest_hour"):
        Settings()


def test_an_unknown_time_zone_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVIGATOR_TIMEZONE", "Europe/Budva")
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Budva'"):
        Settings()


def test_the_bot_gets_the_digest_settings(tmp_path, shipped_flows, shipped_knowledge):
    from navigator.app import build_navigator

    navigator = build_navigator(Settings(data_dir=tmp_path, timezone="Europe/Belgrade"),
                                shipped_flows, shipped_knowledge, None)
    assert (navigator.digest_hour, navigator.zone.key) == (9, "Europe/Belgrade")
    navigator.store.close()
