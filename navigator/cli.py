"""The `navigator` command: a thin shell that parses, builds the pieces, and calls them.

One idea, the command line, in some 500 lines: a dozen commands, each a short function
that reads its options and calls the library (as datasette's cli.py does); they share
the option types, the settings and the consoles defined at the top, which a split by
command would scatter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from navigator.payouts.commands import register as register_payouts
from navigator.problems import ContentError
from navigator.settings import Settings

app = typer.Typer(
    help="Navigator: the onboarding navigator, FAQ bot and human-fallback desk of MTL Support.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
# A terminal wraps at word boundaries; piped transcripts keep one line per line.
out.soft_wrap = not out.is_terminal
err = Console(stderr=True, highlight=False, soft_wrap=True)

KnowledgeOption = Annotated[
    Path | None, typer.Option("--knowledge", help="Knowledge folder [default: knowledge/]")
]
IndexOption = Annotated[
    Path | None, typer.Option("--index", help="Index folder [default: data/index]")
]
FlowsOption = Annotated[Path | None, typer.Option("--flows", help="Flows folder [default: flows/]")]


def _settings(**overrides: Any) -> Settings:
    """Settings from env/.env/navigator.yaml, with command-line options on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            err.print(f"[red]Invalid setting[/red] {where}: {error['msg']}")
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    return settings


def _content(settings: Settings):  # -> tuple[FlowSet, KnowledgeBase]
    from navigator.app import load_content

    try:
        return load_content(settings)
    except ContentError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print("[red]The flows have errors; fix them (see `navigator check`).[/red]")
        raise typer.Exit(1) from None


def _searcher(settings: Settings, knowledge, batch_queries: bool = False):  # -> Searcher
    from navigator.app import open_searcher
    from navigator.embedding_model import ModelUnavailableError

    try:
        return open_searcher(settings, knowledge, on_rebuild=lambda why: err.print(
            f"[yellow]Building the search index ({why})…[/yellow]", markup=True),
            batch_queries=batch_queries)
    except ModelUnavailableError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def chat(
    knowledge: KnowledgeOption = None,
    index: IndexOption = None,
    flows: FlowsOption = None,
    user_name: Annotated[str | None, typer.Option(help="The name you chat as")] = None,
    agent_name: Annotated[str, typer.Option(
        help="The pseudonym of the agent you play with lines starting '>> '")] = "Агент",
) -> None:
    """Talk to the bot in this terminal. Type a number to press a button; /help lists
    the commands; Ctrl-D (or the end of piped input) quits. A line starting with '>> '
    is an agent in the agents' chat: '>> text' answers the newest ticket, '>> #12 text'
    ticket 12, '>> /resolve' (/take, /done, /refuse reason, /note, /queue, /reopen) acts
    on it."""
    from navigator.app import build_navigator, open_searcher
    from navigator.events import UserRef
    from navigator.payouts.desk import PayoutsDesk
    from navigator.search import BackgroundSearcher
    from navigator.transports.console import ConsoleChat

    settings = _settings(knowledge_dir=knowledge, index_dir=index, flows_dir=flows,
                         console_user_name=user_name)
    flow_set, knowledge_base = _content(settings)
    # The model loads while the user reads the menu; the first question waits for it.
    searcher = BackgroundSearcher(lambda: open_searcher(
        settings, knowledge_base,
        on_rebuild=lambda why: err.print(f"Строю поисковый индекс ({why})…", markup=False)))
    navigator = build_navigator(settings, flow_set, knowledge_base, searcher)
    interactive = sys.stdin.isatty()
    user = UserRef(settings.console_user_id, settings.console_user_name,
                   language_code=settings.default_language)
    console_chat = ConsoleChat(navigator, user, out, echo_input=not interactive,
                               search_ready=(lambda: searcher.ready) if interactive else None,
                               agent_pseudonym=agent_name,
                               payouts=PayoutsDesk(settings, navigator.store, navigator.texts))
    try:
        if interactive:
            out.print("[dim]Navigator — терминальный чат. /start — меню, /help — команды, "
                      "Ctrl-D — выход.[/dim]")
            console_chat.run(_prompt_lines())
        else:
            console_chat.run(sys.stdin)
    except KeyboardInterrupt:
        out.print()
    except Exception as exc:  # a model or database failure: one clear line, not a traceback
        logging.getLogger(__name__).debug("chat failed", exc_info=True)
        err.print(f"[red]Error:[/red] {exc}", markup=True)
        raise typer.Exit(1) from None
    finally:
        navigator.store.close()


