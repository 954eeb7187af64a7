"""The demo end to end: its at-risk list is dominated by accounts whose hidden trajectory is
declining or shocked (checked against the generator's ground truth)."""

from __future__ import annotations

from collections import Counter
from datetime import date

from rich.console import Console
from sqlalchemy import func, select

from cli.demo import STEPS, DemoContext, run_demo
from health.briefs import portfolio
from health.db import session_scope
from health.identity import to_review
from health.models import Account, Score
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH


def test_demo_at_risk_accounts_are_the_declining_ones(tmp_path):
    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)  # noqa: SIM115
    ctx = DemoContext(
        console=console,
        db_path=tmp_path / "demo.db",
        model=load_model(DEFAULT_MODEL_PATH),
        accounts=160,
        days=200,
        seed=11,
        end=date(2026, 11, 1),
    )
    run_demo(ctx)
    by_id = ctx.portfolio.truth()  # accounts land under their CRM's ids: match on domain
    truth = {a.domain: by_id[a.external_id] for a in ctx.portfolio.accounts}
    with session_scope(ctx.engine) as session:
        ext = dict(session.execute(select(Account.id, Account.domain)).all())
        view = portfolio(session=session, top=200)
        n_scores = session.exec(select(func.count()).select_from(Score)).scalar_one()
        accounts = session.exec(select(Account)).scalars().all()
    risky = Counter(truth[ext[line.account_id]] for line in view.at_risk)
    bad = risky["slow_decline"] + risky["sudden_shock"]
    assert len(view.at_risk) >= 10
    assert bad / len(view.at_risk) >= 0.6, risky
    top10 = Counter(truth[ext[line.account_id]] for line in view.at_risk[:10])
    assert top10["slow_decline"] + top10["sudden_shock"] >= 7, top10
    healthy_share = Counter(truth.values())["thriving"] / len(truth)
    assert risky["thriving"] / len(view.at_risk) < healthy_share / 2
    assert len(accounts) == 160 + 1  # the sandbox's one duplicate HubSpot company stands apart
    with session_scope(ctx.engine) as session:
        assert len(to_review(session=session)) == 2  # ... and both claimants are up for review
    linked = {r["linked_by"] for r in ctx_records(ctx)}
    assert {"cross_ref", "domain"} <= linked  # the overlap between the two CRMs is linked
    assert n_scores >= 160 * 150  # scored day by day over the history
    printed = (tmp_path / "out.txt").read_text()
    for title, _ in STEPS:
        assert title in printed
    assert "Most at risk" in printed and "healthbot-demo" not in printed
    for source in ("salesforce", "hubspot", "zendesk", "usage"):
        assert source in printed  # synced through the sandbox APIs with the real clients
    assert {a.source for a in accounts} == {"salesforce", "hubspot"}


def ctx_records(ctx) -> list[dict]:
    from health.models import CrmRecord

    with session_scope(ctx.engine) as session:
        return [{"linked_by": r.linked_by} for r in session.exec(select(CrmRecord)).scalars()]
