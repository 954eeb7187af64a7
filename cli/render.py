"""Rich renderings of the read models: portfolio table, at-risk list, account brief."""

from __future__ import annotations

from datetime import timedelta

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from health.briefs import Brief, Portfolio, churn_note, is_former
from health.scoring.explain import format_value
from health.scoring.model import TIER_LABELS

TIER_STYLE = {
    "healthy": "green",
    "monitor": "yellow",
    "at_risk": "dark_orange",
    "critical": "bold red",
    "insufficient": "dim italic",  # no tier claimed: too little data
}
SPARKS = "▁▂▃▄▅▆▇█"


def tier_text(tier: str) -> Text:
    return Text(TIER_LABELS.get(tier, tier), style=TIER_STYLE.get(tier, ""))


def trend_text(delta: float | None, flat: float = 5) -> Text:
    if delta is None:
        return Text("new", style="dim")
    if delta > flat:
        return Text(f"▲ {delta:+.0f}", style="green")
    if delta < -flat:
        return Text(f"▼ {delta:+.0f}", style="red")
    return Text(f"▶ {delta:+.0f}", style="dim")


def money(value: float | None) -> str:
    if not value:
        return "—"
    return f"${value / 1e6:.1f}M" if value >= 1e6 else f"${value / 1e3:.0f}k"


def sparkline(values: list[float]) -> str:
    return "".join(SPARKS[min(7, int(v / 100 * 8))] for v in values)


def portfolio_table(p: Portfolio) -> Table:
    total = sum(t.accounts for t in p.tiers) or 1
    arr_total = sum(t.arr for t in p.tiers) or 1
    table = Table(title=f"Portfolio health — {p.day}", title_justify="left")
    for col in ("Tier", "Accounts", "Share", "ARR", "ARR share"):
        table.add_column(col, justify="left" if col == "Tier" else "right")
    for t in p.tiers:
        table.add_row(
            tier_text(t.tier),
            str(t.accounts),
            f"{t.accounts / total:.0%}",
            money(t.arr),
            f"{t.arr / arr_total:.0%}",
        )
    if p.former:
        table.caption = f"{p.former} former customers (churned) are not counted"
        table.caption_justify = "left"
    return table


def at_risk_table(p: Portfolio) -> Table:
    table = Table(title="Most at risk", title_justify="left", show_lines=True)
    table.add_column("Account", no_wrap=True)
    table.add_column("Score", justify="right")
    table.add_column("Tier")
    table.add_column("30d", justify="right")
    table.add_column("ARR", justify="right")
    table.add_column("Why", ratio=1)
    for line in p.at_risk:
        why = line.reason.split(": ", 1)[-1]
        table.add_row(
            line.name,
            f"{line.total:.0f}",
            tier_text(line.tier),
            trend_text(line.trend_30d),
            money(line.arr),
            why,
        )
    return table


def brief_panel(b: Brief) -> Panel:
    line = b.line
    head = Text.assemble(
        (f"{line.total:.0f}", "bold"),
        " / 100  ",
        tier_text(b.announced_tier),
        "  ",
        trend_text(line.trend_30d),
        " 30d  ",
        (f"confidence {line.confidence:.0%}", "dim"),
    )
    if b.pending_tier:
        head.append(f"  (trending {TIER_LABELS[b.pending_tier]}, not yet held)", style="italic")
    facts = Text(
        f"{line.domain or '—'} · {line.segment or 'unknown segment'} · ARR {money(line.arr)} · "
        f"owner {line.owner or '—'} · "
        + (
            f"churned {b.churned_on}"
            if is_former(b, b.score_date + timedelta(days=1))
            else f"renews {b.renewal_date or '—'}"
        ),
        style="dim",
    )
    comps = Table(box=None, pad_edge=False)
    for col in ("Component", "Score", "Weight", "Signals"):
        comps.add_column(col, justify="right" if col in ("Score", "Weight") else "left")
    for c in b.components:
        score = "no data" if c.score is None else f"{c.score:.0f}"
        if c.stale:
            score += " (stale)"
        signals = ", ".join(f"{label} {format_value(v, fmt)}" for label, fmt, v, _ in c.metrics)
        comps.add_row(c.label, score, f"{c.share:.0%}", signals or "—")
    parts = [head, facts]
    if note := churn_note(b, b.score_date + timedelta(days=1)):
        parts.append(Text(note, style="bold yellow"))
    if len(b.records) > 1 or any(r["linked_by"] != "new" for r in b.records):
        linked = " · ".join(
            f"{r['source']} {r['id']}" + ("" if r["linked_by"] == "new" else f" ({r['linked_by']})")
            for r in b.records
        )
        parts.append(Text(f"linked records: {linked}", style="dim"))
    parts += [Text(""), Text(line.reason), Text(""), comps]
    if b.history:
        parts += [Text(""), Text(f"Last {len(b.history)} days  {sparkline(b.history)}")]
    if b.history_gap:
        parts.append(Text(b.history_gap, style="yellow"))
    if b.changes:
        moves = "; ".join(
            f"{c['on']} {TIER_LABELS.get(c['from'] or '', '—')} → {TIER_LABELS[c['to']]}"
            for c in b.changes
        )
        parts.append(Text(f"Tier changes: {moves}", style="dim"))
    footer = f"scored {b.score_date} · model {b.model_version}"
    return Panel(
        Group(*parts), title=f"[bold]{line.name}[/bold]", subtitle=footer, subtitle_align="right"
    )


def console() -> Console:
    return Console()


def spinners(console: Console) -> Progress:
    """One spinner line per running part (a source, a CRM) with its detail and elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


def progress_bar(console: Console) -> Progress:
    """A bar per long job (accounts scored, days replayed) with its count and elapsed time."""
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def report_table(title: str, caption: str, columns: tuple[str, ...]) -> Table:
    """A run report: the first column names the part, the others are right-aligned counts."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=caption,
        caption_justify="left",
    )
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left", no_wrap=True)
    return table