@app.command()
def run(
    webhook_url: Annotated[str | None, typer.Option(
        "--webhook-url", help="Public HTTPS URL Telegram posts updates to (webhook mode); "
        "omit for long polling")] = None,
    listen: Annotated[str, typer.Option(help="Webhook mode: address to listen on")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option(help="Webhook mode: port to listen on")] = 8443,
    knowledge: KnowledgeOption = None,
    index: IndexOption = None,
    flows: FlowsOption = None,
) -> None:
    """Run the Telegram bot: long polling by default, or a webhook server.

    Needs NAVIGATOR_TELEGRAM_TOKEN and NAVIGATOR_AGENTS_CHAT_ID. In webhook mode every
    request must carry NAVIGATOR_WEBHOOK_SECRET (random per start if unset). Stops
    cleanly on Ctrl-C or SIGTERM; undelivered replies are sent after the next start.
    """
    import asyncio
    import signal

    from navigator.app import build_navigator
    from navigator.transports.telegram import TelegramBot, Webhook, new_webhook_secret

    settings = _settings(knowledge_dir=knowledge, index_dir=index, flows_dir=flows)
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        err.print("[red]Set NAVIGATOR_TELEGRAM_TOKEN[/red] (the token @BotFather gave you).")
        raise typer.Exit(2)
    # The bot embeds questions on one thread of its own (QueryBatcher). Torch's own thread
    # pool only fights the event loop (and on a shared host everyone else) for the cores:
    # measured 50 ms per question with one thread against 1.9 s with the pool, load 6.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    flow_set, knowledge_base = _content(settings)
    # Questions are embedded on their own thread as updates arrive, several at once.
    searcher = _searcher(settings, knowledge_base, batch_queries=True)
    navigator = build_navigator(settings, flow_set, knowledge_base, searcher)
    bot = TelegramBot(settings, navigator)
    webhook = None
    if webhook_url:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret \
            else new_webhook_secret()
        webhook = Webhook(webhook_url, listen, port, secret)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await bot.serve(stop, webhook)

    err.print(f"Navigator bot: {'webhook ' + webhook_url if webhook_url else 'long polling'}"
              "; Ctrl-C stops.", markup=False)
    try:
        asyncio.run(serve())
    except Exception as exc:  # a wrong token, an unreachable server: one clear line
        logging.getLogger(__name__).debug("run failed", exc_info=True)
        err.print(f"[red]Error:[/red] {type(exc).__name__}: {exc}", markup=True)
        raise typer.Exit(1) from None
    finally:
        navigator.store.close()


