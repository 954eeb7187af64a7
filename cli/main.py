"""The `healthbot` command line. The composition root: it may import every package."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from cli.backtest import backtest
from cli.crm import crm_app
from cli.doctor import doctor
from cli.errors import UserError
from cli.playbooks import playbooks_app
from cli.render import brief_panel
from connectors.base import ConnectorError
from health.accounts import AccountLookupError, resolve_account
from health.briefs import account_brief
from health.db import make_engine, session_scope
from health.identity import LinkError
from health.migrate import upgrade
from health.scoring.model import ModelError, ScoringModel, load_model
from health.settings import get_settings

app = typer.Typer(
    help="healthbot: customer health scores your CSMs can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(crm_app, name="crm")
accounts_app = typer.Typer(
    help="One customer, one account: the CRM records each account links.", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(playbooks_app, name="playbooks")
app.command()(doctor)
app.command()(backtest)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def engine():
    return make_engine(get_settings().database_url)


def model() -> ScoringModel:
    settings = get_settings()
    return load_model(settings.healthbot_model, min_confidence=settings.healthbot_min_confidence)


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts in the sandbox portfolio")] = 500,
    days: Annotated[int, typer.Option(min=30, max=730, help="Days of daily history")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same portfolio)")] = 7,
    db: Annotated[Path, typer.Option(help="SQLite file for the demo")] = Path("healthbot-demo.db"),
) -> None:
    """Build a sandbox portfolio, score it day by day over its history, and show it."""
    from cli.demo import DemoContext, run_demo

    run_demo(
        DemoContext(
            console=out,
            db_path=db,
            model=model(),
            accounts=accounts,
            days=days,
            seed=seed,
            end=date(2026, 11, 1),
        )
    )


@app.command()
def score(
    account: Annotated[str | None, typer.Argument(help="Account name, domain or CRM id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rescore every account")] = False,
    day: Annotated[str | None, typer.Option(help="Scoring day, YYYY-MM-DD (default today)")] = None,
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill", help="Rebuild score history from stored observations, day by day"
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="--backfill: first day (default: first observation)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="--backfill: last day (default today)")] = None,
    every: Annotated[
        str, typer.Option(help="--backfill: granularity, e.g. 1d, 7d, 2w (default 1d)")
    ] = "1d",
    replace: Annotated[
        bool, typer.Option("--replace", help="--backfill: recompute scores already stored")
    ] = False,
) -> None:
    """Score one account or all of them for a day, or (--backfill) every day of the history."""
    from cli.sync import show_playbooks
    from workers.pipeline import score_accounts

    if backfill and (account or day):
        raise UserError("--backfill rebuilds every account's history: drop ACCOUNT and --day")
    if not backfill and (since or until or replace or every != "1d"):
        raise UserError("--since, --until, --every and --replace go with --backfill")
    if backfill:
        from cli.backfill import run_backfill

        run_backfill(
            engine(),
            get_settings(),
            model(),
            since=_parse_day(since, "--since") if since else None,
            until=_parse_day(until, "--until") if until else None,
            every=parse_every(every),
            replace=replace,
            console=out,
        )
        return
    if not all_ and not account:
        raise UserError("say which account to score, or --all for every account")
    when = _parse_day(day)
    eng = engine()
    ids = None
    if account:
        with session_scope(eng) as session:
            ids = [resolve_account(session=session, query=account).id]
    report = score_accounts(
        eng, get_settings(), model(), ids, day=when, workers=os.cpu_count() or 1
    )
    out.print(
        f"Scored {report.scored} of {report.accounts} accounts for {when}: "
        f"{report.changes} changed, {report.announced} tier changes announced"
        + (f", {report.no_data} without any data" if report.no_data else "")
        + (f", {report.former} former customers (churned) left out" if report.former else "")
    )
    show_playbooks(report, out)


@app.command()
def brief(
    name: Annotated[str, typer.Argument(help="Account name, domain or CRM id (fuzzy)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one account's health brief."""
    with session_scope(engine()) as session:
        account = resolve_account(session=session, query=name)
        view = account_brief(session=session, account=account, model=model())
    if view is None:
        raise UserError(f"{account.name} has no score yet: run `healthbot score --all`")
    if as_json:
        print(json.dumps(view.as_dict(), default=str, indent=2))
    else:
        out.print(brief_panel(view))


@app.command()
def sync(
    source: Annotated[str | None, typer.Option(help="Only this source")] = None,
    rescore_changed: Annotated[
        bool, typer.Option("--score/--no-score", help="Score the accounts that changed")
    ] = True,
) -> None:
    """Pull accounts and signals from every configured source (or one), then score what
    changed. The first run pulls everything; later runs only what changed since."""
    from cli.sync import run_sync

    settings = get_settings()
    run_sync(engine(), settings, model() if rescore_changed else None, only=source, console=out)


@app.command()
def run() -> None:
    """One full pass: sync every configured source, score the accounts that changed, and
    write the changed scores to every configured CRM. With REDIS_URL set, the Celery beat
    schedule does this continuously (Procfile: worker, beat)."""
    from cli.sync import run_pass

    run_pass(engine(), get_settings(), model(), console=out)


