"""`healthbot playbooks check | report | tasks | triggers`: parsing and rendering only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from health.db import make_engine, session_scope
from health.models import Account, PlaybookTask
from health.settings import get_settings
from playbooks.loader import DEFAULTS_DIR, check_playbooks
from playbooks.reads import report_inputs
from playbooks.report import Measures, playbook_report
from playbooks.templates import FIELDS
from playbooks.triggers import TRIGGERS

playbooks_app = typer.Typer(
    help="Playbooks: score events become owned, timed tasks.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def _dir(directory: Path | None) -> Path:
    return directory or get_settings().healthbot_playbooks or DEFAULTS_DIR


@playbooks_app.command("check")
def check(
    directory: Annotated[
        Path | None, typer.Argument(help="playbook directory (default HEALTHBOT_PLAYBOOKS)")
    ] = None,
) -> None:
    """Check every playbook file: one line per problem (file:line: what), exit 1 if any."""
    root = _dir(directory)
    book, problems = check_playbooks(root)
    if problems:
        for p in problems:
            err.print(str(p), highlight=False, markup=False)
        err.print(f"{len(problems)} problem(s) in {root}: the workers will not run this set.")
        raise typer.Exit(1)
    assert book is not None
    out.print(f"[green]ok[/green] {len(book.playbooks)} playbooks in {root}:")
    for p in book.playbooks:
        out.print(
            f"  {p.key:<24} {p.task.severity:<6} due {_span(p.task.due):<5} {p.name}",
            highlight=False,
        )


@playbooks_app.command("triggers")
def triggers() -> None:
    """The triggers and template fields a playbook may use."""
    table = Table(box=box.SIMPLE_HEAD, title="Triggers (combine with all / any / not)")
    table.add_column("trigger", style="bold")
    table.add_column("value and meaning")
    for t in TRIGGERS.values():
        table.add_row(t.name, Text(t.help))
    out.print(table)
    fields = Table(
        box=box.SIMPLE_HEAD, title="Template fields ({field} in title, description, steps)"
    )
    fields.add_column("field", style="bold")
    fields.add_column("meaning")
    for name, meaning in FIELDS.items():
        fields.add_row("{" + name + "}", meaning)
    out.print(fields)


@playbooks_app.command("report")
def report(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    since: Annotated[
        str | None, typer.Option(help="only tasks opened on or after YYYY-MM-DD")
    ] = None,
) -> None:
    """What the playbooks achieved: save rate, yellow -> green, time to first action, overdue."""
    start = _day(since)
    book, _problems = check_playbooks(_dir(None))
    names = {p.key: p.name for p in book.playbooks} if book else {}
    engine = make_engine(get_settings().database_url)
    with session_scope(engine) as session:
        tasks, green = report_inputs(session, since=start)
        accounts = session.execute(select(Account.id).where(Account.deleted_at.is_(None))).all()
    now = datetime.now(UTC)
    rows, total = playbook_report(tasks, green, now, names)
    if as_json:
        payload = {
            "as_of": now.isoformat(),
            "accounts": len(accounts),
            "overall": total.as_dict(),
            "playbooks": [r.as_dict() for r in rows],
        }
        print(json.dumps(payload))
        return
    if not total.tasks:
        out.print(
            "No playbook task has been opened yet: tasks open when scoring finds what a "
            "playbook looks for (`healthbot score --all`, `healthbot run`, or the workers)."
        )
        return
    out.print(playbook_table(rows, total))
    share = total.accounts / len(accounts) if accounts else 0
    out.print(f"Tasks on {total.accounts:,} of {len(accounts):,} accounts ({share:.0%}).")


def playbook_table(rows: list[Measures], total: Measures) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        title="Playbooks: what they achieved",
        caption="saved: red → green within 90 days · y→g: yellow → green within 30 days · "
        "1st action: median hours from signal to a person acting · "
        "cases, done and recovered: --json",
    )
    for col, justify in [
        ("playbook", "left"),
        ("tasks", "right"),
        ("open", "right"),
        ("saved", "right"),
        ("y→g", "right"),
        ("1st action", "right"),
        ("overdue", "right"),
    ]:
        table.add_column(  # the names keep their width; the numbers fold under their headers
            col, justify=justify, overflow="fold", min_width=20 if col == "playbook" else None
        )  # type: ignore[arg-type]
    for m in [*rows, total]:
        table.add_row(
            m.playbook,
            f"{m.tasks:,}",
            f"{m.open:,}",
            _pct(m.save_rate, m.save_cases),
            _pct(m.yellow_to_green_rate, m.yellow_cases),
            "—"
            if m.median_hours_to_first_action is None
            else f"{m.median_hours_to_first_action:.0f} h",
            _pct(m.overdue_rate, None),
            style="bold" if m is total else None,
        )
    return table


@playbooks_app.command("tasks")
def tasks(
    owner: Annotated[str | None, typer.Option(help="only this owner's tasks (email)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
) -> None:
    """Live tasks, soonest due first."""
    engine = make_engine(get_settings().database_url)
    q = (
        select(PlaybookTask, Account.name)
        .join(Account, Account.id == PlaybookTask.account_id)
        .where(PlaybookTask.resolved_at.is_(None))
        .order_by(PlaybookTask.due_at)
        .limit(limit)
    )
    if owner:
        q = q.where(PlaybookTask.owner == owner)
    with session_scope(engine) as session:
        rows = session.execute(q).all()
    if not rows:
        out.print("No open tasks.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("due", "severity", "account", "task", "owner", "status"):
        table.add_column(col)
    now = datetime.now(UTC)
    for task, name in rows:
        due = task.due_at
        late = due < now and task.status == "open"
        table.add_row(
            f"[red]{due:%d %b %H:%M}[/red]" if late else f"{due:%d %b %H:%M}",
            task.severity,
            name,
            task.title,
            task.owner or "—",
            task.status,
        )
    out.print(table)


def _pct(rate: float | None, cases: int | None) -> str:
    if rate is None:
        return "—"
    return f"{rate:.0%}"


def _span(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours >= 48 and hours % 24 == 0 else f"{hours:g}h"


def _day(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        from cli.errors import UserError

        raise UserError(f"--since {value!r} is not a date: use YYYY-MM-DD") from None
