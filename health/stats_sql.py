"""The statistics of `health.scoring.stats`, aggregated where the observations live.

One grouped pass per batch of accounts; the same definitions as the Python reference
(a test checks both agree on SQLite and PostgreSQL).

Each window of days the scorer needs (`Needs.windows`) costs two FILTERed aggregates, a
count and a sum, over the rows of the lookback; averages, totals and the baseline are derived
from those. The newest value is the largest value observed at the newest instant (ties between
sources resolve to the larger), looked up only for the signals whose newest value is read: one
probe of the index `ix_observation_series` per (account, signal) (covering on PostgreSQL).

The activity statistics (`Needs.active_of`) cost three more aggregates over the same pass, for
those signals only: the newest instant with a value above 0, the first instant, and the weeks
with such a value as a bit mask (bit k: week k back from now; `bit_or` on PostgreSQL, a sum of
the distinct bits on SQLite, which has no `bit_or` aggregate).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import (
    DateTime,
    Float,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, BIT
from sqlalchemy.types import Integer, String
from sqlmodel import Session

from health.models import Observation
from health.scoring.stats import (
    ACTIVE_WEEKS,
    ALL,
    DAY,
    LOOKBACK_DAYS,
    WEEK,
    WINDOW_DAYS,
    Needs,
    SignalStats,
    from_window_sums,
)
from health.scoring.vector import fill, scatter

OBS = Observation.__table__.c  # type: ignore[attr-defined]


def signal_stats(
    *,
    session: Session,
    now: datetime,
    id_range: tuple[int, int] | None = None,
    account_ids: Sequence[int] | None = None,
    needs: Needs = ALL,
    signals: Collection[str] | None = None,
    lookback_days: int = LOOKBACK_DAYS,
) -> dict[int, dict[str, SignalStats]]:
    """account id -> signal -> statistics at `now`, for an id range [lo, hi) or an id list
    (and only `signals`, when given; a reader that looks less far back than the scorer may
    say so with `lookback_days`)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = statement(
        now=now,
        id_range=id_range,
        account_ids=account_ids,
        needs=needs,
        postgres=postgres,
        signals=signals,
        lookback_days=lookback_days,
    )
    out: dict[int, dict[str, SignalStats]] = {}
    if postgres:  # the hot read: plain driver rows, no per-row type processing
        conn = session.connection()
        compiled = stmt.compile(dialect=conn.dialect)
        rows = conn.exec_driver_sql(str(compiled), compiled.params).cursor.fetchall()
    else:
        rows = session.execute(stmt)
    for acc, signal, at, latest, *sums, active_at, first_at, weeks in rows:
        days_since = (now - at).total_seconds() / DAY
        by_signal = out.get(acc)
        if by_signal is None:
            by_signal = out[acc] = {}
        by_signal[signal] = from_window_sums(
            latest,
            at,
            days_since,
            *sums,
            active_days=None if active_at is None else (now - active_at).total_seconds() / DAY,
            first_days=None if first_at is None else (now - first_at).total_seconds() / DAY,
            active_weeks=None if weeks is None else int(weeks).bit_count(),
        )
    return out


def stats_columns(
    *,
    session: Session,
    now: datetime,
    ids: Sequence[int],
    columns: Sequence[tuple[str, int]],
    needs: Needs = ALL,
    dense: bool = True,
) -> np.ndarray:
    """The statistics of accounts `ids` (ascending) at `now`, laid out as `columns`: one row per
    (signal, SignalStats field), one column per account, NaN where missing (`vector.fill`).
    On PostgreSQL the fields are derived in SQL and the rows arrive as numbers only; `dense`:
    read the id range from the first id to the last rather than the id list."""
    if not ids:
        return np.full((len(columns), 0), np.nan)
    if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
        raise ValueError("stats_columns: account ids must be ascending and distinct")
    bounds = {
        "id_range": (ids[0], ids[-1] + 1) if dense else None,
        "account_ids": None if dense else ids,
    }
    if session.get_bind().dialect.name != "postgresql":
        stats = signal_stats(session=session, now=now, needs=needs, **bounds)
        return fill(columns, [stats.get(i, {}) for i in ids])
    signals = list(dict.fromkeys(signal for signal, _ in columns))
    t = statement(now=now, needs=needs, postgres=True, **bounds).subquery("t")
    c = list(t.c)  # account_id, signal, latest_at, latest, (count, sum) per window
    sums = {days: (c[4 + 2 * i], c[5 + 2 * i]) for i, days in enumerate(WINDOW_DAYS)}

    def avg(days: int):
        n, total = sums[days]
        return total / func.nullif(n, 0)

    def total(days: int):
        n, s = sums[days]
        return case((n > 0, func.coalesce(s, 0.0)))

    (n90, s90), (n180, s180) = sums[90], sums[180]
    old_n = n180 - n90
    baseline = case(
        (old_n > 0, (func.coalesce(s180, 0.0) - func.coalesce(s90, 0.0)) / old_n),
        (and_(n90.isnot(None), n180 > 0), func.coalesce(s180, 0.0) / n180),
    )
    at_now = bindparam("now", now, type_=DateTime(timezone=True))
    age = func.date_part("epoch", at_now - c[2])
    active_at, first_at, weeks = c[-3], c[-2], c[-1]
    covered = func.least(
        ACTIVE_WEEKS, func.floor(func.date_part("epoch", at_now - first_at) / WEEK) + 1
    )
    active_weeks = func.coalesce(func.bit_count(cast(weeks, BIT(ACTIVE_WEEKS))), 0)
    fields = {
        "latest": c[3],
        "latest_at": null(),  # the engine reads the age, not the instant
        "avg_7d": avg(7),
        "avg_30d": avg(30),
        "avg_90d": avg(90),
        "sum_30d": total(30),
        "sum_90d": total(90),
        "baseline": baseline,
        "days_since": age / DAY,
        "days_since_active": case(
            (first_at.is_(None), null()),
            (active_at.is_(None), LOOKBACK_DAYS),
            else_=func.date_part("epoch", at_now - active_at) / DAY,
        ),
        "active_week_share": case((first_at.isnot(None), active_weeks / covered)),
    }
    assert list(fields) == list(SignalStats._fields)
    position = func.array_position(bindparam("signals", signals, type_=ARRAY(String)), c[1]) - 1
    stmt = select(c[0], position, *(cast(f, Float) for f in fields.values()))
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect)
    rows = conn.exec_driver_sql(str(compiled), compiled.params).cursor.fetchall()
    return scatter(columns, signals, ids, rows)


