"""Engine and unit-of-work scope. No module-global session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def json_dumps(obj: object) -> str:
    """JSON columns are written with orjson: several times faster than the standard module
    on the score breakdowns a rescore writes by the thousand."""
    return orjson.dumps(obj).decode()


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """`pool_size`: connections kept open for reuse (PostgreSQL), as many as the threads that
    use the engine at once: past it, each extra connection is opened and closed per use (a
    new server process each time), up to 10 more."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
    )


@lru_cache
def get_engine(url: str, *, pool_size: int = 5) -> Engine:
    return make_engine(url, pool_size=pool_size)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
