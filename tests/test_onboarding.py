"""The shipped onboarding flows, driven through the terminal chat the way a newcomer would."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from sqlalchemy import select
from stellar_sdk import Keypair

from navigator.events import UserRef
from navigator.handling import Navigator
from navigator.store import Store
from navigator.store.models import Ticket
from navigator.transports.console import ConsoleChat

ACCOUNT = Keypair.random().public_key


class Newcomer:
    """A user at the terminal: types lines, reads what the bot printed since."""

    def __init__(self, navigator: Navigator, user_id: int = 501, name: str = "Мила"):
        self.navigator = navigator
        self.output = io.StringIO()
        self.chat = ConsoleChat(navigator, UserRef(user_id, name, language_code="ru"),
                                Console(file=self.output, width=200), echo_input=True)

    def types(self, *lines: str) -> str:
        start = self.output.tell()
        for line in lines:
            self.chat.handle_line(line)
        return self.output.getvalue()[start:]

    def presses(self, label: str) -> str:
        for number, button in enumerate(self.chat.buttons, start=1):
            if label.lower() in button.label.lower():
                return self.types(str(number))
        raise AssertionError(f"no button {label!r} in {[b.label for b in self.chat.buttons]}")

    def tickets(self) -> list[Ticket]:
        with self.navigator.store.transaction() as repo:
            return list(repo.session.scalars(select(Ticket).order_by(Ticket.id)))


@pytest.fixture
def mila(make_navigator) -> Newcomer:
    return Newcomer(make_navigator())


class TestNewcomerPath:
    @pytest.mark.parametrize(("goal", "has_wallet", "expected"), [
        ("Переезд в Черногорию", "нет", ["Заведите кошелёк Stellar", "Переезд в Черногорию",
                                          "Встречи и митапы"]),
        ("Вступить в Ассоциацию", "да", ["✅ Вступить — по шагам", "Токен участника MTLAP"]),
        ("Вложиться или пользоваться токенами", "да", ["не инвестиционный совет",
                                                        "Обмен на DEX"]),
        ("Бизнес", "да", ["Корпоративное участие MTLAC", "Краудфандинг MTLCrowd"]),
        ("Просто интересно", "да", ["Что почитать о Монтелиберо"]),
    ])
    def test_two_questions_lead_to_a_tailored_path(self, mila, goal, has_wallet, expected):
        mila.types("/start")
        assert "Что вас привело в Монтелиберо?" in mila.presses("Я здесь впервые")
        assert "У вас уже есть кошелёк" in mila.presses(goal)
        path = mila.types(has_wallet)
        for fragment in expected:
            assert fragment in path
        if has_wallet == "да":
            assert "Заведите кошелёк Stellar" not in path

    def test_an_article_on_the_path_offers_the_way_back_to_it(self, mila):
        mila.types("/start")
        mila.presses("Я здесь впервые")
        mila.presses("Бизнес")
        mila.types("да")
        article = mila.presses("Корпоративное участие MTLAC")
        assert "Источник" not in article and "MTLAC" in article
        assert "Корпоративное участие MTLAC" in mila.presses("Вернуться к «Я здесь впервые»")

    def test_a_question_in_the_middle_is_answered_and_the_flow_waits(self, mila):
        mila.types("/start")
        mila.presses("Я здесь впервые")
        answer = mila.types("а как создать кошелёк?")
        assert "Источник: «Как создать кошелёк Stellar»" in answer
        assert "Что вас привело в Монтелиберо?" in mila.presses("Вернуться к «Я здесь впервые»")
        assert "У вас уже есть кошелёк" in mila.presses("Бизнес")

    def test_an_old_button_is_not_answered_twice(self, mila):
        mila.types("/start")
        mila.presses("Я здесь впервые")
        old_buttons = mila.chat.buttons
        mila.presses("Бизнес")  # the question moved on to "do you have a wallet?"
        mila.chat.buttons = old_buttons
        again = mila.presses("Просто интересно")
        assert "Эта кнопка из старого сообщения" in again
        assert "У вас уже есть кошелёк" in again, "the current question is shown again"
        assert "Что почитать" not in again


class TestJoining:
    def walk_to_the_account_question(self, user: Newcomer) -> str:
        user.types("/start")
        user.presses("Ассоциация (MTLA)")
        assert "нужны четыре вещи" in user.presses("Вступить — по шагам")
        user.types("да")
        return user.types("да")

    def test_the_checklist_collects_a_valid_account_and_hands_over_a_join_request(self, mila):
        assert "Пришлите публичный адрес" in self.walk_to_the_account_question(mila)
        wrong = mila.types("GDQWERTY123")
        assert "Это не похоже на адрес аккаунта Stellar" in wrong
        assert "Позвать человека" in wrong or "Передать человеку" in wrong
        assert "линию доверия к токену MTLAP" in mila.types(f"мой адрес {ACCOUNT}")
        mila.types("да")
        confirm = mila.types("@petar_m")
        assert ACCOUNT in confirm and "@petar_m" in confirm
        done = mila.types("да")
        assert "заявка №1" in done
        assert "Заявка №1</b> · join" in done or "Заявка №1 · join" in done
        [ticket] = mila.tickets()
        assert ticket.type == "join"
        assert ticket.context["variables"] == {"agreement": True, "has_wallet": True,
                                               "account": ACCOUNT, "trustline": True,
                                               "recommender": "@petar_m", "confirmed": True}
        assert ACCOUNT in ticket.question

    def test_a_pasted_secret_key_is_refused_with_a_warning(self, mila):
        self.walk_to_the_account_question(mila)
        secret = Keypair.random().secret
        warning = mila.types(secret)
        assert "Вы прислали секретный ключ" in warning and "скомпрометированным" in warning
        assert "Пришлите публичный адрес" in warning.split("скомпрометированным")[1], \
            "the account question is asked again"
        assert secret not in warning
        assert mila.tickets() == []

    def test_no_trustline_yet_shows_how_and_then_continues(self, mila):
        self.walk_to_the_account_question(mila)
        mila.types(ACCOUNT)
        help_text = mila.types("нет")
        assert "Без линии доверия" in help_text
        assert "Кто из участников" in mila.presses("Линия открыта")

    def test_not_confirming_sends_nothing(self, mila):
        self.walk_to_the_account_question(mila)
        mila.types(ACCOUNT, "да", "нет")
        assert "заявку не отправляю" in mila.types("нет")
        assert mila.tickets() == []

    def test_a_restart_in_the_middle_continues_from_the_store(self, make_navigator):
        before = Newcomer(make_navigator())
        self.walk_to_the_account_question(before)
        before.navigator.store.close()  # the bot process dies here
        after = Newcomer(make_navigator())  # a new process, the same database
        assert "линию доверия к токену MTLAP" in after.types(ACCOUNT)

    def test_someone_back_days_later_is_asked_to_continue_or_start_over(
            self, make_navigator, shipped_flows, shipped_knowledge, shipped_searcher,
            database_url):
        now = [datetime(2026, 11, 21, 10, tzinfo=UTC)]
        navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                              shipped_searcher, clock=lambda: now[0])
        user = Newcomer(navigator)
        self.walk_to_the_account_question(user)
        now[0] += timedelta(days=3)
        back = user.types(ACCOUNT)  # an answer, three days later: not taken silently
        assert "С возвращением! В прошлый раз мы остановились в разделе «Вступление" in back
        assert "Пришлите публичный адрес" in user.presses("Продолжить")
        assert "линию доверия к токену MTLAP" in user.types(ACCOUNT)
        now[0] += timedelta(days=3)
        back = user.types("а сколько стоит открыть линию доверия?")
        assert "Источник" in back or "Возможно, вы об этом" in back, "the question is answered"
        assert "С возвращением!" in back
        assert "Здравствуйте, Мила!" in user.presses("Главное меню"), "or start over"
        navigator.store.close()


def test_a_main_menu_button_pressed_days_later_just_works(shipped_flows, shipped_knowledge,
                                                         shipped_searcher, database_url):
    now = [datetime(2026, 11, 21, 10, tzinfo=UTC)]
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                          shipped_searcher, clock=lambda: now[0])
    user = Newcomer(navigator)
    user.types("/start")
    user.presses("Кошелёк и токены")
    now[0] += timedelta(days=5)
    article = user.presses("Линии доверия")
    assert "С возвращением" not in article and "Линии доверия в Stellar" in article
    navigator.store.close()


class TestAirdrop:
    def request(self, user: Newcomer, account: str = ACCOUNT) -> str:
        user.types("/start")
        assert "Пришлите публичный адрес" in user.presses("Эйрдроп для новичков")
        return user.types(account)

    def test_a_valid_account_becomes_an_airdrop_request(self, mila):
        assert "заявка №1" in self.request(mila)
        [ticket] = mila.tickets()
        assert (ticket.type, ticket.context["variables"]) == ("airdrop", {"account": ACCOUNT})

    def test_a_second_request_from_the_same_person_is_refused_up_front(self, mila):
        self.request(mila)
        with mila.navigator.store.transaction() as repo:  # the agents handled it
            repo.session.get(Ticket, 1).status = "resolved"
        mila.types("/menu")
        again = mila.presses("Эйрдроп для новичков")
        assert "Вы уже подавали заявку на эйрдроп" in again
        assert "Пришлите публичный адрес" not in again, "refused before asking anything"

    def test_a_withdrawn_request_does_not_count(self, mila):
        self.request(mila)
        assert "Заявка №1 отозвана" in mila.types("/cancel")
        assert "заявка №2" in self.request(mila)

    def test_the_same_account_from_another_person_is_refused(self, make_navigator, mila):
        self.request(mila)
        other = Newcomer(mila.navigator, user_id=777, name="Марко")
        refused = self.request(other)
        assert "уже была подана (№1)" in refused
        assert len(mila.tickets()) == 1
