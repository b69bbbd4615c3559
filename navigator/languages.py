"""The bot's languages, and which one a person gets: Russian first, English second."""

from __future__ import annotations

LANGUAGES = ("ru", "en")
FALLBACK_LANGUAGE = "ru"  # a text missing in a language is shown in this one


def language_for(language_code: str | None, default: str) -> str:
    """The bot's language for a Telegram language code (what the person's app is set
    to): English for English, Russian for the languages of people who read Russian
    (Ukrainian, Belarusian, Kazakh), `default` for anything else or nothing."""
    code = (language_code or "").lower()
    if code.startswith("en"):
        return "en"
    if code.startswith(("ru", "uk", "be", "kk")):
        return "ru"
    return default
