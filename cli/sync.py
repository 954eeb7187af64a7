"""`healthbot sync` and `healthbot import`: run sources with a progress bar and a run report."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import Engine

from cli.errors import UserError
from cli.render import report_table, spinners
from connectors.registry import configured_sinks, configured_sources
from health.ingest import SyncReport
from health.score_writes import RescoreReport
from health.scoring.model import ScoringModel
from health.settings import Settings
from workers.pipeline import (
    RunReport,
    import_csv,
    run_once,
    score_accounts,
    sync_all,
    sync_source,
)

NO_SOURCE = (
    "No source is configured: set SALESFORCE_*, HUBSPOT_*, ZENDESK_* or USAGE_* variables "
    "(see README), or use `healthbot import`."
)


class SourceBars:
    """An `on_batch` hook that shows one spinner line per source as its batches land."""

    def __init__(self, bar: Progress):
        self.bar, self.tasks = bar, {}

    def __call__(self, report: SyncReport, _batch=None) -> None:
        if report.source not in self.tasks:
            self.tasks[report.source] = self.bar.add_task(report.source, total=None, detail="")
        detail = f"{report.fetched:,} records · {report.api_calls or 0:,} API calls"
        self.bar.update(self.tasks[report.source], detail=detail)


def run_source(engine: Engine, source, console: Console) -> SyncReport:
    """One source with a progress line (the demo's sandbox and CSV files)."""
    with spinners(console) as bar:
        return sync_source(engine, source, on_batch=SourceBars(bar))


def sync_table(reports: list[SyncReport]) -> Table:
    table = report_table(
        "Sync report",
        "Changed: records new or different from what was stored; Same: already stored.",
        ("Source", "Pulled", "Changed", "Same", "Skipped", "Unmatched", "Calls", "Time"),
    )
    for r in reports:
        table.add_row(
            r.source,
            f"{r.fetched:,}",
            f"{r.stored.upserted:,}",
            f"{r.stored.unchanged:,}",
            f"{sum(r.skipped.values()):,}",
            f"{len(r.stored.unmatched):,}",
            str(r.api_calls or "—"),
            f"{r.seconds:.1f}s",
        )
    return table


def explain_problems(reports: list[SyncReport], console: Console) -> None:
    for r in reports:
        if r.switched_off:
            n = len(r.switched_off)
            console.print(
                f"  [yellow]{r.source}[/yellow] reads without {n} field{'s' if n > 1 else ''} "
                "it lacks:"
            )
        for off in r.switched_off:
            console.print(f"    {off.field} → off: {off.turns_off}. Fix: {off.fix}.")
        for reason, n in r.skipped.most_common(5):
            console.print(f"  [yellow]{r.source}[/yellow] skipped {n}× {reason}")
        top = sorted(r.stored.unmatched.items(), key=lambda kv: -kv[1])[:5]
        if top:
            keys = ", ".join(f"{k} ({n})" for k, n in top)
            console.print(f"  [yellow]{r.source}[/yellow] records for unknown accounts: {keys}")


def show_syncs(run: RunReport, console: Console) -> None:
    console.print(sync_table(run.syncs))
    explain_problems(run.syncs, console)
    for r in run.syncs:
        if r.busy:
            console.print(f"  [yellow]{r.source}[/yellow] skipped: another sync of it is running")


def run_sync(
    engine: Engine,
    settings: Settings,
    model: ScoringModel | None,
    *,
    only: str | None,
    console: Console,
) -> RunReport:
    if only is None and not configured_sources(settings):
        console.print(NO_SOURCE)
        return RunReport()
    with spinners(console) as bar:
        run = sync_all(engine, settings, only=only, on_batch=SourceBars(bar))
    show_syncs(run, console)
    if model is not None and run.touched:
        run.scoring = score_accounts(engine, settings, model, run.touched)
        show_scoring(run.scoring, console)
    if run.failed:  # what was committed before the failure stays, and is scored above
        raise UserError("sync failed for " + "; ".join(f"{k}: {v}" for k, v in run.failed.items()))
    return run


def show_scoring(report: RescoreReport, console: Console) -> None:
    console.print(
        f"Scored {report.scored} changed accounts: {report.announced} tier changes announced"
    )
    show_playbooks(report, console)


def show_playbooks(report: RescoreReport, console: Console) -> None:
    """What the playbooks did with the scoring's changes (or why they did not run)."""
    if report.playbooks_error:
        console.print(f"[red]{report.playbooks_error}[/red]: run `healthbot playbooks check`")
    elif report.playbooks is not None and (report.playbooks.opened or report.playbooks.recovered):
        p = report.playbooks
        console.print(f"Playbooks: {p.opened} tasks opened, {p.recovered} recovered")


def run_import(
    engine: Engine, kind: str, path: Path, *, model: ScoringModel, console: Console
) -> SyncReport:
    try:
        with spinners(console) as bar:
            report = import_csv(engine, kind, path, model, on_batch=SourceBars(bar))
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    console.print(sync_table([report]))
    explain_problems([report], console)
    return report


def run_pass(engine: Engine, settings: Settings, model: ScoringModel, *, console: Console) -> None:
    """`healthbot run`: one pass of the pipeline, with progress and what it did."""
    from cli.writeback import FlushBars, show_flushes

    if not configured_sources(settings):
        raise UserError(NO_SOURCE)
    with spinners(console) as bar:
        run = run_once(engine, settings, model, on_batch=SourceBars(bar), on_chunk=FlushBars(bar))
    show_syncs(run, console)
    if run.scoring is not None:
        show_scoring(run.scoring, console)
    else:
        console.print("Nothing changed in any source: no account to score.")
    if not configured_sinks(settings):
        console.print("No CRM is configured to receive scores (SALESFORCE_* or HUBSPOT_*).")
    show_flushes(run.flushes, console)
    if run.failed:
        raise UserError("; ".join(f"{k} failed: {v}" for k, v in run.failed.items()))
