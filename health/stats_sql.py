"""The statistics of `health.scoring.stats`, aggregated where the observations live.

One grouped pass per batch of accounts; the same definitions as the Python reference
(a test checks both agree on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal_column, select
from sqlmodel import Session

from health.models import Observation
from health.scoring.stats import LOOKBACK_DAYS, SignalStats

OBS = Observation.__table__.c  # type: ignore[attr-defined]


def _latest_value(dialect: str):
    if dialect == "postgresql":
        # the value of the newest row, in the same pass: max over (epoch, value) pairs
        return literal_column(
            "(max(ARRAY[extract(epoch from observation.observed_at)::float8,"
            " observation.value]))[2]"
        )
    # SQLite: a bare column next to a single max() comes from the row holding the max
    return OBS.value


def signal_stats(
    *,
    session: Session,
    now: datetime,
    id_range: tuple[int, int] | None = None,
    account_ids: Sequence[int] | None = None,
) -> dict[int, dict[str, SignalStats]]:
    """account id -> signal -> statistics at `now`, for an id range [lo, hi) or an id list."""
    t = {d: now - timedelta(days=d) for d in (7, 30, 90, 180, LOOKBACK_DAYS)}

    def within(days: int):
        return OBS.observed_at >= t[days]

    def avg_if(cond):
        return func.avg(case((cond, OBS.value)))

    def sum_if(cond):
        return func.sum(case((cond, OBS.value)))

    stmt = (
        select(
            OBS.account_id,
            OBS.signal,
            func.max(OBS.observed_at).label("latest_at"),
            _latest_value(session.get_bind().dialect.name).label("latest"),
            avg_if(within(7)),
            avg_if(within(30)),
            avg_if(within(90)),
            sum_if(within(30)),
            sum_if(within(90)),
            avg_if(and_(OBS.observed_at < t[90], within(180))),
            avg_if(within(180)),
        )
        .where(OBS.observed_at >= t[LOOKBACK_DAYS], OBS.observed_at < now)
        .group_by(OBS.account_id, OBS.signal)
    )
    if id_range is not None:
        stmt = stmt.where(OBS.account_id >= id_range[0], OBS.account_id < id_range[1])
    if account_ids is not None:
        stmt = stmt.where(OBS.account_id.in_(list(account_ids)))
    out: dict[int, dict[str, SignalStats]] = {}
    for acc, signal, latest_at, latest, a7, a30, a90, s30, s90, b_old, b_all in session.execute(
        stmt
    ):
        out.setdefault(acc, {})[signal] = SignalStats(
            latest=float(latest),
            latest_at=latest_at,
            avg_7d=a7,
            avg_30d=a30,
            avg_90d=a90,
            sum_30d=s30,
            sum_90d=s90,
            baseline=b_old if b_old is not None else b_all,
        )
    return out
