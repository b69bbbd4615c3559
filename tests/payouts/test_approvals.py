"""Agents' payout decisions, as the desk calls them: approving an airdrop request,
and /myaccount for the account rewards go to."""

from __future__ import annotations

from stellar_sdk import Keypair

from navigator.events import AgentRef, AgentsText, NotifyAgents, SendText, UserRef
from navigator.handling import Navigator
from navigator.payouts.approvals import approve, set_payout_account
from navigator.payouts.ledger import AgentPayoutAccount, Ledger
from navigator.texts import Texts
from tests.helpers import agent_says, say, to_chat
from tests.payouts.helpers import NOW, OLGA, airdrop_tickets, request_airdrop, requests

ANNA = UserRef(1001, "Анна", "anna_m", "ru")
JOHN = UserRef(1004, "John", None, "en")
ACCOUNT = Keypair.random().public_key


def approve_ticket(desk: Navigator, ticket_id: int, agent: AgentRef = OLGA) -> list:
    with desk.store.transaction() as repo:
        return approve(repo, ticket_id, agent, NOW, Texts())


def ticket_of(desk: Navigator, ticket_id: int = 1):
    with desk.store.transaction() as repo:
        return repo.ticket(ticket_id)


class TestApprove:
    def test_the_user_is_told_and_the_request_waits_for_the_next_batch(self, desk):
        request_airdrop(desk, ANNA, ACCOUNT)
        replies = approve_ticket(desk, 1)
        [to_anna] = [r for r in replies if isinstance(r, SendText)]
        assert to_anna.user_id == ANNA.id
        assert "Заявка №1 на эйрдроп одобрена. Токены придут со следующей выплатой" \
            in to_anna.text
        assert "Ольга: заявка №1 одобрена к выплате на " \
               f"{ACCOUNT[:4]}…{ACCOUNT[-4:]}" in to_chat(replies)
        assert [r.ticket_id for r in replies if isinstance(r, NotifyAgents)] == [1]
        [request] = requests(desk.store)
        assert (request.ticket_id, request.user_id, request.account, request.status,
                request.approved_by) == (1, ANNA.id, ACCOUNT, "approved", OLGA.id)
        ticket = ticket_of(desk)
        assert (ticket.status, ticket.agent_id) == ("waiting_user", OLGA.id)

    def test_an_english_speaker_reads_it_in_english(self, desk):
        request_airdrop(desk, JOHN, ACCOUNT)
        [to_john] = [r for r in approve_ticket(desk, 1) if isinstance(r, SendText)]
        assert "Your airdrop request #1 is approved" in to_john.text

    def test_the_approval_is_in_the_tickets_log_with_who_did_it(self, desk):
        request_airdrop(desk, ANNA, ACCOUNT)
        approve_ticket(desk, 1)
        with desk.store.transaction() as repo:
            last = repo.ticket_log(1)[-1]
        assert (last.kind, last.to_status, last.who, last.text) == (
            "status", "waiting_user", f"agent:{OLGA.id}", "approved")

    def test_a_request_nobody_took_is_taken_by_its_approver_first(self, desk):
        # The desk's table lets a ticket wait for the network only once someone has it.
        request_airdrop(desk, ANNA, ACCOUNT)
        approve_ticket(desk, 1)
        with desk.store.transaction() as repo:
            changes = [(e.from_status, e.to_status, e.who, e.text)
                       for e in repo.ticket_log(1) if e.kind == "status"]
        assert changes[-2:] == [("open", "claimed", f"agent:{OLGA.id}", None),
                                ("claimed", "waiting_user", f"agent:{OLGA.id}", "approved")]

    def test_twice_is_once(self, desk):
        request_airdrop(desk, ANNA, ACCOUNT)
        approve_ticket(desk, 1)
        replies = approve_ticket(desk, 1)
        assert "уже одобрена к выплате (сейчас: ждёт пакета)" in to_chat(replies)
        assert not [r for r in replies if isinstance(r, SendText)]
        assert len(requests(desk.store)) == 1

    def test_a_question_is_not_an_airdrop_request(self, desk):
        say(desk, ANNA, "/human")
        say(desk, ANNA, "Как открыть линию доверия к EURMTL?")
        assert "не заявка на эйрдроп" in to_chat(approve_ticket(desk, 1))
        assert requests(desk.store) == []

    def test_a_resolved_request_is_not_approved(self, desk):
        request_airdrop(desk, ANNA, ACCOUNT)
        agent_says(desk, OLGA, "/refuse Этот аккаунт уже получал эйрдроп", ticket=1)
        assert "resolved" in to_chat(approve_ticket(desk, 1))
        assert requests(desk.store) == []

    def test_an_unknown_ticket_is_named(self, desk):
        [reply] = approve_ticket(desk, 99)
        assert isinstance(reply, AgentsText) and "99" in reply.text

    def test_one_account_gets_the_airdrop_once(self, desk):
        # Two requests for one account (the flow refuses a second one; older data may not).
        airdrop_tickets(desk.store, [(ANNA, ACCOUNT), (JOHN, ACCOUNT)])
        approve_ticket(desk, 1)
        replies = approve_ticket(desk, 2)
        assert f"Счёт {ACCOUNT[:4]}…{ACCOUNT[-4:]} уже получает или получил эйрдроп по " \
               "заявке №1" in to_chat(replies)
        assert [r.ticket_id for r in requests(desk.store)] == [1]

    def test_an_account_whose_request_was_withdrawn_may_be_approved_again(self, desk):
        request_airdrop(desk, ANNA, ACCOUNT)
        approve_ticket(desk, 1)
        say(desk, ANNA, "/cancel")  # withdrawn before it was paid
        airdrop_tickets(desk.store, [(JOHN, ACCOUNT)])
        approve_ticket(desk, 2)
        assert [(r.ticket_id, r.status) for r in requests(desk.store)] == [
            (1, "approved"), (2, "approved")]

    def test_a_request_without_a_valid_account_cannot_be_approved(self, desk):
        airdrop_tickets(desk.store, [(ANNA, "GNOTAREALACCOUNT")])
        assert "нет правильного адреса Stellar" in to_chat(approve_ticket(desk, 1))


class TestMyAccount:
    def test_the_agent_registers_the_account_rewards_go_to(self, desk):
        with desk.store.transaction() as repo:
            replies = set_payout_account(repo, OLGA, f" {ACCOUNT} ", NOW, Texts())
        assert f"Ольга: вознаграждения будут приходить на {ACCOUNT}" in to_chat(replies)
        with desk.store.transaction() as repo:
            assert Ledger(repo.session).payout_account(OLGA.id) == ACCOUNT
            replies = set_payout_account(repo, OLGA, "", NOW, Texts())
        assert f"Сейчас записан {ACCOUNT}" in to_chat(replies)

    def test_a_wrong_address_is_refused(self, desk):
        with desk.store.transaction() as repo:
            replies = set_payout_account(repo, OLGA, "GABC", NOW, Texts())
            assert "Это не адрес Stellar" in to_chat(replies)
            assert repo.session.get(AgentPayoutAccount, OLGA.id) is None

    def test_a_secret_key_is_refused_loudly_and_never_stored(self, desk):
        secret = Keypair.random().secret
        with desk.store.transaction() as repo:
            replies = set_payout_account(repo, OLGA, secret, NOW, Texts())
            assert "Это секретный ключ" in to_chat(replies)
            assert secret not in to_chat(replies)
            assert repo.session.get(AgentPayoutAccount, OLGA.id) is None