def statement(
    *,
    now: datetime,
    id_range: tuple[int, int] | None,
    account_ids: Sequence[int] | None,
    needs: Needs,
    postgres: bool,
    signals: Collection[str] | None = None,
    lookback_days: int = LOOKBACK_DAYS,
) -> Select:
    """The grouped pass: account_id, signal, latest_at, latest, then (count, sum) per window,
    then the activity aggregates (newest active instant, first instant, active weeks mask)."""
    aggregates = []  # (count, sum) of each window; NULLs for a window not needed
    for days in WINDOW_DAYS:
        within = OBS.observed_at >= now - timedelta(days=days)
        if days in needs.windows:
            aggregates += [func.count().filter(within), func.sum(OBS.value).filter(within)]
        else:  # typed, so that arithmetic on them stays valid SQL
            aggregates += [cast(null(), Integer), cast(null(), Float)]
    aggregates += _activity(now=now, needs=needs, postgres=postgres)
    names = [f"{x}{days}" for days in WINDOW_DAYS for x in "ns"] + ["active", "first", "weeks"]
    aggregates = [a.label(name) for a, name in zip(aggregates, names, strict=True)]
    latest_at = func.max(OBS.observed_at).label("latest_at")
    stmt = select(OBS.account_id, OBS.signal, latest_at, *aggregates)
    stmt = stmt.where(OBS.observed_at >= now - timedelta(days=lookback_days), OBS.observed_at < now)
    if id_range is not None:
        stmt = stmt.where(OBS.account_id >= id_range[0], OBS.account_id < id_range[1])
    if signals is not None:
        if postgres:  # compiled to plain SQL: an array parameter, not an expanding IN
            names = bindparam("signals", sorted(signals), type_=ARRAY(String))
            stmt = stmt.where(OBS.signal == func.any(names))
        else:
            stmt = stmt.where(OBS.signal.in_(sorted(signals)))
    if account_ids is not None:
        ids = list(account_ids)
        if postgres:  # one array parameter, not one bind per id
            stmt = stmt.where(OBS.account_id == func.any(_int_array(ids)))
        else:
            stmt = stmt.where(OBS.account_id.in_(ids))
    stmt = stmt.group_by(OBS.account_id, OBS.signal)
    g = stmt.subquery("g")
    o = Observation.__table__.alias("o")  # type: ignore[attr-defined]
    newest = (
        select(func.max(o.c.value))
        .where(
            o.c.account_id == g.c.account_id,
            o.c.signal == g.c.signal,
            o.c.observed_at == g.c.latest_at,
        )
        .scalar_subquery()
    )
    if needs.latest_of is not None:  # the probe runs only for the signals asked for
        if postgres:
            wanted = bindparam("latest_of", sorted(needs.latest_of), type_=ARRAY(String))
            newest = case((g.c.signal == func.any(wanted), newest))
        else:
            newest = case((g.c.signal.in_(sorted(needs.latest_of)), newest))
    cols = list(g.c)
    stmt = select(*cols[:3], newest, *cols[3:])
    return stmt


def _activity(*, now: datetime, needs: Needs, postgres: bool) -> list:
    """The newest instant with a value above 0, the first instant, and the active weeks as a
    bit mask, for the signals whose activity is read (NULLs for the others)."""
    if needs.active_of is not None and not needs.active_of:
        at = DateTime(timezone=True)
        return [cast(null(), at), cast(null(), at), cast(null(), Integer)]
    signals = None if needs.active_of is None else sorted(needs.active_of)
    if signals is None:
        wanted = true()  # every signal
    elif len(signals) == 1:  # the usual case, and the cheapest test per row
        wanted = OBS.signal == signals[0]
    elif postgres:
        wanted = OBS.signal == func.any(bindparam("active_of", signals, type_=ARRAY(String)))
    else:
        wanted = OBS.signal.in_(signals)
    active = and_(wanted, OBS.value > 0)
    recent = and_(active, OBS.observed_at >= now - timedelta(days=7 * ACTIVE_WEEKS))
    if postgres:  # week k back from now: ceil(age / week) - 1 (exact at week boundaries)
        age = func.date_part(
            "epoch", bindparam("now", now, type_=DateTime(timezone=True)) - OBS.observed_at
        )
        week = cast(func.ceil(age / WEEK), Integer) - 1
        mask = func.bit_or(literal(1, Integer).op("<<")(week))
    else:  # the same weeks by comparison (timestamps are text here); no bit_or in SQLite
        bit = case(
            *(
                (OBS.observed_at >= now - timedelta(days=7 * (k + 1)), 1 << k)
                for k in range(ACTIVE_WEEKS)
            )
        )
        mask = func.sum(bit.distinct())
    return [
        func.max(OBS.observed_at).filter(active),
        func.min(OBS.observed_at).filter(wanted),
        mask.filter(recent),
    ]


def _int_array(ids: list[int]):
    return bindparam("account_ids", ids, type_=ARRAY(Integer))
