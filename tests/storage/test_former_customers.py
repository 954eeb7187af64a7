"""An account that churned is a former customer from the next day: not scored any more, out of
the portfolio, a CSM's book, the digest and the playbooks, while its brief says so and keeps
its history. A renewal or a new customer_since after the churn (a win-back) and a churn dated
in the future (notice given) keep the account in the book. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from bot.views import as_dicts, brief_blocks
from health.backfill import backfill_scores
from health.briefs import account_brief, book, churn_note, portfolio
from health.db import session_scope
from health.digests import needing_attention
from health.models import Account, Score
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord, OutcomeRecord
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from playbooks.engine import needs_of
from playbooks.loader import load_playbooks
from playbooks.reads import load_facts

MODEL = load_model(DEFAULT_MODEL_PATH)
DAY = date(2026, 11, 1)
CHURN = DAY - timedelta(days=10)
OWNER = "kim@x.test"
# name -> (outcomes, customer_since)
BOOK = {
    "GONE": ([("churned", CHURN)], None),
    "BACK": ([("churned", CHURN - timedelta(days=60)), ("renewed", CHURN)], None),
    "REWON": ([("churned", CHURN - timedelta(days=60))], CHURN),
    "LEAVING": ([("churned", DAY + timedelta(days=30))], None),
    "FINE": ([], None),
}


def seed(engine) -> None:
    """Five accounts of one CSM whose usage collapsed a month ago (every one at risk)."""
    at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    obs, outcomes, accounts = [], [], []
    for ext, (events, since) in BOOK.items():
        ref = AccountRef(crm_id=ext)
        for d in range(120):
            users, when = (3 if d < 30 else 60), at - timedelta(days=d)
            obs += [
                ObservationRecord(ref, "active_users", when, users, "product"),
                ObservationRecord(ref, "seats", when, 80, "product"),
                ObservationRecord(ref, "core_features_used", when, 1 if d < 30 else 4, "product"),
                ObservationRecord(ref, "key_events", when, 5 * users, "product"),
            ]
        outcomes += [OutcomeRecord(ref, kind, on, "salesforce") for kind, on in events]
        accounts.append(
            AccountRecord("salesforce", ext, f"Account {ext}", f"{ext.lower()}.test", owner=OWNER,
                          arr=50_000.0, customer_since=since)
        )  # fmt: skip
    batch = Batch(accounts=accounts, observations=obs, outcomes=outcomes)
    with session_scope(engine) as s:
        store_batch(session=s, source="salesforce", batch=batch, now=at)


def ids(engine) -> dict[str, int]:
    with session_scope(engine) as s:
        return {ext: i for i, ext in s.execute(select(Account.id, Account.external_id))}


def scored_days(engine) -> dict[str, list[date]]:
    with session_scope(engine) as s:
        q = select(Account.external_id, Score.score_date).join(Account).order_by(Score.score_date)
        out: dict[str, list[date]] = {}
        for ext, d in s.execute(q):
            out.setdefault(ext, []).append(d)
        return out


def test_a_former_customer_leaves_the_book_and_its_brief_says_so(engine):
    seed(engine)
    report = rescore(engine, MODEL, day=DAY)
    assert (report.accounts, report.former) == (4, 1)
    assert set(scored_days(engine)) == set(BOOK) - {"GONE"}
    with session_scope(engine) as s:  # its last score before the churn, as a backfill left it
        last = dict(score_date=CHURN, model_version="x", total=20, confidence=1.0, reason="r",
                    computed_at=datetime.now(UTC))  # fmt: skip
        s.add(
            Score(
                account_id=ids(engine)["GONE"], tier="critical", announced_tier="critical", **last
            )
        )
    with session_scope(engine) as s:
        view = portfolio(session=s)
        mine = {line.name for line in book(session=s, owner=OWNER)}
        digest = {line.name for line in needing_attention(session=s)[OWNER]}
        gone = s.get(Account, ids(engine)["GONE"])
        brief = account_brief(session=s, account=gone, model=MODEL)
        leaving = s.get(Account, ids(engine)["LEAVING"])
        leaving = account_brief(session=s, account=leaving, model=MODEL)
        morning = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
        facts = load_facts(s, account_ids=list(ids(engine).values()), now=morning,
                           needs=needs_of(load_playbooks()), changes={})  # fmt: skip
    assert view.former == 1 and sum(t.accounts for t in view.tiers) == 4
    assert "Account GONE" not in {line.name for line in view.at_risk}
    assert mine == digest == {f"Account {e}" for e in BOOK if e != "GONE"}
    assert {f.name for f in facts} == mine  # no playbook opens a task on it
    assert brief.churned_on == CHURN and brief.history == [20]
    assert churn_note(brief, DAY).startswith(f"Former customer: churned on {CHURN}")
    now = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    slack = json.dumps(
        as_dicts(brief_blocks(brief, today=DAY, crm_url=None, freshness={}, now=now))
    )
    assert "Former customer" in slack and f"churned {CHURN:%d %b %Y}" in slack
    assert "renewal" not in slack.lower()  # no renewal date for a customer who left
    assert leaving.churned_on == DAY + timedelta(days=30)
    assert churn_note(leaving, DAY).startswith("Renewal lost: the contract ends")


def test_sync_touched_ids_and_a_backfill_score_no_day_after_the_churn(engine):
    seed(engine)
    touched = list(ids(engine).values())
    report = rescore(engine, MODEL, day=DAY, account_ids=touched)
    assert (report.accounts, report.former) == (4, 1)
    backfill_scores(engine, MODEL, start=DAY - timedelta(days=20), end=DAY, replace=True)
    days = scored_days(engine)
    assert days["GONE"] and max(days["GONE"]) == CHURN  # up to the churn's day, none after
    assert max(days["FINE"]) == max(days["BACK"]) == max(days["REWON"]) == DAY
    assert max(days["LEAVING"]) == DAY
