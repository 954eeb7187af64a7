"""Reading score history: the newest score per account within a window of days, and the
three days a new score looks back to (yesterday, ~30 and ~90 days ago)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Integer, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from health.models import Score


def scores_as_of(
    *, session: Session, ids: Sequence[int] | None, lo: date | None, hi: date | None
) -> dict[int, Score]:
    """Per account, its newest Score with lo <= score_date <= hi, in one query
    (ids None: every account)."""
    newest = select(Score.account_id, func.max(Score.score_date).label("d"))
    if ids is not None:
        newest = newest.where(Score.account_id.in_(ids))
    if hi is not None:
        newest = newest.where(Score.score_date <= hi)
    if lo is not None:
        newest = newest.where(Score.score_date >= lo)
    newest = newest.group_by(Score.account_id).subquery()
    rows = session.exec(
        select(Score).join(
            newest, (Score.account_id == newest.c.account_id) & (Score.score_date == newest.c.d)
        )
    )
    return {s.account_id: s for s in rows.scalars()}


def score_states_as_of(
    *,
    session: Session,
    ids: Sequence[int],
    lo: date | None,
    hi: date,
    components: bool = False,
) -> dict[int, Any]:
    """Like `scores_as_of`, for scoring: per account of `ids`, the columns the next score reads
    of its newest Score with lo <= score_date <= hi (plain rows with a Score's attribute
    names: account_id, total, tier, announced_tier, pending_since[, components])."""
    if not ids:
        return {}
    cols = [Score.account_id, Score.total, Score.tier, Score.announced_tier, Score.pending_since]
    if components:
        cols.append(Score.components)
    bounds = [Score.score_date <= hi] + ([Score.score_date >= lo] if lo is not None else [])
    if session.get_bind().dialect.name == "postgresql":
        # one index probe per account (newest day first), the ids as one array parameter
        acc = (
            func.unnest(bindparam("ids", list(ids), type_=ARRAY(Integer)))
            .table_valued("id")
            .render_derived(name="acc")
        )
        newest = (
            select(*cols)
            .where(Score.account_id == acc.c.id, *bounds)
            .order_by(Score.score_date.desc())
            .limit(1)
            .lateral("newest")
        )
        stmt = select(*newest.c).select_from(acc).join(newest, true())
    else:
        last = select(Score.account_id, func.max(Score.score_date).label("d"))
        last = last.where(Score.account_id.in_(list(ids)), *bounds).group_by(Score.account_id)
        last = last.subquery()
        on = (Score.account_id == last.c.account_id) & (Score.score_date == last.c.d)
        stmt = select(*cols).join(last, on)
    return {row.account_id: row for row in session.execute(stmt)}


HISTORY = {"prev": (None, 1), "ago30": (37, 30), "ago90": (97, 90)}  # days back: (lo, hi)
# what scoring reads of each (`health.scorebook.prior_state`); total first
_HISTORY_COLUMNS = {
    "prev": ("total", "tier", "announced_tier", "pending_since"),
    "ago30": ("total", "components"),
    "ago90": ("total",),
}


def score_history(*, session: Session, ids: Sequence[int], day: date) -> dict[int, dict]:
    """What scoring `day` reads of each account's history, in one statement on PostgreSQL:
    {"prev": newest Score before `day`, "ago30": newest of days 37..30 back (with its
    components), "ago90": newest of days 97..90 back}, each a light row or None."""
    if not ids:
        return {}
    bounds = {
        k: (day - timedelta(days=lo) if lo is not None else None, day - timedelta(days=hi))
        for k, (lo, hi) in HISTORY.items()
    }
    if session.get_bind().dialect.name != "postgresql":
        parts = {
            k: score_states_as_of(session=session, ids=ids, lo=lo, hi=hi, components=k == "ago30")
            for k, (lo, hi) in bounds.items()
        }
        return {i: {k: parts[k].get(i) for k in HISTORY} for i in ids}
    acc = (
        func.unnest(bindparam("ids", list(ids), type_=ARRAY(Integer)))
        .table_valued("id")
        .render_derived(name="acc")
    )
    laterals, cols = [], [acc.c.id]
    for k, (lo, hi) in bounds.items():
        picked = [getattr(Score, c) for c in _HISTORY_COLUMNS[k]]
        where = [Score.account_id == acc.c.id, Score.score_date <= hi]
        if lo is not None:
            where.append(Score.score_date >= lo)
        lat = select(*picked).where(*where).order_by(Score.score_date.desc()).limit(1).lateral(k)
        laterals.append(lat)
        cols += list(lat.c)
    stmt = select(*cols).select_from(acc)
    for lat in laterals:
        stmt = stmt.outerjoin(lat, true())
    conn = session.connection()  # plain driver rows: one per account, read by position
    compiled = stmt.compile(dialect=conn.dialect)
    out = {}
    for row in conn.exec_driver_sql(str(compiled), compiled.params).cursor.fetchall():
        found, at = {}, 1
        for k in HISTORY:
            names = _HISTORY_COLUMNS[k]
            values = row[at : at + len(names)]
            at += len(names)
            if values[0] is None:  # no score in that window
                found[k] = None
                continue
            state = SimpleNamespace(account_id=row[0], **dict(zip(names, values, strict=True)))
            if isinstance(getattr(state, "components", None), str | bytes):
                state.components = orjson.loads(state.components)
            found[k] = state
        out[row[0]] = found
    return out