@app.command()
def forget(
    user_id: Annotated[int, typer.Argument(help="The user's Telegram id (as on the "
                                                "agents' card: id 123456789)")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase everything stored about one user, as their /forgetme does: messages, name,
    username, flow answers, stored updates, the texts of their tickets and of the
    replies to and about them. Their open tickets close with a note to the agents (the
    running bot posts it). Only anonymous numbers stay (tickets, times, ratings)."""
    from datetime import UTC, datetime

    from navigator import erasure
    from navigator.outbox import enqueue
    from navigator.store import Store
    from navigator.texts import Texts

    settings = _settings()
    store = Store(settings.effective_database_url)
    try:
        with store.transaction() as repo:
            described = erasure.describe_user(repo, user_id)
        if described is None:
            err.print(f"No user {user_id} in {_database_name(settings)}: nothing to erase.",
                      markup=False)
            raise typer.Exit(1)
        if not yes and not typer.confirm(f"Erase everything stored about user {user_id} "
                                         f"({described})? This cannot be undone.",
                                         default=False, err=True):
            err.print("Nothing erased.", markup=False)
            raise typer.Exit(1)
        with store.transaction() as repo:
            erased = erasure.forget_user(repo, Texts(), user_id, datetime.now(UTC), "operator")
            if erased is not None:
                enqueue(repo, erased.replies)
        out.print(f"Erased user {user_id}: {erased.summary() if erased else 'nothing'}.",
                  markup=False)
    finally:
        store.close()


@app.command(name="forget-old")
def forget_old(
    days: Annotated[int | None, typer.Option(
        help="Erase texts older than this many days [default: NAVIGATOR_KEEP_MESSAGES_DAYS]",
        min=1)] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase now the texts older than the retention period (the running bot does it once
    a day): messages, closed tickets last changed before it, delivered replies, stored
    updates, and the names of users not seen since. The numbers stay."""
    from datetime import UTC, datetime, timedelta

    from navigator import erasure
    from navigator.store import Store

    settings = _settings()
    keep = days or settings.keep_messages_days
    if not keep:
        err.print("NAVIGATOR_KEEP_MESSAGES_DAYS is 0 (keep for ever): give --days.",
                  markup=False)
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Erase every text older than {keep} days in "
                                     f"{_database_name(settings)}?", default=False, err=True):
        err.print("Nothing erased.", markup=False)
        raise typer.Exit(1)
    store = Store(settings.effective_database_url)
    try:
        now = datetime.now(UTC)
        with store.transaction() as repo:
            erased = erasure.erase_older_than(repo, now - timedelta(days=keep), now)
        out.print(f"Erased what was older than {keep} days: {erased.summary()}.",
                  markup=False)
    finally:
        store.close()


def _database_name(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def _prompt_lines():
    while True:
        try:
            yield input("вы › ")
        except EOFError:
            out.print()
            return


@app.command()
def config() -> None:
    """Print the effective settings (env NAVIGATOR_*, .env, navigator.yaml), secrets masked."""
    values = _settings().masked()
    # Plain aligned lines, never truncated: people copy values from here.
    width = max(len(name) for name in values)
    for name, value in values.items():
        print(f"{name.ljust(width)}  {'' if value is None else value}")
    print("\nEach can be set as NAVIGATOR_<NAME> (environment or .env) or in navigator.yaml.")


@app.command()
def index(knowledge: KnowledgeOption = None, index: IndexOption = None) -> None:
    """Build or refresh the search index; only new or edited sections are embedded."""
    from navigator.knowledge import load_knowledge
    from navigator.search import build_index

    settings = _settings(knowledge_dir=knowledge, index_dir=index)
    knowledge_base = load_knowledge(settings.knowledge_dir)
    for problem in knowledge_base.problems:
        err.print(str(problem), markup=False)
    started = time.perf_counter()
    with err.status(f"Loading model {settings.model}…"):
        embedder = _embedder(settings)
    loaded = time.perf_counter() - started
    with Progress(TextColumn("Embedding"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("embed", total=None)
        report = build_index(knowledge_base, embedder, settings.effective_index_dir,
                             lambda done, total: progress.update(task, completed=done,
                                                                 total=total))
    out.print(f"Indexed {len(knowledge_base.articles)} articles, {report.chunks} chunks "
              f"({report.embedded} embedded, {report.reused} reused) in {report.seconds:.1f} s "
              f"(model load {loaded:.1f} s) -> {settings.effective_index_dir}")


def _embedder(settings: Settings):  # -> Embedder
    from navigator.embedding_model import ModelUnavailableError
    from navigator.search import Embedder

    try:
        return Embedder(settings.model, settings.model_cache_dir)
    except ModelUnavailableError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question; omit to read "
                                                   "one question per line from stdin")] = None,
    knowledge: KnowledgeOption = None,
    index: IndexOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    top: Annotated[int, typer.Option(help="How many articles to list")] = 5,
) -> None:
    """Search the knowledge base and print the decision and the ranked articles."""
    from navigator.knowledge import load_knowledge

    settings = _settings(knowledge_dir=knowledge, index_dir=index)
    knowledge_base = load_knowledge(settings.knowledge_dir)
    for problem in knowledge_base.problems:
        err.print(str(problem), markup=False)
    searcher = _searcher(settings, knowledge_base)
    questions = [question] if question is not None else (line.rstrip("\n") for line in sys.stdin)
    for text in questions:
        result = searcher.search(text, k=top)
        if as_json:
            print(json.dumps({
                "question": text, "decision": result.decision, "ms": result.ms,
                "results": [{"path": h.article.path, "title": h.article.title,
                             "score": round(h.score, 4)} for h in result.hits],
            }, ensure_ascii=False), flush=True)
            continue
        out.print(f"[bold]{result.decision}[/bold] ({result.ms:.0f} ms)  {text}", markup=True)
        for rank, hit in enumerate(result.hits, start=1):
            out.print(f"  {rank}. {hit.score:.3f}  {hit.article.title}  ({hit.article.path})",
                      markup=False)


@app.command()
def check(flows: FlowsOption = None, knowledge: KnowledgeOption = None,
          payouts: Annotated[Path | None, typer.Option(
              "--payouts", help="Payouts configuration [default: payouts.yaml, if present "
              "and no folder is named]")]
          = None) -> None:
    """Validate flows, knowledge and payouts.yaml like an editor's CI:
    `file:line: message` for each problem; exit 1 on errors, 0 with only warnings."""
    from navigator.flows import check_flows
    from navigator.knowledge import load_knowledge

    settings = _settings(flows_dir=flows, knowledge_dir=knowledge, payouts_file=payouts)
    flow_set, problems = check_flows(settings.flows_dir)
    checked = ""
    # payouts.yaml belongs to this repository: checked with its flows and knowledge, not
    # when other folders are named (unless --payouts names one too).
    here = flows is None and knowledge is None
    if payouts is not None or (here and settings.payouts_file.exists()):
        from navigator.payouts.config import check_payouts

        problems += check_payouts(settings.payouts_file)[1]
        checked = f", {settings.payouts_file}"
    knowledge_base = load_knowledge(settings.knowledge_dir)
    problems = [*problems, *knowledge_base.problems]
    known = {a.id for a in knowledge_base.articles}
    for article_id, path, line in flow_set.article_references():
        if article_id not in known:
            problems.append(_problem(path, line, f"article {article_id!r} not found in "
                                                 f"{settings.knowledge_dir}"))
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        out.print(str(problem), markup=False)
    steps = sum(len(f.steps) for f in flow_set.flows.values())
    out.print(f"{len(flow_set.flows)} flows, {steps} steps, {len(knowledge_base.articles)} "
              f"articles{checked}: {len(errors)} errors, {len(problems) - len(errors)} "
              "warnings", markup=False)
    raise typer.Exit(1 if errors else 0)


@app.command()
def report(
    date_from: Annotated[str | None, typer.Option(
        "--from", help="First day, YYYY-MM-DD (local); default: 30 days up to --to")] = None,
    date_to: Annotated[str | None, typer.Option(
        "--to", help="Last day, YYYY-MM-DD, included; default: today")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="The HTML report")] =
    Path("report.html"),
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the period's tickets here, one row per ticket")] = None,
    lang: Annotated[str, typer.Option("--lang", help="ru or en")] = "ru",
) -> None:
    """The programme's numbers for a period as one HTML file (no network or scripts
    needed to read it) and, with --csv, the period's tickets. Days are local to
    NAVIGATOR_TIMEZONE; every figure is compared with the period of equal length
    before. One desk today (the agents' chat): a --desk option comes with desks."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import make_url

    from navigator.report import PeriodError, make_report, period_for
    from navigator.store import Store

    settings = _settings()
    if lang not in ("ru", "en"):
        err.print(f"[red]--lang {lang}[/red]: the report is in ru or en.")
        raise typer.Exit(2)
    for path in (out_path, csv_path):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            err.print(f"[red]Error:[/red] cannot write {path}: "
                      f"{'it is a folder' if path.is_dir() else 'no such folder'}.")
            raise typer.Exit(2)
    zone = ZoneInfo(settings.timezone)
    made = datetime.now(UTC)
    try:
        period = period_for(_day(date_from, "--from"), _day(date_to, "--to"),
                            made.astimezone(zone).date(), zone)
    except PeriodError as exc:
        err.print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(2) from None
    url = settings.effective_database_url
    database = make_url(url).database
    if make_url(url).get_backend_name() == "sqlite" and database and \
            database != ":memory:" and not Path(database).exists():
        # Reporting on an empty, freshly created database would look like a quiet month.
        err.print(f"[red]Error:[/red] no database at {database} (NAVIGATOR_DATABASE_URL).")
        raise typer.Exit(1)
    started = time.perf_counter()
    store = None
    try:
        store = Store(url)
        made_report = make_report(store, period, made, html=out_path, csv=csv_path,
                                  language=lang)
    except Exception as exc:  # a database or a disk that fails: one clear line
        logging.getLogger(__name__).debug("report failed", exc_info=True)
        err.print(f"[red]Error:[/red] {type(exc).__name__}: {exc}", markup=True)
        raise typer.Exit(1) from None
    finally:
        if store is not None:
            store.close()
    figures = made_report.report.now
    solved = f"{figures.solved / figures.requests:.0%}" if figures.requests else "—"
    processed = f"{figures.processed / figures.requests:.0%}" if figures.requests else "—"
    people = "person" if figures.conversations == 1 else "people"
    out.print(f"{period.first} – {period.last} ({_counted(period.days, 'day')}, "
              f"{settings.timezone}): {figures.conversations} {people} wrote to the bot, "
              f"{_counted(figures.tickets, 'ticket')}, processed {processed}, solved {solved}",
              markup=False)
    listed = f", {csv_path} ({_counted(made_report.tickets_listed, 'ticket')})" \
        if csv_path else ""
    out.print(f"-> {out_path}{listed} in {time.perf_counter() - started:.1f} s", markup=False)


survey_app = typer.Typer(help="The usefulness survey of the community (the programme's "
                         "first number: at least 4 of 5).", no_args_is_help=True)
app.add_typer(survey_app, name="survey")


@survey_app.command("start")
def survey_start(
    question: Annotated[str | None, typer.Option(
        "--question", help="The question (one text for every language); default: the "
        "shipped one, in each user's language")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Ask everyone who wrote to the bot since this day, YYYY-MM-DD "
        "(local); default: 90 days ago")] = None,
) -> None:
    """Ask everyone who talked to the bot since --since (and did not say /survey off) one
    question with 1-5 buttons. The running bot sends them after its live replies."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from navigator.outbox import enqueue
    from navigator.report import survey
    from navigator.texts import Texts

    settings = _settings()
    zone, now = ZoneInfo(settings.timezone), datetime.now(UTC)
    first = _day(since, "--since") or (now.astimezone(zone) - timedelta(days=90)).date()
    if question is not None and not question.strip():
        err.print("[red]--question[/red] is empty.")
        raise typer.Exit(2)
    with _survey_store(settings) as store, store.transaction() as repo:
        try:
            started, replies = survey.start(
                repo, Texts(), question,
                datetime.combine(first, datetime.min.time(), zone).astimezone(UTC), now)
        except survey.SurveyError as exc:
            err.print(f"[red]Error:[/red] {exc}")
            raise typer.Exit(1) from None
        enqueue(repo, replies)
        out.print(f"Survey {started.id} started: {_counted(len(replies), 'person', 'people')} who "
                  f"wrote to the bot since {first} will be asked "
                  f"(the bot sends the questions after its live replies).", markup=False)


