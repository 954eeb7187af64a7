"""`healthbot accounts review`: rendering only."""

from __future__ import annotations

from rich.console import Console
from sqlalchemy.engine import Engine

from health.db import session_scope
from health.identity import to_review


def show_review(engine: Engine, console: Console) -> int:
    with session_scope(engine) as session:
        records = to_review(session=session)
    if not records:
        console.print("Nothing to review: every record is linked or stands on its own.")
        return 0
    console.print(f"[bold]{len(records)} records left unlinked[/bold] (ambiguous, never guessed)")
    for r in records:
        console.print(f"  [bold]{r.source}:{r.external_id}[/bold] {r.name}", highlight=False)
        console.print(f"    {r.review}", style="yellow", highlight=False)
    console.print(
        "Settle each with `healthbot accounts link A B` (same customer) or leave it: "
        "`healthbot accounts unlink SOURCE:ID` takes a record off an account."
    )
    return len(records)
