"""`healthbot writeback [--status]` and the writeback part of `healthbot run`: rendering only."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import Engine

from cli.render import report_table
from health.db import session_scope
from health.outbox import outbox_rows
from workers.writeback import FlushReport

STATES = ("pending", "retrying", "in flight", "parked")


class FlushBars:
    """An `on_chunk` hook: one spinner line per CRM with the rows written so far."""

    def __init__(self, bar: Progress):
        self.bar, self.tasks = bar, {}

    def __call__(self, r: FlushReport) -> None:
        if r.target not in self.tasks:
            self.tasks[r.target] = self.bar.add_task(f"{r.target} writeback", detail="")
        detail = f"{r.acknowledged:,} written · {r.requests:,} API calls"
        self.bar.update(self.tasks[r.target], detail=detail)


def flush_table(reports: list[FlushReport]) -> Table:
    table = report_table(
        "Writeback",
        "Written: acknowledged by the CRM; Same: the CRM already showed it, not sent.",
        ("CRM", "Written", "Same", "Retrying", "Parked", "Calls", "Time"),
    )
    for r in reports:
        table.add_row(
            r.target,
            f"{r.acknowledged + r.verified:,}",
            f"{r.unchanged:,}",
            f"{r.retrying:,}",
            f"{r.parked:,}",
            f"{r.requests:,}",
            f"{r.seconds:.1f}s",
        )
    return table


def show_flushes(reports: list[FlushReport], console: Console) -> None:
    if reports:
        console.print(flush_table(reports))
    for r in reports:
        if r.skipped:
            console.print(f"  [yellow]{r.target}[/yellow] skipped: {r.skipped}")
        if r.retrying or r.parked:
            console.print(
                f"  [yellow]{r.target}[/yellow] refused {r.retrying + r.parked} records: "
                "see `healthbot writeback --status`"
            )


def show_status(engine: Engine, console: Console) -> int:
    """Pending and parked rows per CRM, and every row with an error. Returns the row count."""
    with session_scope(engine) as session:
        counts, problems = outbox_rows(session=session)
    if not counts:
        console.print("The outbox is empty: every CRM shows the newest scores.")
        return 0
    summary = Table(title="Outbox", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    summary.add_column("CRM")
    for state in STATES:
        summary.add_column(state.capitalize(), justify="right")
    for target in sorted({t for t, _ in counts}):
        summary.add_row(target, *(f"{counts.get((target, s), 0):,}" for s in STATES))
    console.print(summary)
    if problems:
        console.print("[bold]Records the CRM refused[/bold] (parked first, newest first)")
    for p in problems:
        tries = f"{p.attempts} {'try' if p.attempts == 1 else 'tries'}"
        console.print(
            f"  [bold]{p.target}[/bold] {p.account} ({p.external_id}) · {p.state} · {tries}",
            highlight=False,
        )
        console.print(f"    {p.error_code}: {p.last_error or ''}", highlight=False, style="yellow")
    if any(p.state == "parked" for p in problems):
        console.print(
            "Parked rows are not retried: fix the cause in the CRM (or the field mapping); the "
            "account's next changed score is sent afresh."
        )
    return sum(counts.values())