@survey_app.command("status")
def survey_status() -> None:
    """The latest survey: asked, still waiting to be sent, answered, mean score."""
    from navigator.report import survey

    with _survey_store(_settings()) as store, store.transaction() as repo:
        figures = survey.status(repo)
        if figures is None:
            out.print("No survey yet: navigator survey start")
            return
        started = figures.survey
        state = "closed" if started.closed_at else "open"
        mean = f"{figures.mean:.2f}" if figures.mean is not None else "—"
        out.print(f"Survey {started.id} ({state}, started {started.started_at:%Y-%m-%d}): "
                  f"{_counted(figures.asked, 'person', 'people')} asked, {figures.waiting} "
                  f"still to be sent, {figures.failed} unreachable; {figures.answered} "
                  f"answered, mean {mean} of 5 (target 4); {_counted(figures.comments, 'comment')}",
                  markup=False)
        if figures.answered:
            out.print("  " + ", ".join(f"{score}: {figures.scores.get(score, 0)}"
                                       for score in range(1, 6)), markup=False)


@survey_app.command("close")
def survey_close() -> None:
    """Close the open survey: its buttons then answer that it is over."""
    from datetime import UTC, datetime

    from navigator.report import survey

    with _survey_store(_settings()) as store, store.transaction() as repo:
        try:
            closed = survey.close(repo, datetime.now(UTC))
        except survey.SurveyError as exc:
            err.print(f"[red]Error:[/red] {exc}")
            raise typer.Exit(1) from None
        out.print(f"Survey {closed.id} closed.")


