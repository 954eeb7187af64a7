"""Usage connector against a real SQLite file, a real PostgreSQL table and CSV files."""

from __future__ import annotations

import csv
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlmodel import Session, select

from connectors.base import PermanentConnectorError
from connectors.sandbox.portfolio import generate_portfolio
from connectors.usage.source import UsageSource, build_source, is_configured
from health.ingest import ingest
from health.models import Account, Observation, SyncError, SyncState
from health.settings import Settings
from tests.conftest import _empty
from tests.contract.helpers import Accounts, Killed, kill_after

COLUMNS = (
    "account",
    "domain",
    "day",
    "active_users",
    "seats",
    "core_features_used",
    "key_events",
    "plan",
)
QUERY = (
    "SELECT account, domain, day, active_users, seats, core_features_used, key_events, plan "
    "FROM {table} WHERE day >= :since"
)
TABLE = "usage_contract_src"


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=12, days=30, seed=5)


def rows_of(portfolio) -> list[tuple]:
    """Warehouse rows: most keyed by CRM id, every fourth account by domain only."""
    accounts = {a.external_id: (i, a) for i, a in enumerate(portfolio.accounts)}
    out = []
    for u in portfolio.usage:
        i, a = accounts[u.account_id]
        key = (None, a.domain) if i % 4 == 3 else (a.external_id, None)
        out.append(
            (
                *key,
                u.day.isoformat(),
                u.active_users,
                u.seats,
                u.core_features_used,
                u.key_events,
                "pro",
            )
        )
    return out


def expected(portfolio) -> list[tuple]:
    out = []
    for u in portfolio.usage:
        at = datetime(u.day.year, u.day.month, u.day.day, tzinfo=UTC).isoformat()
        for signal in ("active_users", "seats", "core_features_used", "key_events"):
            out.append((u.account_id, signal, at, float(getattr(u, signal))))
    return sorted(out)


def observations(engine) -> list[tuple]:
    query = select(
        Account.external_id, Observation.signal, Observation.observed_at, Observation.value
    ).join(Account)
    with Session(engine) as session:
        rows = session.exec(query).all()
    return sorted((e, s, at.isoformat(), v) for e, s, at, v in rows)


def state(engine) -> tuple:
    with Session(engine) as session:
        marks = session.exec(select(SyncState.source, SyncState.watermark)).all()
        errors = session.exec(select(SyncError.record_key, SyncError.reason)).all()
    return observations(engine), sorted(marks), sorted(errors)


def seeded(engine, portfolio):
    _empty(engine)
    ingest(engine, Accounts(portfolio))
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request, tmp_path, portfolio):
    """(SQLAlchemy URL, execute(sql, params)) of a usage table seeded from the portfolio."""
    rows = rows_of(portfolio)
    ddl = (
        f"CREATE TABLE {TABLE} (account TEXT, domain TEXT, day DATE, active_users INTEGER, "
        "seats INTEGER, core_features_used INTEGER, key_events INTEGER, plan TEXT)"
    )
    if request.param == "sqlite":
        path = tmp_path / "warehouse.db"

        def execute(sql, params=()):
            with sqlite3.connect(path) as conn:
                conn.executemany(sql, params) if params else conn.execute(sql)

        execute(ddl)
        execute(f"INSERT INTO {TABLE} VALUES (?,?,?,?,?,?,?,?)", rows)
        yield f"sqlite:///{path}", execute
        return
    url = request.getfixturevalue("postgres_url")

    def execute(sql, params=()):
        sql = sql.replace("?", "%s")
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(sql, params) if params else cur.execute(sql)

    execute(f"DROP TABLE IF EXISTS {TABLE}")
    execute(ddl)
    execute(f"INSERT INTO {TABLE} VALUES (?,?,?,?,?,?,?,?)", rows)
    yield url, execute
    execute(f"DROP TABLE IF EXISTS {TABLE}")


def sql_source(warehouse, **kw) -> UsageSource:
    return UsageSource(database_url=warehouse[0], query=QUERY.format(table=TABLE), **kw)


def test_sql_full_then_incremental(engine, portfolio, warehouse):
    seeded(engine, portfolio)
    source = sql_source(warehouse)
    report = ingest(engine, source)
    assert observations(engine) == expected(portfolio)
    assert report.fetched == len(portfolio.usage)
    assert report.as_dict()["unmatched"] == 0  # CRM ids and domains both resolve
    assert report.watermark == portfolio.end.isoformat()
    assert source.notes == ["USAGE_QUERY: ignored unknown columns plan"]

    last_day = [u for u in portfolio.usage if u.day == portfolio.end]
    again = ingest(engine, sql_source(warehouse))  # re-reads only the last committed day
    assert again.fetched == len(last_day)
    assert again.stored.upserted == 0

    late, new_day = last_day[0], portfolio.end + timedelta(days=1)
    _, execute = warehouse
    execute(
        f"UPDATE {TABLE} SET active_users = 4321 WHERE account = '{late.account_id}' "
        f"AND day = '{late.day.isoformat()}'"
    )
    execute(
        f"INSERT INTO {TABLE} VALUES (?,?,?,?,?,?,?,?)",
        [(late.account_id, None, new_day.isoformat(), 7, 9, 2, 30, "pro")],
    )
    third = ingest(engine, sql_source(warehouse))
    assert third.fetched == len(last_day) + 1
    assert third.watermark == new_day.isoformat()
    at = datetime(late.day.year, late.day.month, late.day.day, tzinfo=UTC).isoformat()
    obs = observations(engine)
    assert (late.account_id, "active_users", at, 4321.0) in obs
    assert len(obs) == len(expected(portfolio)) + 4


