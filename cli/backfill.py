"""`healthbot score --backfill`: a progress bar over the accounts, then what was written."""

from __future__ import annotations

from datetime import date

from rich.console import Console
from sqlalchemy.engine import Engine

from cli.errors import UserError
from cli.render import progress_bar
from health.scoring.model import ScoringModel
from health.settings import Settings
from workers.pipeline import backfill_history


def run_backfill(
    engine: Engine,
    settings: Settings,
    model: ScoringModel,
    *,
    since: date | None,
    until: date | None,
    every: int,
    replace: bool,
    console: Console,
    workers: int = 2,
) -> None:
    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}")
    with progress_bar(console) as bar:
        task = bar.add_task("rebuilding score history", total=None)

        def started(accounts: int, days: int) -> None:
            step = "day" if every == 1 else f"{every} days"
            bar.update(task, total=accounts, description=f"{days} days (every {step}), accounts")

        report = backfill_history(
            engine,
            settings,
            model,
            since=since,
            until=until,
            every=every,
            replace=replace,
            workers=workers,
            progress=lambda n: bar.update(task, advance=n),
            on_start=started,
        )
    if not report.accounts:
        raise UserError(
            "nothing to backfill: no account is stored yet. Sync first (`healthbot sync`), or "
            "import a history (`healthbot import accounts|observations|outcomes FILE`)"
        )
    console.print(
        f"Backfilled {report.scored:,} scores for {report.accounts:,} accounts over "
        f"{report.days} days: {report.changes:,} score changes, "
        f"{report.announced:,} announced tier changes"
        + (
            f"; {report.kept:,} scores already stored were kept (--replace recomputes them)"
            if report.kept
            else ""
        )
    )
    if report.renewal_known_from:
        console.print(
            f"  Days before {report.renewal_known_from} were scored without the renewal date "
            "(it is today's value; the renewal-window stage is left out of them). "
            "Segment and start date are today's values too."
        )
