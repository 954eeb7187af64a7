"""`healthbot demo`: a sandbox portfolio, scored day by day, shown as a CSM would see it.

The demo is a list of steps over one context; later capabilities (sync through the sandbox
vendor APIs, CRM writeback, Slack, backtest) plug in as further steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from cli.demo_slack import slack_views
from cli.demo_sync import (
    show_crm_fields,
    start_sandboxes,
    stop_sandboxes,
    sync_sandbox_apis,
    write_to_crms,
)
from cli.render import at_risk_table, brief_panel, portfolio_table, progress_bar
from connectors.registry import configured_sinks
from connectors.sandbox.portfolio import Portfolio, generate_portfolio
from health.backfill import backfill_scores
from health.briefs import account_brief, portfolio
from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.models import Account
from health.scoring.model import ScoringModel
from health.settings import Settings


@dataclass
class DemoContext:
    console: Console
    db_path: Path
    model: ScoringModel
    accounts: int
    days: int
    seed: int
    end: date
    engine: Engine | None = None
    portfolio: Portfolio | None = None
    settings: Settings | None = None  # pointing at the sandbox vendor APIs
    servers: list = field(default_factory=list)  # the running sandboxes
    shown_account: Account | None = None  # the account whose brief the demo shows
    notes: list[str] = field(default_factory=list)


DemoStep = Callable[[DemoContext], None]


def fresh_database(ctx: DemoContext) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ctx.db_path}{suffix}").unlink(missing_ok=True)
    ctx.engine = make_engine(f"sqlite:///{ctx.db_path}")
    upgrade(ctx.engine)


def build_portfolio(ctx: DemoContext) -> None:
    ctx.portfolio = generate_portfolio(ctx.accounts, ctx.days, seed=ctx.seed, end=ctx.end)
    ctx.console.print(
        f"  {len(ctx.portfolio.accounts)} accounts, {ctx.days} days of history "
        f"({ctx.portfolio.start} → {ctx.portfolio.end}), seed {ctx.seed}"
    )


def score_history(ctx: DemoContext) -> None:
    start = ctx.end - timedelta(days=ctx.days - 1)
    with progress_bar(ctx.console) as bar:
        with session_scope(ctx.engine) as session:  # customers in both CRMs are one account
            live = select(func.count()).where(Account.deleted_at.is_(None))
            total = session.execute(live).scalar_one()
        task = bar.add_task("scoring accounts, day by day", total=total)
        report = backfill_scores(
            ctx.engine,
            ctx.model,
            start=start,
            end=ctx.end,
            workers=min(2, os.cpu_count() or 1),
            progress=lambda n: bar.update(task, advance=n),
            targets=configured_sinks(ctx.settings),
        )
    ctx.console.print(
        f"  {report.scored:,} daily scores, {report.changes:,} score changes, "
        f"{report.announced:,} announced tier changes"
    )


def playbooks_over_history(ctx: DemoContext) -> None:
    """The default playbooks run after every day's scoring of the year, as the workers would:
    which tasks they would have asked of the team, and what the report measures."""
    from cli.playbooks import playbook_table
    from playbooks.loader import load_playbooks
    from playbooks.reads import report_inputs
    from playbooks.report import playbook_report
    from playbooks.runner import replay_playbooks

    book = load_playbooks(ctx.settings.healthbot_playbooks if ctx.settings else None)
    start = ctx.end - timedelta(days=ctx.days - 1)
    days = [start + timedelta(days=i) for i in range(ctx.days)]
    with progress_bar(ctx.console) as bar:
        task = bar.add_task("playbooks, day by day", total=len(days))
        report = replay_playbooks(
            ctx.engine, book, days=days, progress=lambda n: bar.update(task, advance=n)
        )
    now = datetime.combine(ctx.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    with session_scope(ctx.engine) as session:
        tasks, green = report_inputs(session)
        live = session.execute(select(func.count()).where(Account.deleted_at.is_(None)))
        accounts = live.scalar_one()
    rows, total = playbook_report(tasks, green, now, {p.key: p.name for p in book.playbooks})
    share = total.accounts / accounts if accounts else 0
    live = {t.account_id for t in tasks if t.resolved_at is None}
    ctx.console.print(
        f"  {report.opened:,} tasks opened on {total.accounts:,} of {accounts:,} accounts "
        f"({share:.0%}) over {len(days)} days; {report.recovered:,} recovered on their own, "
        f"{report.escalated:,} escalations. Today {total.open:,} tasks are open on "
        f"{len(live):,} accounts ({len(live) / max(accounts, 1):.0%})."
    )
    ctx.console.print(playbook_table(rows, total))
    ctx.console.print(
        "  Nobody works the sandbox's tasks, so time to first action is empty and every task "
        "runs overdue; with a team on Slack these measure the team."
    )


def show_portfolio(ctx: DemoContext) -> None:
    with session_scope(ctx.engine) as session:
        view = portfolio(session=session, top=10)
        ctx.console.print(portfolio_table(view))
        ctx.console.print(at_risk_table(view))
        if view.at_risk:
            ctx.shown_account = session.get(Account, view.at_risk[0].account_id)
            brief = account_brief(session=session, account=ctx.shown_account, model=ctx.model)
            ctx.console.print(brief_panel(brief))


def backtest_step(ctx: DemoContext) -> None:
    """What `healthbot backtest` and `backtest --fit` say about the sandbox's renewals."""
    from cli.backtest import or_dash as fmt
    from health.backtest_read import backtest_report
    from health.calibration import fit_report

    with session_scope(ctx.engine) as session:
        r = backtest_report(session=session, lead_days=90)
    if r["problem"]:
        ctx.console.print(f"  Cannot backtest yet: {r['problem']}")
        return
    with session_scope(ctx.engine) as session:
        fit, _ = fit_report(session=session, model=ctx.model, lead_days=90)
    ctx.console.print(
        f"  {r['outcomes']} renewals ({r['churned']} churned), each against its score 90 days "
        f"before: [bold]AUC {r['auc']:.2f}[/bold] for model {r['model_version']} "
        f"(0.5 = chance); at risk or critical as the churn flag: precision "
        f"{fmt(r['precision'], '.0%')}, recall {fmt(r['recall'], '.0%')}"
    )
    bands = " · ".join(
        f"{b['band']} {fmt(b['retention'], '.0%')}" for b in r["bands"] if b["outcomes"]
    )
    ctx.console.print(f"  Retention by score band: {bands}")
    if fit["problem"]:
        ctx.console.print(f"  No fit: {fit['problem']}")
        return
    ctx.console.print(
        f"  Fitted weights (`healthbot backtest --fit`), judged on the {fit['held_out']} later "
        f"renewals it never saw: [bold]AUC {fmt(fit['proposed']['auc'])}[/bold] against "
        f"{fmt(fit['current']['auc'])} for the current model on the same renewals"
    )
    if fit["cv_auc"] is None:
        ctx.console.print(
            "  (too few renewals settled a lead time before one another to cross-validate, so "
            "the proposal keeps the current weights; two years of history move them: "
            "`healthbot demo --days 730`)"
        )


