"""Shared fixtures: a migrated database on SQLite and on PostgreSQL.

PostgreSQL is required, not optional: a missing server fails the run (it is never skipped).
Each xdist worker gets its own database, created and migrated once; every test starts empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from health.db import make_engine
from health.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _empty(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"healthbot_test_{_worker()}_{os.getpid()}"  # concurrent runs never collide
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - environment failure
        pytest.fail(f"PostgreSQL is required for the storage tests ({POSTGRES_ADMIN_URL}): {exc}")
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("db") / "healthbot.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    eng = request.getfixturevalue(f"_{'pg' if request.param == 'postgresql' else 'sqlite'}_engine")
    _empty(eng)
    return eng


@pytest.fixture
def pg_engine(_pg_engine: Engine) -> Engine:
    """PostgreSQL only (integration tests)."""
    _empty(_pg_engine)
    return _pg_engine