@app.command()
def writeback(
    status: Annotated[
        bool, typer.Option("--status", help="List pending and parked rows, write nothing")
    ] = False,
    retry_parked: Annotated[
        bool, typer.Option("--retry-parked", help="Send parked rows again (cause fixed)")
    ] = False,
) -> None:
    """Write the changed scores waiting in the outbox to every configured CRM."""
    from cli.render import spinners
    from cli.writeback import FlushBars, show_flushes, show_status
    from connectors.registry import configured_sinks
    from health.outbox import unpark
    from workers.pipeline import flush_all

    if status:
        show_status(engine(), out)
        return
    if retry_parked:
        with session_scope(engine()) as session:
            out.print(f"{unpark(session=session)} parked rows will be sent again.")
    settings = get_settings()
    if not configured_sinks(settings):
        raise UserError(
            "no CRM is configured to receive scores: set SALESFORCE_INSTANCE_URL and "
            "SALESFORCE_ACCESS_TOKEN, or HUBSPOT_ACCESS_TOKEN"
        )
    with spinners(out) as bar:
        result = flush_all(engine(), settings, on_chunk=FlushBars(bar))
    show_flushes(result.flushes, out)
    if result.failed:
        raise UserError(
            "writeback failed for " + "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        )


@accounts_app.command("review")
def accounts_review() -> None:
    """List the records left unlinked because linking them was ambiguous, with why."""
    from cli.accounts import show_review

    show_review(engine(), out)


@accounts_app.command("link")
def accounts_link(
    first: Annotated[str, typer.Argument(help="An account: name, domain or any linked CRM id")],
    second: Annotated[str, typer.Argument(help="The account that is the same customer")],
) -> None:
    """Make two accounts one customer (the decision survives every later sync)."""
    from workers.pipeline import link_accounts

    keep, absorb, scored = link_accounts(engine(), get_settings(), model(), first, second)
    out.print(
        f"Linked {absorb.name} into {keep.name}: one account now, "
        f"{'scored' if scored.scored else 'not scored yet (no data)'}."
    )


@accounts_app.command("unlink")
def accounts_unlink(
    record: Annotated[str, typer.Argument(help="The CRM record, as SOURCE:ID (e.g. hubspot:123)")],
) -> None:
    """Take one CRM record off its account (the decision survives every later sync)."""
    from workers.pipeline import unlink_record

    home, _ = unlink_record(engine(), get_settings(), model(), record)
    out.print(f"{record} is now its own account: {home.name}.")


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port")] = 3000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="processes answering HTTP on PORT (default: $WEB_CONCURRENCY, else 1); "
            "one per core lets a burst of commands use every core",
        ),
    ] = None,
) -> None:
    """Run the Slack app: HTTP on PORT at /slack/events, or Socket Mode when SLACK_APP_TOKEN
    is set (no public URL needed). Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET."""
    from bot.__main__ import BadWorkers
    from bot.__main__ import main as serve_slack
    from bot.delivery import SlackNotConfigured

    try:
        serve_slack(port, workers)
    except SlackNotConfigured as exc:
        raise UserError(f"Slack is not configured: {exc}") from None
    except BadWorkers as exc:
        raise UserError(str(exc)) from None


@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="accounts, observations or outcomes")],
    path: Annotated[Path, typer.Argument(help="CSV file (columns: docs/import-formats.md)")],
) -> None:
    """Import accounts, signal observations or outcomes from a CSV file."""
    from cli.sync import run_import

    if kind not in ("accounts", "observations", "outcomes"):
        raise UserError(f"cannot import {kind!r}: choose accounts, observations or outcomes")
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    run_import(engine(), kind, path, model=model(), console=out)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version."""
    upgrade(engine())
    out.print(f"Database is up to date ({_safe_url()}).")


def _parse_day(day: str | None, option: str = "--day") -> date:
    if day is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise UserError(f"{option} {day!r} is not a date: use YYYY-MM-DD") from None


def parse_every(every: str) -> int:
    """'7d', '2w' or '7' -> days."""
    text = every.strip().lower()
    unit = 7 if text.endswith("w") else 1
    try:
        days = int(text.rstrip("dw")) * unit
    except ValueError:
        days = 0
    if days < 1:
        raise UserError(f"--every {every!r}: use a number of days or weeks, e.g. 7d or 2w")
    return days


def _safe_url() -> str:
    return make_engine(get_settings().database_url).url.render_as_string(hide_password=True)


def main() -> None:
    """Click reports usage errors (unknown command or option, missing argument) with its
    usage line and exit code 2; our own errors are one line on stderr and exit code 1."""
    try:
        app(standalone_mode=True)
    except (UserError, ConnectorError, AccountLookupError, LinkError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except ModelError as exc:
        err.print(f"[red]error in the scoring model:[/red] {exc}", highlight=False)
        sys.exit(1)
    except ValidationError as exc:  # a setting from the environment (or .env) that cannot be read
        for e in exc.errors():
            name = str(e["loc"][0]).upper() if e["loc"] else "a setting"
            err.print(f"[red]error:[/red] {name}: {e['msg']}", highlight=False)
        sys.exit(1)
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err.print(
            f"[red]database error:[/red] {reason} ({_safe_url()}). "
            "Is DATABASE_URL right, and has `healthbot db upgrade` run?",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
