"""The bot's command menus, per scope and language, and setting them in Telegram."""

from __future__ import annotations

from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
)

# The command menus, per scope and language. The engine answers every private command
# listed here. Agents' commands (/queue, /take, ...) come with the desk (issue 6);
# until then the agents' chat gets an empty menu.
USER_COMMANDS = {
    "ru": [("start", "Главное меню"), ("help", "Что я умею"),
           ("human", "Написать человеку"), ("cancel", "Отменить текущий шаг или заявку"),
           ("lang", "Язык: /lang ru или /lang en"),
           ("forgetme", "Удалить всё, что бот знает обо мне")],
    "en": [("start", "Main menu"), ("help", "What I can do"),
           ("human", "Talk to a person"), ("cancel", "Cancel the current step or request"),
           ("lang", "Language: /lang en or /lang ru"),
           ("forgetme", "Erase everything the bot knows about me")],
}
AGENT_COMMANDS: dict[str, list[tuple[str, str]]] = {
    "ru": [("queue", "Открытые заявки, сначала старые"), ("take", "Взять заявку"),
           ("resolve", "Заявка решена: спросить оценку"),
           ("done", "Запрос выполнен: сообщить и спросить оценку"),
           ("refuse", "Отказать по запросу: /refuse причина"),
           ("reopen", "Вернуть заявку в работу"),
           ("note", "Заметка для агентов (пользователь не видит)"),
           ("messages", "Сообщения пользователя из базы бота"),
           ("myname", "Псевдоним, который видят пользователи"),
           ("stats", "Статистика: сегодня, 7 и 30 дней"),
           ("report", "Отчёт файлом: /report, /report 90, /report 2026-11"),
           ("find", "Найти статью в базе знаний"),
           ("ignore", "Больше не передавать этого пользователя (спам)"),
           ("approve", "Одобрить выплату эйрдропа по заявке"),
           ("airdrop", "Эйрдроп: /airdrop build — пакет, /airdrop status — проверка"),
           ("myaccount", "Счёт Stellar для вознаграждений: /myaccount G…")],
    "en": [("queue", "Open requests, oldest first"), ("take", "Take the request"),
           ("resolve", "Resolved: ask for a rating"),
           ("done", "Request fulfilled: tell the user, ask for a rating"),
           ("refuse", "Refuse the request: /refuse reason"),
           ("reopen", "Work on it again"),
           ("note", "A note for agents (the user does not see it)"),
           ("messages", "The user's messages from the bot's storage"),
           ("myname", "The pseudonym users see"),
           ("stats", "Statistics: today, 7 and 30 days"),
           ("report", "The report as a file: /report, /report 90, /report 2026-11"),
           ("find", "Find an article in the knowledge base"),
           ("ignore", "Stop relaying this user (spam)"),
           ("approve", "Approve an airdrop request's payment"),
           ("airdrop", "Airdrop: /airdrop build a batch, /airdrop status check it"),
           ("myaccount", "Your Stellar account for rewards: /myaccount G…")],
}


async def set_commands(bot: Any, agents_chat_id: int | None, default_language: str) -> None:
    """The command menus: users' commands in private chats, per language; the agents'
    own menu in their chat; nothing in other groups."""
    private = BotCommandScopeAllPrivateChats()
    for language, commands in USER_COMMANDS.items():
        await bot.set_my_commands([BotCommand(*c) for c in commands], scope=private,
                                  language_code=language)
    fallback = USER_COMMANDS[default_language]
    await bot.set_my_commands([BotCommand(*c) for c in fallback], scope=private)
    await bot.delete_my_commands(scope=BotCommandScopeDefault())
    if agents_chat_id is not None:
        agents = BotCommandScopeChat(agents_chat_id)
        for language in ("", "ru", "en"):
            commands = AGENT_COMMANDS[language or default_language]
            if commands:
                await bot.set_my_commands([BotCommand(*c) for c in commands],
                                          scope=agents, language_code=language or None)
            else:
                await bot.delete_my_commands(scope=agents, language_code=language or None)
