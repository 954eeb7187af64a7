"""The statistics of `health.scoring.stats`, aggregated where the observations live.

One grouped pass per batch of accounts; the same definitions as the Python reference
(a test checks both agree on SQLite and PostgreSQL).

Windows are FILTERed aggregates over the rows of the lookback. The newest value is the
largest value observed at the newest instant (ties between sources resolve to the larger):
on PostgreSQL a lateral lookup per (account, signal) on the covering index
`ix_observation_series`; on SQLite the bare column next to max(), which comes from the row
holding the max.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer
from sqlmodel import Session

from health.models import Observation
from health.scoring.stats import LOOKBACK_DAYS, SignalStats

OBS = Observation.__table__.c  # type: ignore[attr-defined]


def signal_stats(
    *,
    session: Session,
    now: datetime,
    id_range: tuple[int, int] | None = None,
    account_ids: Sequence[int] | None = None,
) -> dict[int, dict[str, SignalStats]]:
    """account id -> signal -> statistics at `now`, for an id range [lo, hi) or an id list."""
    t = {d: now - timedelta(days=d) for d in (7, 30, 90, 180, LOOKBACK_DAYS)}
    postgres = session.get_bind().dialect.name == "postgresql"

    def within(days: int):
        return OBS.observed_at >= t[days]

    aggregates = [
        func.avg(OBS.value).filter(within(7)),
        func.avg(OBS.value).filter(within(30)),
        func.avg(OBS.value).filter(within(90)),
        func.sum(OBS.value).filter(within(30)),
        func.sum(OBS.value).filter(within(90)),
        func.avg(OBS.value).filter(and_(OBS.observed_at < t[90], within(180))),
        func.avg(OBS.value).filter(within(180)),
    ]
    latest_at = func.max(OBS.observed_at).label("latest_at")
    head = [OBS.account_id, OBS.signal, latest_at]
    stmt = select(*head, *([] if postgres else [OBS.value]), *aggregates)
    stmt = stmt.where(OBS.observed_at >= t[LOOKBACK_DAYS], OBS.observed_at < now)
    if id_range is not None:
        stmt = stmt.where(OBS.account_id >= id_range[0], OBS.account_id < id_range[1])
    if account_ids is not None:
        ids = list(account_ids)
        if postgres:  # one array parameter, not one bind per id
            stmt = stmt.where(OBS.account_id == func.any(_int_array(ids)))
        else:
            stmt = stmt.where(OBS.account_id.in_(ids))
    stmt = stmt.group_by(OBS.account_id, OBS.signal)
    if postgres:
        g = stmt.subquery("g")
        o = Observation.__table__.alias("o")  # type: ignore[attr-defined]
        newest = (
            select(func.max(o.c.value).label("value"))
            .where(
                o.c.account_id == g.c.account_id,
                o.c.signal == g.c.signal,
                o.c.observed_at == g.c.latest_at,
            )
            .lateral("newest")
        )
        cols = list(g.c)
        stmt = select(*cols[:3], newest.c.value, *cols[3:]).join_from(g, newest, true())
    out: dict[int, dict[str, SignalStats]] = {}
    for acc, signal, at, latest, a7, a30, a90, s30, s90, b_old, b_all in session.execute(stmt):
        out.setdefault(acc, {})[signal] = SignalStats(
            latest=float(latest),
            latest_at=at,
            avg_7d=a7,
            avg_30d=a30,
            avg_90d=a90,
            sum_30d=s30,
            sum_90d=s90,
            baseline=b_old if b_old is not None else b_all,
        )
    return out


def _int_array(ids: list[int]):
    return bindparam("account_ids", ids, type_=ARRAY(Integer))
