"""`healthbot sync` and `healthbot import`: run sources with a progress bar and a run report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from cli.errors import UserError
from connectors.base import ConnectorError
from connectors.files.csv_import import CsvImport
from connectors.registry import enabled_sources
from health.ingest import SyncReport, ingest
from health.scoring.model import ScoringModel
from health.scoring_service import rescore
from health.settings import Settings


def run_source(
    engine: Engine, source, console: Console, report: SyncReport | None = None
) -> SyncReport:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(source.name, total=None, detail="starting")

        def update(report: SyncReport, _batch) -> None:
            bar.update(
                task, detail=f"{report.fetched:,} records · {report.api_calls or 0:,} API calls"
            )

        report = ingest(engine, source, on_batch=update, report=report)
        bar.update(task, detail=f"{report.fetched:,} records · done")
    return report


def report_table(reports: list[SyncReport]) -> Table:
    table = Table(
        title="Sync report",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="Changed: records new or different from what was stored; Same: already stored.",
        caption_justify="left",
    )
    for col in (
        "Source",
        "Pulled",
        "Changed",
        "Same",
        "Skipped",
        "Unmatched",
        "Calls",
        "Time",
    ):
        table.add_column(col, justify="left" if col == "Source" else "right", no_wrap=True)
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
        for reason, n in r.skipped.most_common(5):
            console.print(f"  [yellow]{r.source}[/yellow] skipped {n}× {reason}")
        top = sorted(r.stored.unmatched.items(), key=lambda kv: -kv[1])[:5]
        if top:
            keys = ", ".join(f"{k} ({n})" for k, n in top)
            console.print(f"  [yellow]{r.source}[/yellow] records for unknown accounts: {keys}")


def run_sync(
    engine: Engine,
    settings: Settings,
    model: ScoringModel | None,
    *,
    only: str | None,
    console: Console,
) -> list[SyncReport]:
    sources = enabled_sources(settings, only)
    if not sources:
        console.print(
            "No source is configured: set SALESFORCE_*, HUBSPOT_*, ZENDESK_* or "
            "USAGE_* variables (see README), or use `healthbot import`."
        )
        return []
    reports, failed = [], []
    for source in sources:  # one source failing never stops the others
        report = SyncReport(source=source.name)
        try:
            run_source(engine, source, console, report)
        except ConnectorError as exc:
            failed.append(f"{source.name}: {exc}")
        reports.append(report)
    console.print(report_table(reports))
    explain_problems(reports, console)
    touched = set().union(*(r.stored.touched_accounts for r in reports))
    if model is not None and touched:
        result = rescore(engine, model, day=datetime.now(UTC).date(), account_ids=touched)
        console.print(
            f"Scored {result.scored} changed accounts: {result.announced} tier changes announced"
        )
    if failed:  # what was committed before the failure stays, and is scored above
        raise UserError("sync failed for " + "; ".join(failed))
    return reports


def run_import(
    engine: Engine, kind: str, path: Path, *, model: ScoringModel, console: Console
) -> SyncReport:
    try:
        source = CsvImport(kind, path, signals=model.signals)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    report = run_source(engine, source, console)
    console.print(report_table([report]))
    explain_problems([report], console)
    return report
