"""`healthbot crm setup`: create the score fields on every configured CRM (workers.crm_setup)
and show one line per field: created, updated (tier values added), already there, not visible,
or what to create or add by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from cli.errors import UserError
from health.settings import get_settings

if TYPE_CHECKING:  # the vendor clients load only when the command runs: `healthbot` starts fast
    from workers.crm_setup import CrmSetup, ManualField

crm_app = typer.Typer(
    help="The CRM fields healthbot writes health scores into.", no_args_is_help=True
)
TITLES = {"salesforce": "Salesforce Account fields", "hubspot": "HubSpot company properties"}
NOTHING_CONFIGURED = (
    "no CRM is configured: set SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN (or "
    "SALESFORCE_USERNAME / SALESFORCE_PASSWORD), or HUBSPOT_ACCESS_TOKEN"
)


@crm_app.command("setup")
def setup() -> None:
    """Create the health-score fields on every configured CRM (only those missing: running it
    again changes nothing), and add the tier values an older tier field lacks. Fields and values
    it may not create are listed to add by hand; then it exits 1."""
    from workers.crm_setup import setup_crm

    show_setup(setup_crm(get_settings()), Console(soft_wrap=True))


def show_setup(results: list[CrmSetup], console: Console) -> None:
    """Print every CRM's fields; raise UserError when none is configured or a person must act."""
    if not results:
        raise UserError(NOTHING_CONFIGURED)
    for result in results:
        for line in crm_lines(result):
            console.print(line, highlight=False)
    if todo := [r.crm for r in results if r.needs_admin]:
        raise UserError(f"the score fields are not ready on {', '.join(todo)}: see above")


def crm_lines(r: CrmSetup) -> list[Text]:
    lines = [Text(TITLES.get(r.crm, r.crm), style="bold")]
    if r.error:
        return [*lines, mark("✗", "bold red", r.error)]
    by_hand = [*(f.name for f in r.by_hand), *(v.name for v in r.values_by_hand)]
    names = [*r.created, *r.updated, *r.present, *r.hidden, *by_hand]
    width = max(map(len, names), default=0)
    lines += [mark("✓", "green", f"{n:<{width}}  created") for n in r.created]
    lines += [
        mark("✓", "green", f"{n:<{width}}  updated: added {', '.join(values)}")
        for n, values in r.updated.items()
    ]
    lines += [mark("·", "dim", f"{n:<{width}}  already there") for n in r.present]
    lines += [
        mark("✗", "bold red", f"{n:<{width}}  exists, but the API user cannot see it")
        for n in r.hidden
    ]
    lines += [mark("✗", "bold red", manual(f, width)) for f in r.by_hand]
    lines += [mark("✗", "bold red", f"{v.name:<{width}}  {v.steps}") for v in r.values_by_hand]
    if r.reason:
        lines.append(Text(f"  why: {r.reason}", style="yellow"))
    lines += [Text(f"  note: {note}", style="yellow") for note in r.notes]
    return lines


def manual(f: ManualField, width: int = 0) -> str:
    size = f", {f.size}" if f.size else ""
    return f'{f.name:<{width}}  create by hand: {f.type}{size}, label "{f.label}"'


def mark(symbol: str, style: str, text: str) -> Text:
    return Text.assemble("  ", (symbol, style), " ", text)
