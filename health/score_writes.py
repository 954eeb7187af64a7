"""How scores are stored: Score rows, the ScoreChange audit trail, and the outbox rows that
carry a changed score to each CRM. The rules of what counts as a change live here, once,
for the rescore and the replay alike."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from health.models import Account, CrmRecord, CrmWrite, OutboxItem, Score, ScoreChange
from health.repo import bulk_upsert, chunked
from health.scoring.engine import AccountContext

Progress = Callable[[int], None]  # called with the number of accounts just finished


@dataclass
class RescoreReport:
    accounts: int = 0
    scored: int = 0
    no_data: int = 0
    former: int = 0  # former customers (churned) left out
    changes: int = 0
    announced: int = 0
    worker_statements: int = 0  # sent by worker processes, unseen by the caller's engine
    change_ids: list[int] = field(default_factory=list, repr=False)  # the ScoreChange rows written
    playbooks: Any = None  # what the playbooks did with the changes, where they ran
    playbooks_error: str | None = None  # why they did not run (a broken playbook set)

    def add(
        self, written: WriteReport, *, scored: int, accounts: int, progress: Progress | None
    ) -> None:
        self.changes += written.changes
        self.announced += written.announced
        self.change_ids.extend(written.change_ids)
        self.scored += scored
        self.accounts += accounts
        if progress:
            progress(accounts)


def day_end(day: date) -> datetime:
    """A scoring day's instant: everything observed up to the end of that UTC day counts."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def context(a: Account) -> AccountContext:
    return AccountContext(
        name=a.name, segment=a.segment, customer_since=a.customer_since, renewal_date=a.renewal_date
    )


@dataclass
class WriteReport:
    changes: int = 0
    announced: int = 0
    change_ids: list[int] = field(default_factory=list, repr=False)  # for the playbooks


def write_scores(
    *,
    session: Session,
    rows: Sequence[dict],
    crm_records: dict[int, list[tuple[int, str]]],
    previous: dict,
) -> WriteReport:
    """Insert (or replace, on a rerun of the same day) Score rows; a ScoreChange where the
    score or tier moved; an outbox row for each of the account's `crm_records` ((record id,
    CRM) of the CRMs that receive scores) where what the CRM shows changed.
    `previous` maps (account id, score date) -> the Score before it (anything with a Score's
    attributes); rows may span several days."""
    report = WriteReport()
    if not rows:
        return report
    written = bulk_upsert(
        session,
        Score,
        rows,
        keys=("account_id", "score_date"),
        update=[c for c in rows[0] if c not in ("account_id", "score_date")],
        returning=("id", "account_id", "score_date"),
    )
    score_ids = {(acc, day): sid for sid, acc, day in written}
    last_outbox: dict[int, dict] = {}
    changes = []
    for row in rows:
        acc, day = row["account_id"], row["score_date"]
        prev, score_id = previous.get((acc, day)), score_ids[(acc, day)]
        announced = prev is not None and prev.announced_tier != row["announced_tier"]
        if (
            prev is None
            or abs(row["total"] - prev.total) >= 1
            or row["tier"] != prev.tier
            or announced
        ):
            changes.append(
                {
                    "account_id": acc,
                    "score_id": score_id,
                    "changed_at": row["computed_at"],
                    "from_total": prev.total if prev else None,
                    "to_total": row["total"],
                    "delta": round(row["total"] - prev.total, 1) if prev else 0.0,
                    "from_tier": prev.announced_tier if prev else None,
                    "to_tier": row["announced_tier"],
                    "tier_announced": announced,
                    "hard_event": (row["hard_events"] or [None])[0],
                    "reason": row["reason"],
                }
            )
        for record_id, target in crm_records.get(acc, ()):  # the newest score: a candidate
            shown = prev is None or round(row["total"]) != round(prev.total) or announced
            last_outbox[record_id] = {
                "account_id": acc,
                "record_id": record_id,
                "target": target,
                "score_id": score_id,
                "score_date": day,
                "created_at": row["computed_at"],
                "changed": shown,
            }
    if changes:
        report.change_ids = [
            cid
            for (cid,) in bulk_upsert(
                session,
                ScoreChange,
                changes,
                keys=("score_id",),
                update=[c for c in changes[0] if c != "score_id"],
                returning=("id",),
            )
        ]
    queue_writebacks(session=session, items=list(last_outbox.values()))
    report.changes = len(changes)
    report.announced = sum(1 for c in changes if c["tier_announced"])
    return report


def queue_writebacks(*, session: Session, items: list[dict]) -> None:
    """Point an account's outbox row at its new score when what the CRM shows changes (or the
    CRM was never sent a score for it). Only the newest score of an account is ever sent (a
    replay of older days queues nothing), and a new score starts its attempts afresh. An
    in-flight mark (`sent_at`) stays: after a crash it still says the CRM may already hold
    the previous version."""
    if not items:
        return
    newest = _newest_days(session, items)
    unsent = [i["record_id"] for i in items if not i["changed"]]
    written: set[int] = set()
    for part in chunked(unsent, 5000):  # only unchanged scores need to know what the CRM has
        q = select(CrmWrite.record_id).where(CrmWrite.record_id.in_(part))
        written.update(session.execute(q).scalars())
    rows = [
        {k: v for k, v in i.items() if k not in ("score_date", "changed")}
        | {"attempts": 0, "next_attempt_at": None, "parked_at": None}
        | {"error_code": None, "last_error": None}
        for i in items
        if (newest is None or newest.get(i["account_id"]) == i["score_date"])
        and (i["changed"] or i["record_id"] not in written)
    ]
    if rows:
        bulk_upsert(
            session,
            OutboxItem,
            rows,
            keys=("record_id",),
            update=[c for c in rows[0] if c != "record_id"],
        )


def _newest_days(session: Session, items: list[dict]) -> dict[int, date] | None:
    """Each account's newest score day, or None when no score is newer than these (the
    usual rescore of today: one indexed probe instead of a grouped read)."""
    days = {i["score_date"] for i in items}
    later = select(Score.id).where(Score.score_date > max(days)).limit(1)
    if len(days) == 1 and session.execute(later).first() is None:
        return None
    accounts = sorted({i["account_id"] for i in items})
    newest: dict[int, date] = {}
    for part in chunked(accounts):
        q = (
            select(Score.account_id, func.max(Score.score_date))
            .where(Score.account_id.in_(part))
            .group_by(Score.account_id)
        )
        newest.update(session.execute(q).all())
    return newest


def crm_records_of(
    *, session: Session, ids: Sequence[int], targets: Collection[str]
) -> dict[int, list[tuple[int, str]]]:
    """Per account, its live records in the CRMs `targets`: where its score is written."""
    if not targets or not ids:
        return {}
    out: dict[int, list[tuple[int, str]]] = {}
    q = select(CrmRecord.account_id, CrmRecord.id, CrmRecord.source).where(
        CrmRecord.account_id.in_(ids),
        CrmRecord.source.in_(list(targets)),
        CrmRecord.deleted_at.is_(None),
    )
    for acc, rec, source in session.execute(q):
        out.setdefault(acc, []).append((rec, source))
    return out