def crm_page(ctx: DemoContext) -> None:
    if ctx.shown_account is not None:
        show_crm_fields(ctx, ctx.shown_account)


def where_data_lives(ctx: DemoContext) -> None:
    url = f"sqlite:///{ctx.db_path}"
    ctx.console.print(
        f"  Database: [bold]{ctx.db_path}[/bold] (SQLite; PostgreSQL via DATABASE_URL)"
    )
    ctx.console.print(f"  Scoring model: {ctx.model.version} — edit a copy and set HEALTHBOT_MODEL")
    ctx.console.print(f'  Try: [bold]DATABASE_URL={url} healthbot brief "<account name>"[/bold]')


STEPS: list[tuple[str, DemoStep]] = [
    ("Create a fresh demo database", fresh_database),
    ("Build the sandbox portfolio", build_portfolio),
    ("Start sandbox Salesforce, HubSpot, Zendesk and Stripe APIs on loopback", start_sandboxes),
    ("Sync through them with the real vendor clients", sync_sandbox_apis),
    ("Score every account, every day", score_history),
    ("Playbooks over the year: the tasks they open, what they achieve", playbooks_over_history),
    ("Your portfolio", show_portfolio),
    ("Does the score predict renewals? (`healthbot backtest`)", backtest_step),
    ("One pass of the pipeline (`healthbot run`): scores onto the CRM pages", write_to_crms),
    ("What the account page shows in the CRM", crm_page),
    ("In Slack: the brief, the morning digest, the task DM", slack_views),
    ("Where the data lives", where_data_lives),
]


def run_demo(ctx: DemoContext, steps: list[tuple[str, DemoStep]] | None = None) -> None:
    try:
        for title, step in steps or STEPS:
            ctx.console.rule(f"[bold]{title}")
            step(ctx)
    finally:
        stop_sandboxes(ctx)
