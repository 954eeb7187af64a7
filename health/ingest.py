"""Run one source: pull batches since the stored watermark and commit each with its watermark.

A batch and the watermark that covers it commit together, so a crash loses nothing and a
rerun duplicates nothing. Sources are duck-typed (`name`, `pull(since)`); `health` imports
no connector.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Engine

from health.db import session_scope
from health.records import Batch, SwitchedOff
from health.repo import StoreReport, get_watermark, set_watermark, store_batch, utcnow


class PullsBatches(Protocol):
    name: str

    def pull(self, since: str | None) -> Iterator[Batch]: ...


@dataclass
class SyncReport:
    source: str
    fetched: int = 0
    stored: StoreReport = field(default_factory=StoreReport)
    skipped: Counter = field(default_factory=Counter)  # reason -> records
    api_calls: int | None = None
    seconds: float = 0.0
    watermark: str | None = None
    busy: bool = False  # not run: another sync of this source was running
    switched_off: list[SwitchedOff] = field(default_factory=list)  # fields the system lacks

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "fetched": self.fetched,
            "upserted": self.stored.upserted,
            "unchanged": self.stored.unchanged,
            "skipped": dict(self.skipped),
            "unmatched": len(self.stored.unmatched),
            "unmatched_records": sum(self.stored.unmatched.values()),
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 2),
            "watermark": self.watermark,
            "switched_off": [
                {"field": s.field, "turns_off": s.turns_off, "key": s.key, "fix": s.fix}
                for s in self.switched_off
            ],
        }


def ingest(
    engine: Engine,
    source: PullsBatches,
    *,
    clock: Callable[[], datetime] = utcnow,
    on_batch: Callable[[SyncReport, Batch], None] | None = None,
    report: SyncReport | None = None,
    primary: str = "salesforce",
) -> SyncReport:
    started = time.perf_counter()
    # a caller-supplied report keeps what was committed even when the source fails midway
    report = report if report is not None else SyncReport(source=source.name)
    with session_scope(engine) as session:
        since = get_watermark(session=session, source=source.name)
    report.watermark = since
    for batch in source.pull(since):
        with session_scope(engine) as session:
            stored = store_batch(
                session=session, source=source.name, batch=batch, now=clock(), primary=primary
            )
        report.stored.add(stored)
        report.fetched += (
            batch.fetched if batch.fetched is not None else len(batch) + len(batch.errors)
        )
        report.skipped.update(e.reason for e in batch.errors)
        report.skipped.update(f"{e.key} {e.reason}" for e in stored.no_account)
        if batch.watermark is not None:
            report.watermark = batch.watermark
        report.api_calls = getattr(source, "api_calls", None)
        report.switched_off = list(getattr(source, "switched_off", None) or ())
        if on_batch:
            on_batch(report, batch)
    report.seconds = time.perf_counter() - started
    report.api_calls = getattr(source, "api_calls", None)
    report.switched_off = list(getattr(source, "switched_off", None) or ())
    if report.watermark is not None:
        with session_scope(engine) as session:
            set_watermark(
                session=session,
                source=source.name,
                watermark=report.watermark,
                now=clock(),
                report=report.as_dict(),
            )
    return report