@contextlib.contextmanager
def _survey_store(settings: Settings):  # -> Iterator[Store]
    from navigator.store import Store

    store = Store(settings.effective_database_url)
    try:
        yield store
    finally:
        store.close()


def _counted(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def _day(value: str | None, option: str):  # -> date | None
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        err.print(f"[red]{option} {value}[/red]: a day is written YYYY-MM-DD, e.g. 2026-11-01.")
        raise typer.Exit(2) from None


@app.command()
def doctor(
    secrets: Annotated[bool, typer.Option(
        "--secrets", help="Find Stellar secret keys and recovery phrases in the stored "
        "data (inbox, messages, tickets, ticket events, outbox, conversations, names) and "
        "replace them by placeholders")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count what would be replaced; exit 1 if anything was "
        "found")] = False,
) -> None:
    """Check the stored data (NAVIGATOR_DATABASE_URL) and repair what can be repaired.

    With no check named, every check runs; there is one so far, --secrets. The
    database is migrated first, like every command does; a migration that scrubbed
    secrets (0007, on a database from before the secret guard) is reported too.
    Running it again finds nothing more: placeholders are not secrets.
    """
    from navigator.secret_guard import placeholders_in
    from navigator.store import Store
    from navigator.store.scrub import scrub_secrets
    from navigator.texts import Texts

    settings = _settings()
    run_all = not secrets
    if not (secrets or run_all):
        return
    store = Store(settings.effective_database_url)
    texts = Texts()
    try:
        with store.engine.begin() as connection:
            report = scrub_secrets(connection, lambda language: placeholders_in(
                texts.say, language), dry_run=dry_run)
        migrated = store.migration_notes.get("secrets_scrubbed") or []
    finally:
        store.close()
    # A database from before the guard was scrubbed by the migration just now: counted in.
    by_migration = {r.table: r for r in migrated}
    rows = [(r.table, r.found + getattr(by_migration.get(r.table), "found", 0),
             r.scrubbed + getattr(by_migration.get(r.table), "scrubbed", 0)) for r in report]
    done = "would scrub" if dry_run else "scrubbed"
    width = max(len(table) for table, _, _ in rows)
    print("Secret keys and recovery phrases in the stored data (rows):")
    print(f"  {'table'.ljust(width)}  found  {done}")
    for table, found, scrubbed in rows:
        print(f"  {table.ljust(width)}  {found:>5}  {scrubbed:>{len(done)}}")
    if any(r.scrubbed for r in migrated):
        print("of which the database migration 0007, run just now, scrubbed: " + ", ".join(
            f"{r.table} {r.scrubbed}" for r in migrated if r.scrubbed))
    left = sum(r.found for r in report)
    print(f"{sum(found for _, found, _ in rows)} rows held a secret; "
          f"{left if dry_run else 0} hold one now")
    raise typer.Exit(1 if dry_run and left else 0)


