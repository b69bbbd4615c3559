"""The airdrop desk: payouts from the agents' chat and in the running bot.

- `/airdrop build` and `/airdrop status` in the agents' chat: the engine acknowledges at
  once (`airdrop_command`, a plain decision); the work talks to Horizon, so the
  transport hands it to `PayoutsDesk.run`, which does what `navigator airdrop build` /
  `status` do and posts the outcome (the batch itself is posted by the build: summary
  and files).
- `PayoutsDesk.check`, every few minutes in `navigator run`: the pending transactions
  are looked up on Horizon, and what the network decided is settled (users told, tickets
  resolved, agents told of failures).

Every message goes through the outbox, in the transaction of the change it reports.
This module is an edge: it builds the Horizon client and the signing service from the
settings, and turns what stops the work into a message for the agents; the decisions are
in `airdrop` and `confirmation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.events import AgentsText, Reply
from navigator.outbox import enqueue
from navigator.payouts.building import BuildResult, PayoutError, skip_message
from navigator.payouts.config import PayoutsConfig, load_payouts
from navigator.payouts.confirmation import Settlement
from navigator.payouts.horizon import Horizon, HorizonClient, HorizonUnavailable
from navigator.payouts.ledger import PENDING, Ledger
from navigator.payouts.signing import EurmtlSigningService, SigningRefused
from navigator.problems import ContentError
from navigator.settings import Settings
from navigator.store import Store
from navigator.texts import Texts

log = logging.getLogger(__name__)

BUILD, STATUS = "build", "status"
HorizonFactory = Callable[[str], AbstractAsyncContextManager[Horizon]]


def airdrop_action(args: str) -> str | None:
    """`build` or `status` from `/airdrop build`; None for anything else."""
    words = args.strip().lower().split()
    return words[0] if words and words[0] in (BUILD, STATUS) else None


def airdrop_command(texts: Texts, args: str) -> list[Reply]:
    """`/airdrop build|status`: acknowledged (the work follows at the edge), or how to
    use it."""
    action = airdrop_action(args)
    key = "agents_airdrop_started" if action else "agents_airdrop_usage"
    return [AgentsText(texts.say(AGENTS_LANGUAGE, key, action=action).strip())]


def build_replies(texts: Texts, result: BuildResult) -> list[Reply]:
    """What `/airdrop build` adds to what the build posted itself (a batch, or the
    paying account's shortfall): when there was nothing to pay, why."""
    if result.batch_id is not None or result.plan.shortfalls:
        return []
    skipped = [{"label": s.payout.label, "message": skip_message(texts, s)}
               for s in result.skipped]
    return [AgentsText(texts.say(AGENTS_LANGUAGE, "agents_airdrop_nothing",
                                 skipped=skipped).strip())]


def status_replies(texts: Texts, settlements: list[Settlement]) -> list[Reply]:
    """`/airdrop status`: what still waits for its signatures (each settled transaction
    was announced when it was settled)."""
    waiting = [{"batch": s.batch_id, "position": s.position, "requests": s.requests}
               for s in settlements if s.status == PENDING]
    if not waiting and settlements:
        return []
    return [AgentsText(texts.say(AGENTS_LANGUAGE, "agents_airdrop_waiting",
                                 waiting=waiting).strip())]


def failure_reply(texts: Texts, reason: str, detail: str) -> Reply:
    """What stopped the work (`reason`: "horizon", "config", "refused"), or what went
    wrong after the batch was made ("note")."""
    return AgentsText(texts.say(AGENTS_LANGUAGE, "agents_airdrop_failed", reason=reason,
                                detail=detail).strip())


def signing_service(settings: Settings) -> EurmtlSigningService | None:
    """The configured signing service, or None. ValueError: a URL without a token."""
    if not settings.signing_service_url:
        return None
    token = settings.signing_service_token
    if token is None or not token.get_secret_value():
        raise ValueError("NAVIGATOR_SIGNING_SERVICE_URL is set without "
                         "NAVIGATOR_SIGNING_SERVICE_TOKEN")
    return EurmtlSigningService(settings.signing_service_url, token.get_secret_value())


class PayoutsDesk:
    """The payouts' work in a running bot, for the agents' chat and the periodic check.
    `horizon` makes the Horizon client from its URL (tests: a client of their fake)."""

    def __init__(self, settings: Settings, store: Store, texts: Texts | None = None,
                 horizon: HorizonFactory = HorizonClient,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings, self.store, self.texts = settings, store, texts or Texts()
        self.horizon, self.clock = horizon, clock
        self.zone = ZoneInfo(settings.timezone)

    def configured(self) -> bool:
        """Payouts are set up here (payouts.yaml exists): the periodic check runs."""
        return self.settings.payouts_file.exists()

    def _config(self) -> PayoutsConfig:
        return load_payouts(self.settings.payouts_file)

    def _horizon(self, config: PayoutsConfig) -> AbstractAsyncContextManager[Horizon]:
        return self.horizon(self.settings.horizon_url or config.horizon_url)

    async def run(self, action: str) -> list[Reply]:
        """Do `/airdrop build` or `/airdrop status` and post the outcome (the replies
        are in the outbox when this returns; also returned). Failures become a message
        to the agents, never an exception."""
        from navigator.payouts.airdrop import build_airdrop
        from navigator.payouts.confirmation import check_pending

        texts = self.texts
        try:
            config = self._config()
            async with self._horizon(config) as horizon:
                if action == BUILD:
                    _, result = await build_airdrop(
                        self.store, horizon, config, texts, self.clock(), self.zone,
                        self.settings.data_dir / "payouts", signing_service(self.settings))
                    replies = build_replies(texts, result)
                    replies += [failure_reply(texts, "note", note) for note in result.notes]
                else:
                    replies = status_replies(texts, await check_pending(
                        self.store, horizon, config, self.clock(), texts))
        except HorizonUnavailable as exc:
            replies = [failure_reply(texts, "horizon", str(exc))]
        except ContentError as exc:
            replies = [failure_reply(texts, "config",
                                     "; ".join(str(p) for p in exc.problems[:5]))]
        except (PayoutError, SigningRefused, ValueError) as exc:
            replies = [failure_reply(texts, "refused", str(exc))]
        with self.store.transaction() as repo:
            enqueue(repo, replies)
        return replies

    async def check(self) -> list[Settlement]:
        """One periodic check of the pending transactions: nothing to do (no Horizon
        call) when none is pending. HorizonUnavailable and a broken payouts.yaml are
        raised for the caller to log; the next check tries again."""
        from navigator.payouts.confirmation import check_pending

        with self.store.transaction() as repo:
            if not Ledger(repo.session).pending_batches():
                return []
        config = self._config()
        async with self._horizon(config) as horizon:
            return await check_pending(self.store, horizon, config, self.clock(), self.texts)
