"""`navigator airdrop build|status` and `navigator rewards`: parse, build the pieces, call
navigator.payouts, print. Imports stay inside the commands so the rest of the CLI does
not load stellar-sdk."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from navigator.payouts.building import BuildResult
    from navigator.payouts.config import PayoutsConfig
    from navigator.settings import Settings

airdrop_app = typer.Typer(help="Newcomers' airdrop on Stellar: batches of unsigned "
                          "transactions, and their confirmation.", no_args_is_help=True)

OutOption = Annotated[Path | None, typer.Option(
    "--out", help="Folder for the .xdr files and the summary [default: data/payouts]")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object")]


def register(app: typer.Typer) -> None:
    app.add_typer(airdrop_app, name="airdrop")
    app.command()(rewards)


@airdrop_app.command()
def build(out: OutOption = None, as_json: JsonOption = False,
          submit: Annotated[bool, typer.Option(
              "--submit", help="Sign with NAVIGATOR_PAYOUTS_SECRET_FILE and submit (a "
              "dedicated low-balance account only)")] = False) -> None:
    """Turn every approved airdrop request into as few unsigned transactions as possible
    (at most 100 operations each): DIR/<hash>.xdr, a SEP-7 link each, and a summary
    (DIR/batch-N.txt). Pending batches are checked first: an expired one is replaced."""
    from navigator.payouts.airdrop import build_airdrop
    from navigator.payouts.signing import BotKey, SigningRefused

    settings, config, store, texts = _open()
    key = None
    if submit:
        if settings.payouts_secret_file is None:
            _fail("--submit needs NAVIGATOR_PAYOUTS_SECRET_FILE (a file with the secret key "
                  "of a dedicated low-balance airdrop account)")
        try:
            key = BotKey.from_file(settings.payouts_secret_file)
        except SigningRefused as exc:
            _fail(str(exc))
    service = _signing_service(settings)

    async def run() -> Any:
        async with _horizon(settings, config) as horizon:
            return await build_airdrop(store, horizon, config, texts, _now(),
                                       _zone(settings), _out_dir(settings, out), service, key)

    settlements, result = _run(run, store)
    _print_build(result, texts, as_json, settlements)


@airdrop_app.command()
def status(as_json: JsonOption = False) -> None:
    """Look up every pending transaction on Horizon: a successful one marks its requests
    paid, resolves their tickets and tells each user; a failed or expired one puts its
    requests back to approved and tells the agents the result codes."""
    from navigator.payouts.confirmation import check_pending

    settings, config, store, texts = _open()

    async def run() -> Any:
        async with _horizon(settings, config) as horizon:
            return await check_pending(store, horizon, config, _now(), texts)

    settlements = _run(run, store)
    if as_json:
        print(json.dumps({"transactions": [_settlement_json(s) for s in settlements]}))
        return
    if not settlements:
        _out().print("No pending batches.")
    for settlement in settlements:
        _out().print(_settlement_line(settlement), markup=False)


def rewards(
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM (the desk's "
                                       "time zone)")],
    build_batch: Annotated[bool, typer.Option(
        "--build", help="Also build the unsigned batch that pays the split")] = False,
    out: OutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Agents' contribution in a month from the ticket log (answered, solved, mean
    rating, first-response median; pseudonyms only) and the proposed split of the
    rewards pool (payouts.yaml); --build makes the unsigned batch paying it."""
    from rich.table import Table

    from navigator.payouts.assets import format_amount
    from navigator.payouts.config import DEFAULT_WEIGHTS
    from navigator.payouts.rewards import build_rewards, month_bounds, proposal

    settings, config, store, texts = _open()
    zone = _zone(settings)
    try:
        month_bounds(month, zone)
    except ValueError as exc:
        _fail(str(exc), code=2)
    result = None
    if build_batch:
        async def run() -> Any:
            async with _horizon(settings, config) as horizon:
                return await build_rewards(store, horizon, config, texts, month, _now(), zone,
                                           _out_dir(settings, out))

        result, agents, shares = _run(run, store)
    else:
        with store.transaction() as repo:
            agents, shares = proposal(repo, config, month, zone)
        store.close()
    weights = config.rewards.weights if config.rewards else DEFAULT_WEIGHTS
    rows = [a.row(weights, shares.get(a.agent_id), texts) for a in agents]
    pool = config.rewards.pool if config.rewards else None
    if as_json:
        document: dict[str, Any] = {
            "month": month, "pool": {"code": pool.asset.code, "amount": str(pool.amount)}
            if pool else None, "agents": rows}
        if result is not None:
            document["batch"] = _build_json(result, texts)
        print(json.dumps(document, ensure_ascii=False))
        return
    # Compact, and amounts never cut: people copy them (a pipe is 80 columns wide).
    table = Table(box=None, pad_edge=False, padding=(0, 1),
                  title=f"Agents' rewards, {month}")
    for header in ("agent", "answered", "solved", "rating", "1st answer", "points",
                   pool.asset.code if pool else "amount", "account"):
        table.add_column(header, no_wrap=header != "agent")
    for row in rows:
        account = row["account"]
        table.add_row(str(row["agent"]), str(row["answered"]), str(row["solved"]),
                      f"{row['rating']} ({row['rated']})" if row["rated"] else "—",
                      str(row["first_response"]), str(row["points"]),
                      str(row["amount"] or "—"), f"{account[:4]}…{account[-4:]}" if account
                      else "—")
    out_console = _out()
    if agents:
        out_console.print(table)
    else:
        out_console.print(f"No agent worked on tickets in {month}.")
    unregistered = [str(row["agent"]) for row in rows if not row["account"]]
    if unregistered:
        out_console.print(f"No payout account (/myaccount G… in the agents' chat), left out "
                          f"of the split: {', '.join(unregistered)}.", markup=False)
    if pool is None:
        out_console.print(f"The pool is not set (rewards.pool in {config.path}): no split.")
    elif shares:
        out_console.print(f"Pool {format_amount(pool.amount)} {pool.asset.code}: split "
                          f"among {len(shares)} agents, {format_amount(sum(shares.values()))} "
                          "in total.", markup=False)
    if result is not None:
        _print_build(result, texts, False, [])


