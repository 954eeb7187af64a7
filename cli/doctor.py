"""`healthbot doctor`: one line per part (✓ ok, ✗ broken, · information), each broken part
with what to do; exit code 1 when something needed is broken."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from health.settings import get_settings

if TYPE_CHECKING:  # the vendor clients load only when the command runs: `healthbot` starts fast
    from workers.doctor import Check

MARKS = {True: ("✓", "green"), False: ("✗", "bold red"), None: ("·", "dim")}


def check_line(check: Check, width: int = 0) -> Text:
    mark, style = MARKS[check.ok]
    line = Text.assemble((mark, style), " ", (check.part.ljust(width), "bold"), "  ", check.detail)
    if check.ok is False and check.fix:
        line.append(f" → {check.fix}", style="yellow")
    return line


def doctor() -> None:
    """Check the database, Redis, every configured source and CRM: one line each, with the fix
    for whatever is broken. Exits 1 when something needed is broken."""
    from workers.doctor import failed, run_checks

    out = Console(soft_wrap=True)
    checks = run_checks(get_settings())
    width = max(len(c.part) for c in checks)
    for check in checks:
        out.print(check_line(check, width), highlight=False)
    if problems := failed(checks):
        noun = "problem" if len(problems) == 1 else "problems"
        out.print(Text(f"{len(problems)} {noun} to fix", style="bold red"))
        raise typer.Exit(1)
    out.print(Text("healthbot is ready", style="green"))