def _problem(path: Path, line: int, message: str):
    from navigator.problems import Problem

    return Problem(path, line, message)


register_payouts(app)  # navigator airdrop build|status, navigator rewards


def main() -> None:
    """The console script: `navigator ...` and `python -m navigator ...`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


@app.command(name="eval")
def evaluate(
    questions: Annotated[Path, typer.Option("--questions", help="Labelled questions (.jsonl)")] =
    Path("knowledge/questions.jsonl"),
    knowledge: KnowledgeOption = None,
    index: IndexOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Measure search on labelled questions: top-1, top-5, MRR, escalation, latency.

    Also prints the thresholds the data recommends (set them with
    NAVIGATOR_ANSWER_THRESHOLD / NAVIGATOR_SUGGEST_THRESHOLD).
    """
    from navigator import evaluation
    from navigator.knowledge import load_knowledge

    settings = _settings(knowledge_dir=knowledge, index_dir=index)
    try:
        labelled = evaluation.load_questions(questions)
    except (OSError, ContentError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    knowledge_base = load_knowledge(settings.knowledge_dir)
    searcher = _searcher(settings, knowledge_base)
    outcomes = evaluation.run(searcher, labelled)
    result = evaluation.report(outcomes, settings.answer_threshold, settings.suggest_threshold)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    table = Table("measure", "value", box=None)
    for name, value in result.as_dict().items():
        if name != "recommended":
            table.add_row(name, str(value))
    for name, value in result.recommended.items():
        table.add_row(f"recommended {name}", str(value))
    out.print(table)
