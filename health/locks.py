"""Named locks that keep two runs of one job apart (two syncs of one source, two flushes to
one CRM), across processes and machines, and that die with their holder: a killed worker
never leaves a lock behind.

PostgreSQL: a session advisory lock on a connection of its own (the server drops it when the
connection goes). SQLite (embedded mode, one machine): an flock on a file beside the database
(the kernel drops it when the process goes).
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine


def lock_key(name: str) -> int:
    return zlib.crc32(f"healthbot:{name}".encode())


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Try to take the lock `name` without waiting; yields whether it was taken."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)})
            taken = bool(got.scalar())
            conn.commit()  # the lock is the session's, not the transaction's
            try:
                yield taken
            finally:
                if taken:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
                    conn.commit()
        return
    with _file_lock(_lock_path(engine, name)) as taken:
        yield taken


def _lock_path(engine: Engine, name: str) -> Path:
    db = engine.url.database
    base = Path(db) if db and db != ":memory:" else Path(".healthbot")
    return base.with_name(f"{base.name}.{name.replace('/', '_')}.lock")


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
