"""The `healthbot` command line. The composition root: it may import every package."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from cli.errors import UserError
from cli.render import brief_panel
from connectors.base import ConnectorError
from health.briefs import account_brief
from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.repo import find_accounts
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
out = Console()
err = Console(stderr=True, soft_wrap=True)


def engine():
    return make_engine(get_settings().database_url)


def model() -> ScoringModel:
    return load_model(get_settings().healthbot_model)


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
) -> None:
    """Score one account or all of them for a day."""
    from health.scoring_service import rescore

    if not all_ and not account:
        raise UserError("say which account to score, or --all for every account")
    when = _parse_day(day)
    eng = engine()
    ids = None
    if account:
        with session_scope(eng) as session:
            ids = [_one_account(session, account).id]
    report = rescore(eng, model(), day=when, account_ids=ids, workers=os.cpu_count() or 1)
    out.print(
        f"Scored {report.scored} of {report.accounts} accounts for {when}: "
        f"{report.changes} changed, {report.announced} tier changes announced"
        + (f", {report.no_data} without any data" if report.no_data else "")
    )


@app.command()
def brief(
    name: Annotated[str, typer.Argument(help="Account name, domain or CRM id (fuzzy)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one account's health brief."""
    with session_scope(engine()) as session:
        account = _one_account(session, name)
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


def _one_account(session, query: str):
    found = find_accounts(session=session, query=query)
    if not found:
        raise UserError(f"no account matches {query!r}")
    exact = [
        a
        for a in found
        if query.strip().lower() in (a.name.lower(), (a.domain or ""), a.external_id.lower())
    ]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    names = ", ".join(f"{a.name} ({a.domain})" if a.domain else a.name for a in found[:5])
    raise UserError(f"{query!r} matches {len(found)} accounts: {names} — be more specific")


def _parse_day(day: str | None) -> date:
    if day is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise UserError(f"--day {day!r} is not a date: use YYYY-MM-DD") from None


def _safe_url() -> str:
    return make_engine(get_settings().database_url).url.render_as_string(hide_password=True)


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except ConnectorError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except ModelError as exc:
        err.print(f"[red]error in the scoring model:[/red] {exc}", highlight=False)
        sys.exit(1)
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        err.print(
            f"[red]database error:[/red] {reason} ({_safe_url()}). "
            "Is DATABASE_URL right, and has `healthbot db upgrade` run?",
            highlight=False,
        )
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
