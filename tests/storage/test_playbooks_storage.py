"""The playbook adapter on SQLite and PostgreSQL: facts read in a fixed number of queries,
one live task per account and playbook whatever the concurrency, recovery, escalation,
snooze and people's actions, all in the audit log; the report's measures from stored tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, func, select

from health.db import session_scope
from health.models import (
    Account,
    Observation,
    PlaybookTask,
    PlaybookTaskEvent,
    Score,
    ScoreChange,
    SentimentEntry,
)
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from playbooks.actions import act
from playbooks.engine import evaluate, needs_of
from playbooks.reads import changes_of, live_tasks, load_facts, report_inputs
from playbooks.report import playbook_report
from playbooks.runner import run_playbooks, sweep_playbooks
from playbooks.spec import Condition, Playbook, PlaybookSet, TaskTemplate, Team
from playbooks.store import apply
from playbooks.triggers import TRIGGERS

DAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RESCUE = Playbook(
    key="rescue",
    name="Critical rescue",
    when=Condition("tier_entered", ("critical",)),
    task=TaskTemplate(title="Rescue {account.name}", due=timedelta(hours=48), severity="high"),
    recover_after=timedelta(days=7),
)
BOOK = PlaybookSet(
    (RESCUE,),
    team=Team(
        roles={"cs_manager": {"default": "lead@example.com"}},
        escalation={"account_owner": "cs_manager"},
    ),
)


def seed_accounts(engine, n: int) -> list[int]:
    records = [
        AccountRecord(
            source="salesforce",
            external_id=f"A{i}",
            name=f"Account {i}",
            domain=f"a{i}.test",
            owner=f"csm{i % 3}@example.com",
        )
        for i in range(n)
    ]
    with session_scope(engine) as s:
        store_batch(session=s, source="salesforce", batch=Batch(accounts=records), now=NOW)
        return list(s.execute(select(Account.id).order_by(Account.id)).scalars())


def score(engine, acc: int, day: date, total: float, tier: str, prev: str | None) -> int:
    """A stored score and its change; returns the change id."""
    with session_scope(engine) as s:
        row = Score(
            account_id=acc,
            score_date=day,
            computed_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=6),
            total=total,
            tier=tier,
            announced_tier=tier,
            confidence=0.9,
            reason=f"score {total}",
            drivers=[{"label": "usage vs baseline"}],
            model_version="t",
        )
        s.add(row)
        s.flush()
        change = ScoreChange(
            account_id=acc,
            score_id=row.id,
            changed_at=row.computed_at,
            from_total=None,
            to_total=total,
            delta=-10.0,
            from_tier=prev,
            to_tier=tier,
        )
        s.add(change)
        s.flush()
        return change.id


def tasks(engine) -> list[PlaybookTask]:
    with session_scope(engine) as s:
        return list(s.execute(select(PlaybookTask).order_by(PlaybookTask.id)).scalars())


def audit(engine, task_id: int) -> list[tuple[str, str]]:
    with session_scope(engine) as s:
        q = (
            select(PlaybookTaskEvent.actor, PlaybookTaskEvent.action)
            .where(PlaybookTaskEvent.task_id == task_id)
            .order_by(PlaybookTaskEvent.id)
        )
        return [tuple(r) for r in s.execute(q)]


def test_a_change_opens_one_task_and_reruns_never_duplicate_it(engine):
    a, b = seed_accounts(engine, 2)
    changes = [
        score(engine, a, DAY, 31, "critical", "at_risk"),
        score(engine, b, DAY, 85, "healthy", "monitor"),
    ]
    first = run_playbooks(engine, BOOK, change_ids=changes, now=NOW)
    again = run_playbooks(engine, BOOK, change_ids=changes, now=NOW + timedelta(minutes=5))
    (t,) = tasks(engine)
    assert (first.opened, again.opened) == (1, 0)
    assert (t.account_id, t.playbook, t.status, t.owner) == (
        a,
        "rescue",
        "open",
        "csm0@example.com",
    )
    assert t.title == "Rescue Account 0" and t.due_at == NOW + timedelta(hours=48)
    assert t.tier_at_open == "critical" and t.change_id == changes[0] and t.notify
    assert audit(engine, t.id) == [("healthbot", "opened")]


def test_two_workers_evaluating_the_same_change_open_it_once(engine):
    (a,) = seed_accounts(engine, 1)
    change = score(engine, a, DAY, 31, "critical", "at_risk")
    with session_scope(engine) as s:  # both read before either wrote
        facts = load_facts(
            s, account_ids=[a], now=NOW, needs=needs_of(BOOK), changes=changes_of(s, [change])
        )
        first = evaluate(BOOK, facts, live_tasks(s, [a]), NOW)
        second = evaluate(BOOK, facts, live_tasks(s, [a]), NOW)
    with session_scope(engine) as s:
        assert apply(s, first, NOW).opened == 1
    with session_scope(engine) as s:
        assert apply(s, second, NOW).opened == 0
    assert len(tasks(engine)) == 1


def test_recovery_after_the_hold_keeps_the_task_and_a_new_fall_opens_a_new_one(engine):
    (a,) = seed_accounts(engine, 1)
    run_playbooks(
        engine, BOOK, change_ids=[score(engine, a, DAY, 31, "critical", "at_risk")], now=NOW
    )
    better = score(engine, a, DAY + timedelta(days=1), 50, "at_risk", "critical")
    later = NOW + timedelta(days=1)
    assert run_playbooks(engine, BOOK, change_ids=[better], now=later).cleared == 1
    assert (
        run_playbooks(
            engine, BOOK, change_ids=[], now=later + timedelta(days=6), recheck_live=True
        ).recovered
        == 0
    )
    done = run_playbooks(
        engine, BOOK, change_ids=[], now=later + timedelta(days=7), recheck_live=True
    )
    assert done.recovered == 1
    (t,) = tasks(engine)
    assert t.status == "recovered" and t.resolved_by == "healthbot" and t.resolved_at is not None
    assert [a for _, a in audit(engine, t.id)] == ["opened", "cleared", "recovered"]
    worse = score(engine, a, DAY + timedelta(days=10), 30, "critical", "at_risk")
    assert run_playbooks(engine, BOOK, change_ids=[worse], now=NOW + timedelta(days=10)).opened == 1
    assert [t.status for t in tasks(engine)] == ["recovered", "open"]


def test_overdue_tasks_escalate_and_people_snooze_reassign_and_close_them(engine):
    (a,) = seed_accounts(engine, 1)
    run_playbooks(
        engine, BOOK, change_ids=[score(engine, a, DAY, 31, "critical", "at_risk")], now=NOW
    )
    (t,) = tasks(engine)
    late = NOW + timedelta(hours=49)
    assert sweep_playbooks(engine, BOOK, now=late).escalated == 1
    (t,) = tasks(engine)
    assert (t.owner_role, t.owner, t.escalation_level) == ("cs_manager", "lead@example.com", 1)
    assert t.due_at == late + timedelta(hours=48)
    assert (
        sweep_playbooks(engine, BOOK, now=t.due_at + timedelta(minutes=1)).overdue == 1
    )  # end of chain
    with session_scope(engine) as s:
        snoozed = act(
            s, t.id, action="snooze", actor="U1", now=late, until=late + timedelta(days=1)
        )
    assert snoozed.ok and snoozed.task.status == "snoozed" and snoozed.task.first_action_at == late
    assert sweep_playbooks(engine, BOOK, now=late + timedelta(hours=23)).unsnoozed == 0
    assert sweep_playbooks(engine, BOOK, now=late + timedelta(days=1)).unsnoozed == 1
    with session_scope(engine) as s:
        moved = act(
            s,
            t.id,
            action="reassign",
            actor="U1",
            now=late + timedelta(days=1),
            owner="eve@example.com",
        )
        assert moved.task.owner == "eve@example.com" and moved.task.first_action_at == late
        closed = act(s, t.id, action="done", actor="U2", now=late + timedelta(days=2))
        assert closed.ok and closed.task.status == "done" and closed.task.resolved_by == "U2"
        again = act(s, t.id, action="done", actor="U3", now=late + timedelta(days=3))
        assert not again.ok and again.message == "this task is already done by U2"
    assert audit(engine, t.id) == [
        ("healthbot", "opened"),
        ("healthbot", "escalated"),
        ("healthbot", "overdue"),
        ("U1", "snooze"),
        ("healthbot", "unsnoozed"),
        ("U1", "reassign"),
        ("U2", "done"),
    ]


def test_facts_come_from_the_database_as_of_now(engine):
    (a,) = seed_accounts(engine, 1)
    ref = AccountRef(crm_id="A0")
    obs = []
    for d in range(40):  # core features: 5,5,... falling weekly in the last 3 weeks
        at = NOW - timedelta(days=40 - d)
        weeks_ago = (40 - d - 1) // 7  # days 1-7 ago: this week
        obs.append(
            ObservationRecord(
                ref,
                "core_features_used",
                at,
                max(0, 8 - (3 - weeks_ago)) if weeks_ago < 3 else 8,
                "usage",
            )
        )
        obs.append(ObservationRecord(ref, "active_users", at, 5 if d < 20 else 0, "usage"))
    obs.append(ObservationRecord(ref, "champion_left", NOW - timedelta(days=3), 1, "crm"))
    obs.append(
        ObservationRecord(ref, "champion_left", NOW + timedelta(days=3), 1, "crm")
    )  # future: unseen
    with session_scope(engine) as s:
        store_batch(session=s, source="usage", batch=Batch(observations=obs), now=NOW)
        for i, rating in enumerate([4, 2]):
            s.add(
                SentimentEntry(
                    account_id=a, rating=rating, author="U1", created_at=NOW - timedelta(days=5 - i)
                )
            )
    score(engine, a, DAY - timedelta(days=32), 80, "healthy", None)
    score(engine, a, DAY, 61, "monitor", "healthy")
    book = PlaybookSet(
        tuple(
            Playbook(
                key=n, name=n, when=Condition(n, TRIGGERS[n].parse(v)), task=TaskTemplate(title=n)
            )
            for n, v in [
                ("score_dropped", {"points": 15, "within": "30d"}),
                ("no_usage", {"days": 14}),
                ("adoption_falling", {"weeks": 3}),
                ("champion_left", {"within": "7d"}),
                ("sentiment_falling", True),
            ]
        )
    )
    with session_scope(engine) as s:
        (f,) = load_facts(s, account_ids=[a], now=NOW, needs=needs_of(book), changes={})
    assert f.total == 61 and f.tier == "monitor" and f.total_ago == {30: 80}
    # the last active day (d=19) is 21 days back: beyond the 15 days `no_usage: 14d` looks at
    assert f.last_active_days == {"active_users": None}
    assert f.weekly["core_features_used"][:4] == (5.0, 6.0, 7.0, 8.0)
    assert (f.sentiment, f.previous_sentiment) == (2, 4)
    assert f.signals["champion_left"].days_since == 3
    fired = {d.playbook for d in evaluate(book, [f], {}, NOW)}
    assert fired == {
        "score_dropped",
        "no_usage",
        "adoption_falling",
        "champion_left",
        "sentiment_falling",
    }


def test_reading_facts_takes_the_same_number_of_queries_for_10_or_300_accounts(engine):
    ids = seed_accounts(engine, 300)
    with session_scope(engine) as s:
        s.add_all(
            Observation(
                account_id=i,
                record_id=i,
                signal="active_users",
                observed_at=NOW - timedelta(days=1),
                value=3,
                source="u",
            )
            for i in ids
        )
    changes = [score(engine, i, DAY, 30 + i % 50, "critical", "at_risk") for i in ids]
    from playbooks.loader import load_playbooks

    book = load_playbooks()
    counts = []
    for n in (10, 300):
        counts.append(0)

        def count(*_args) -> None:
            counts[-1] += 1

        event.listen(engine, "before_cursor_execute", count)
        try:
            run_playbooks(engine, book, change_ids=changes[:n], now=NOW)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        with session_scope(engine) as s:  # start the second run from no tasks
            s.execute(PlaybookTaskEvent.__table__.delete())
            s.execute(PlaybookTask.__table__.delete())
    assert counts[0] == counts[1], counts


def test_report_counts_a_save_when_a_red_account_turns_healthy_within_90_days(engine):
    a, b = seed_accounts(engine, 2)
    run_playbooks(
        engine,
        BOOK,
        change_ids=[
            score(engine, a, DAY, 30, "critical", "at_risk"),
            score(engine, b, DAY, 35, "critical", "at_risk"),
        ],
        now=NOW,
    )
    score(engine, a, DAY + timedelta(days=40), 82, "healthy", "monitor")  # saved
    score(engine, b, DAY + timedelta(days=120), 82, "healthy", "monitor")  # too late
    with session_scope(engine) as s:
        first = s.execute(select(func.min(PlaybookTask.id))).scalar_one()
        act(s, first, action="done", actor="U1", now=NOW + timedelta(hours=5))
        records, green = report_inputs(s)
    rows, total = playbook_report(
        records, green, NOW + timedelta(days=200), {"rescue": "Critical rescue"}
    )
    assert (total.saves, total.save_cases, total.save_rate) == (1, 2, 0.5)
    assert total.median_hours_to_first_action == 9.0  # the change at 06:00 -> acted at 15:00
    assert (total.overdue, total.overdue_rate) == (1, 0.5)  # b: nobody acted before its due time
    assert rows[0].playbook == "Critical rescue" and rows[0].tasks == 2
