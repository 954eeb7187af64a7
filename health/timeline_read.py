"""Reading a batch of accounts' observations into a `Timeline` (one statement per batch)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import BigInteger, Integer, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from health.models import Observation
from health.scoring.stats import LOOKBACK_DAYS
from health.scoring.timeline import Timeline, epoch

OBS = Observation.__table__.c  # type: ignore[attr-defined]


def load_timeline(
    *,
    session: Session,
    ids: Sequence[int],
    signals: Sequence[str],
    first: datetime,
    last: datetime,
) -> Timeline:
    """The observations of accounts `ids` (ascending; positions in the Timeline) of `signals`
    that statistics at instants between `first` and `last` can read: observed in
    [first - LOOKBACK_DAYS, last). Nothing observed at or after `last` is read."""
    ids = list(ids)
    signals = list(signals)
    lo = first - timedelta(days=LOOKBACK_DAYS)
    empty = Timeline(signals, *(np.empty(0) for _ in range(4)))
    if not ids or not signals:
        return empty
    if session.get_bind().dialect.name == "postgresql":
        stmt = select(
            OBS.account_id,
            func.array_position(bindparam("signals", signals, type_=ARRAY(String)), OBS.signal),
            func.floor(func.extract("epoch", OBS.observed_at)).cast(BigInteger),
            OBS.value,
        ).where(
            OBS.account_id == func.any(bindparam("ids", ids, type_=ARRAY(Integer))),
            OBS.signal == func.any(bindparam("wanted", signals, type_=ARRAY(String))),
            OBS.observed_at >= lo,
            OBS.observed_at < last,
        )
        conn = session.connection()  # plain driver rows: numbers only
        compiled = stmt.compile(dialect=conn.dialect)
        rows = conn.exec_driver_sql(str(compiled), compiled.params).cursor.fetchall()
        table = np.array(rows, dtype=float).reshape(-1, 4)
        table[:, 1] -= 1
    else:
        stmt = select(
            Observation.account_id, Observation.signal, Observation.observed_at, OBS.value
        )
        stmt = stmt.where(
            Observation.account_id.in_(ids),
            Observation.signal.in_(signals),
            Observation.observed_at >= lo,
            Observation.observed_at < last,
        )
        code = {s: i for i, s in enumerate(signals)}
        table = np.array(
            [(a, code[s], epoch(at), v) for a, s, at, v in session.execute(stmt)], dtype=float
        ).reshape(-1, 4)
    if not len(table):
        return empty
    position = np.searchsorted(np.asarray(ids), table[:, 0].astype(np.int64))
    return Timeline(signals, position, table[:, 1], table[:, 2], table[:, 3])