# The pieces --------------------------------------------------------------------------


def _open() -> tuple[Settings, PayoutsConfig, Any, Any]:
    from navigator.cli import _settings
    from navigator.payouts.config import load_payouts
    from navigator.problems import ContentError
    from navigator.store import Store
    from navigator.texts import Texts

    settings = _settings()
    try:
        config = load_payouts(settings.payouts_file)
    except ContentError as exc:
        for problem in exc.problems:
            _err().print(str(problem), markup=False)
        _fail(f"{settings.payouts_file} cannot be used (see `navigator check --payouts "
              f"{settings.payouts_file}`)")
    return settings, config, Store(settings.effective_database_url), Texts()


def _horizon(settings: Settings, config: PayoutsConfig):  # -> HorizonClient
    from navigator.payouts.horizon import HorizonClient

    return HorizonClient(settings.horizon_url or config.horizon_url)


def _signing_service(settings: Settings):  # -> EurmtlSigningService | None
    from navigator.payouts.desk import signing_service

    try:
        return signing_service(settings)
    except ValueError as exc:
        _fail(str(exc))


def _run(work: Any, store: Any) -> Any:
    """Run `work()`, the async part; the failures people can act on become one clear
    message."""
    from navigator.payouts.building import PayoutError
    from navigator.payouts.horizon import HorizonUnavailable
    from navigator.payouts.signing import SigningRefused
    from navigator.problems import ContentError

    try:
        return asyncio.run(work())
    except HorizonUnavailable as exc:
        _fail(f"Horizon is unavailable ({exc}). Nothing was changed; try again later.")
    except ContentError as exc:
        for problem in exc.problems:
            _err().print(str(problem), markup=False)
        _fail("the payouts configuration is not ready for this (see above)")
    except (PayoutError, SigningRefused) as exc:
        _fail(f"{exc}. Nothing was changed.")
    finally:
        store.close()


def _print_build(result: BuildResult, texts: Any, as_json: bool, settlements: list) -> None:
    from navigator.payouts.building import skip_message

    if as_json:
        document = _build_json(result, texts)
        document["settled"] = [_settlement_json(s) for s in settlements]
        print(json.dumps(document, ensure_ascii=False))
    else:
        console = _out()
        for settlement in settlements:
            console.print(_settlement_line(settlement), markup=False)
        if result.summary:
            console.print(result.summary, markup=False)
            console.print(f"\nFiles: {result.summary_file}, "
                          + ", ".join(str(p) for p in result.files.values()), markup=False)
            for tx_hash, url in result.signing_urls.items():
                console.print(f"Signing service: {url} ({tx_hash[:12]}…)", markup=False)
        elif not result.plan.shortfalls:
            console.print("Nothing to pay: no approved requests." if not result.skipped
                          else "Nothing to pay now.")
            for skip in result.skipped:
                console.print(f"  {skip.payout.label}: {skip_message(texts, skip)}",
                              markup=False)
        for note in result.notes:
            _err().print(note, markup=False)
    if result.plan.shortfalls:
        missing = "; ".join(f"{s.asset}: needs {s.needed}, has {s.available}"
                            for s in result.plan.shortfalls)
        _fail(f"No batch: the paying account lacks funds ({missing}). The agents were told; "
              "the requests stay approved.")


def _build_json(result: BuildResult, texts: Any) -> dict[str, Any]:
    from navigator.payouts.building import result_json

    return result_json(result, texts)


def _settlement_json(settlement: Any) -> dict[str, Any]:
    return {"batch": settlement.batch_id, "position": settlement.position,
            "hash": settlement.hash, "status": settlement.status,
            "requests": settlement.requests, "result": settlement.detail}


def _settlement_line(settlement: Any) -> str:
    what = {"pending": "waiting for signatures", "success": "paid",
            "failed": f"failed ({settlement.detail}); its requests are approved again",
            "expired": "expired unsubmitted; its requests are approved again"}
    return (f"batch #{settlement.batch_id}, transaction {settlement.position} "
            f"{settlement.hash[:12]}…: {what.get(settlement.status, settlement.status)}"
            f"{f' ({settlement.requests} requests)' if settlement.requests else ''}")


def _now() -> datetime:
    return datetime.now(UTC)


def _zone(settings: Settings):  # -> ZoneInfo
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.timezone)


def _out_dir(settings: Settings, out: Path | None) -> Path:
    return out if out is not None else settings.data_dir / "payouts"


def _out():  # -> Console
    from navigator.cli import out

    return out


def _err():  # -> Console
    from navigator.cli import err

    return err


def _fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    _err().print(f"[red]Error:[/red] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)
