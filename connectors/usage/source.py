"""Product usage Source: daily rows per account from a SQL query or a CSV file.

From a database (`USAGE_DATABASE_URL` + `USAGE_QUERY`): any SQLAlchemy URL. The query must
return a `day` column, a key (`account` and/or `domain`) and any of the signal columns; it is
run as `SELECT * FROM (<query>) AS usage_rows ORDER BY day` and streamed (server-side cursor
where the driver has one, fetched `batch_size` rows at a time). If it uses the `:since` bind
parameter, it receives the watermark day (0001-01-01 on the first run), so a query like
`... WHERE day >= :since` reads only the last committed day and later; without `:since` every
row is read and older days are skipped here.

From a CSV (`USAGE_CSV`): read with the csv module line by line, never loaded whole.

Watermark: the ISO date of the newest day read (e.g. "2026-10-31"). The next run reads that day
again (`day >= since`), so rows that arrived late for it are picked up; upserts on
(account, signal, observed_at, source) make the re-read harmless. SQL rows come ordered by day,
so every batch carries the newest day so far; a CSV need not be ordered, so only its last batch
carries the watermark (a rerun after a crash re-reads the file, harmlessly).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, Date, TextClause, bindparam, create_engine, text
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    OperationalError,
    SQLAlchemyError,
    TimeoutError,
)

from connectors.base import PermanentConnectorError, TransientConnectorError
from connectors.usage.mapping import SOURCE, Columns, ColumnsError, map_row, plan_columns
from health.records import Batch, ObservationRecord, RecordError
from health.settings import Settings

log = logging.getLogger(__name__)
BATCH_ROWS = 5000
FIRST_DAY = date(1, 1, 1)

Rows = Iterator[tuple[str, Sequence[Any]]]  # (where, values)


class UsageSource:
    name: ClassVar[str] = SOURCE

    def __init__(
        self,
        *,
        database_url: str | None = None,
        query: str | None = None,
        csv_path: str | Path | None = None,
        batch_size: int = BATCH_ROWS,
    ):
        if csv_path is None and not (database_url and query):
            raise PermanentConnectorError(
                "usage needs USAGE_CSV, or USAGE_DATABASE_URL together with USAGE_QUERY"
            )
        self.database_url = database_url
        self.query = query
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.batch_size = batch_size
        self.api_calls = 0  # queries run / files opened
        self.notes: list[str] = []

    def pull(self, since: str | None) -> Iterator[Batch]:
        try:
            since_day = date.fromisoformat(since) if since else None
        except ValueError as exc:
            raise PermanentConnectorError(
                f"stored usage watermark {since!r} is not a date"
            ) from exc
        if self.csv_path is not None:
            yield from self._pull_csv(since_day)
        else:
            yield from self._pull_sql(since_day)

    # -- readers ---------------------------------------------------------------------------

    def _pull_csv(self, since: date | None) -> Iterator[Batch]:
        path = self.csv_path
        assert path is not None
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise PermanentConnectorError(f"cannot read USAGE_CSV {path}: {exc}") from exc
        self.api_calls += 1
        with handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            cols = self._columns(header, f"USAGE_CSV {path}")
            rows = ((f"line {reader.line_num}", r) for r in reader if any(c.strip() for c in r))
            yield from self._batches(rows, cols, since, ordered=False)

    def _pull_sql(self, since: date | None) -> Iterator[Batch]:
        stmt, params = self._statement("ORDER BY day", since)
        engine = create_engine(_driver_url(self.database_url or ""))
        try:
            with engine.connect() as conn:
                cols = self._probe(conn, since)  # the columns first, so a wrong query fails clearly
                self.api_calls += 1
                streaming = conn.execution_options(stream_results=True, yield_per=self.batch_size)
                result = streaming.execute(stmt, params)
                rows = ((f"row {n}", row) for n, row in enumerate(result, start=1))
                yield from self._batches(rows, cols, since, ordered=True)
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc
        finally:
            engine.dispose()

    def _statement(self, tail: str, since: date | None) -> tuple[TextClause, dict]:
        """USAGE_QUERY wrapped as a subquery with `tail`; `:since` bound when it uses it."""
        query = (self.query or "").strip().rstrip(";")
        stmt = text(f"SELECT * FROM ({query}) AS usage_rows {tail}")  # noqa: S608
        if ":since" not in query:
            return stmt, {}
        return stmt.bindparams(bindparam("since", type_=Date)), {"since": since or FIRST_DAY}

    def _probe(self, conn: Connection, since: date | None) -> Columns:
        """The query's columns, run as `WHERE 1 = 0`: no row is read."""
        probe, params = self._statement("WHERE 1 = 0", since)
        self.api_calls += 1
        return self._columns(list(conn.execute(probe, params).keys()), "USAGE_QUERY")

    def check(self) -> tuple[str, ...]:
        """A cheap read-only probe (`healthbot doctor`): the CSV's header, or the query's
        columns without reading a row. Raises like `pull`; returns the signal columns found."""
        if self.csv_path is not None:
            try:
                with self.csv_path.open(newline="", encoding="utf-8-sig") as handle:
                    header = next(csv.reader(handle), [])
            except OSError as exc:
                raise PermanentConnectorError(
                    f"cannot read USAGE_CSV {self.csv_path}: {exc}"
                ) from exc
            self.api_calls += 1
            return self._columns(header, f"USAGE_CSV {self.csv_path}").signals
        engine = create_engine(_driver_url(self.database_url or ""))
        try:
            with engine.connect() as conn:
                return self._probe(conn, None).signals
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc
        finally:
            engine.dispose()

    def _failed(self, exc: SQLAlchemyError) -> Exception:
        kind = TransientConnectorError if self._transient(exc) else PermanentConnectorError
        return kind(f"usage query failed: {type(exc).__name__}: {exc.args[0]!s:.300}")

    def _transient(self, exc: SQLAlchemyError) -> bool:
        """Lost connections and timeouts are worth a retry; bad SQL is not. (SQLite reports
        both as OperationalError, and a local file does not go away, so it is permanent.)"""
        if isinstance(exc, DisconnectionError | TimeoutError):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        sqlite = (self.database_url or "").startswith("sqlite")
        return isinstance(exc, OperationalError) and not sqlite

    # -- shared ----------------------------------------------------------------------------

    def _columns(self, header: Sequence[str], what: str) -> Columns:
        try:
            cols = plan_columns(header)
        except ColumnsError as exc:
            raise PermanentConnectorError(f"{what}: {exc}") from exc
        if cols.unknown:
            note = f"{what}: ignored unknown columns {', '.join(cols.unknown)}"
            self.notes.append(note)
            log.warning(note)
        return cols

    def _batches(self, rows: Rows, cols: Columns, since: date | None, *, ordered: bool):
        observations: list[ObservationRecord] = []
        errors: list[RecordError] = []
        fetched = 0
        newest = since

        def batch(final: bool) -> Batch:
            mark = newest.isoformat() if newest and (ordered or final) else None
            return Batch(observations=observations, errors=errors, watermark=mark, fetched=fetched)

        for where, values in rows:
            fetched += 1
            mapped = map_row(values, cols, where)
            if isinstance(mapped, RecordError):
                errors.append(mapped)
            elif since is None or mapped[0] >= since:
                day, records = mapped
                observations.extend(records)
                newest = day if newest is None else max(newest, day)
            if fetched >= self.batch_size:
                yield batch(final=False)
                observations, errors, fetched = [], [], 0
        yield batch(final=True)


def _driver_url(url: str) -> str:
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def is_configured(settings: Settings) -> bool:
    return bool(settings.usage_csv or (settings.usage_database_url and settings.usage_query))


def build_source(settings: Settings, **options: Any) -> UsageSource:
    """From USAGE_CSV, or USAGE_DATABASE_URL + USAGE_QUERY (the CSV wins if both are set)."""
    if settings.usage_csv:
        return UsageSource(csv_path=settings.usage_csv, **options)
    if settings.usage_database_url and not settings.usage_query:
        raise PermanentConnectorError("USAGE_DATABASE_URL is set but USAGE_QUERY is missing")
    if settings.usage_query and not settings.usage_database_url:
        raise PermanentConnectorError("USAGE_QUERY is set but USAGE_DATABASE_URL is missing")
    return UsageSource(
        database_url=settings.usage_database_url, query=settings.usage_query, **options
    )