def test_sql_batches_carry_a_growing_watermark(portfolio, warehouse):
    batches = list(sql_source(warehouse, batch_size=40).pull(None))
    assert [b.fetched for b in batches[:-1]] == [40] * (len(batches) - 1)
    assert sum(b.fetched for b in batches) == len(portfolio.usage)
    marks = [b.watermark for b in batches]
    assert None not in marks and marks == sorted(marks) and marks[-1] == portfolio.end.isoformat()


def test_sql_killed_mid_run_then_rerun_matches(engine, portfolio, warehouse):
    seeded(engine, portfolio)
    ingest(engine, sql_source(warehouse, batch_size=50))
    want = state(engine)
    seeded(engine, portfolio)
    with pytest.raises(Killed):
        ingest(engine, sql_source(warehouse, batch_size=50), on_batch=kill_after(3))
    assert state(engine) != want
    ingest(engine, sql_source(warehouse, batch_size=50))
    assert state(engine) == want


def test_sql_errors_are_permanent_with_the_reason(portfolio, warehouse):
    bad = UsageSource(database_url=warehouse[0], query="SELECT nope FROM missing_table")
    with pytest.raises(PermanentConnectorError, match="usage query failed"):
        list(bad.pull(None))
    no_day = UsageSource(database_url=warehouse[0], query=f"SELECT account, seats FROM {TABLE}")
    with pytest.raises(PermanentConnectorError, match="no 'day' column"):
        list(no_day.pull(None))


def write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_bad_rows_are_recorded_with_line_numbers(engine, portfolio, tmp_path):
    seeded(engine, portfolio)
    a, b = portfolio.accounts[0], portfolio.accounts[1]
    header = ["Account", "day", "active_users", "seats", "colour"]
    path = write_csv(tmp_path / "usage.csv", header, [
        [a.external_id, "2026-10-01", "10", "20", "red"],     # line 2: good
        [a.external_id, "31/02/2026", "10", "20", "red"],     # line 3: bad date
        [a.external_id, "2026-10-02", "-3", "20", ""],        # line 4: negative
        [a.external_id, "2026-10-03", "many", "20", ""],      # line 5: non-numeric
        ["", "2026-10-04", "1", "2", ""],                      # line 6: no key
        [],                                                    # line 7: blank, skipped
        [b.external_id, "2026-10-05T00:00:00Z", "", "5", ""],  # line 8: good, seats only
        ["001NOPE", "2026-10-05", "1", "1", ""],               # line 9: unmatched
    ])  # fmt: skip
    source = UsageSource(csv_path=path)
    report = ingest(engine, source)
    with Session(engine) as session:
        errors = sorted(session.exec(select(SyncError.reason)).all())
    assert errors == [
        "line 3: unparsable date '31/02/2026'",
        "line 4: negative active_users '-3'",
        "line 5: non-numeric active_users 'many'",
        "line 6: no account or domain",
    ]
    assert observations(engine) == [
        (a.external_id, "active_users", "2026-10-01T00:00:00+00:00", 10.0),
        (a.external_id, "seats", "2026-10-01T00:00:00+00:00", 20.0),
        (b.external_id, "seats", "2026-10-05T00:00:00+00:00", 5.0),
    ]
    assert report.stored.unmatched == {"001NOPE": 2}
    assert report.watermark == "2026-10-05"
    assert source.notes == [f"USAGE_CSV {path}: ignored unknown columns colour"]


def test_csv_in_batches_marks_only_the_last_and_skips_older_days(engine, portfolio, tmp_path):
    seeded(engine, portfolio)
    rows = list(reversed(rows_of(portfolio)))  # newest first: a CSV need not be ordered
    path = write_csv(tmp_path / "usage.csv", COLUMNS, rows)
    batches = list(UsageSource(csv_path=path, batch_size=100).pull(None))
    assert [b.fetched for b in batches[:-1]] == [100] * (len(batches) - 1)
    assert [b.watermark for b in batches] == [None] * (len(batches) - 1) + [
        portfolio.end.isoformat()
    ]
    ingest(engine, UsageSource(csv_path=path, batch_size=100))
    assert observations(engine) == expected(portfolio)
    again = list(UsageSource(csv_path=path).pull(portfolio.end.isoformat()))
    last_day = [u for u in portfolio.usage if u.day == portfolio.end]
    assert sum(len(b.observations) for b in again) == 4 * len(last_day)


def test_missing_columns_fail_up_front(tmp_path):
    path = write_csv(tmp_path / "u.csv", ["customer", "date", "users"], [["x", "y", "1"]])
    with pytest.raises(PermanentConnectorError) as err:
        list(UsageSource(csv_path=path).pull(None))
    message = str(err.value)
    assert "no 'day' column" in message and "no 'account' or 'domain' column" in message
    assert "active_users" in message
    with pytest.raises(PermanentConnectorError, match="cannot read USAGE_CSV"):
        list(UsageSource(csv_path=tmp_path / "absent.csv").pull(None))
    with pytest.raises(PermanentConnectorError, match="watermark"):
        list(UsageSource(csv_path=path).pull("yesterday"))


def test_settings(tmp_path):
    none = Settings(_env_file=None, usage_csv=None, usage_database_url=None, usage_query=None)
    assert not is_configured(none)
    half = Settings(_env_file=None, usage_database_url="sqlite://", usage_query=None)
    assert not is_configured(half)
    with pytest.raises(PermanentConnectorError, match="USAGE_QUERY is missing"):
        build_source(half)
    path = tmp_path / "u.csv"
    assert build_source(Settings(_env_file=None, usage_csv=path)).csv_path == path
    sql = Settings(_env_file=None, usage_database_url="sqlite://", usage_query="SELECT 1")
    assert is_configured(sql) and build_source(sql).query == "SELECT 1"
