"""One sync per source and one writeback per CRM at a time, on SQLite and PostgreSQL: a second
run while the first holds the lock returns at once, and the lock dies with its holder."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from health.locks import exclusive
from health.records import Batch
from workers.pipeline import sync_source


class OneBatch:
    name = "csv"

    def __init__(self):
        self.pulled = 0

    def pull(self, since):
        self.pulled += 1
        yield Batch(watermark="w1")


def test_a_second_sync_of_a_source_waits_for_nothing_and_does_nothing(engine):
    source = OneBatch()
    with exclusive(engine, "sync-csv") as first:
        assert first
        report = sync_source(engine, source)
        assert report.busy and source.pulled == 0
        with exclusive(engine, "sync-other") as other:  # other names are not held
            assert other
    report = sync_source(engine, source)  # released: the next run goes ahead
    assert not report.busy and source.pulled == 1 and report.watermark == "w1"


def _hold(url: str, ready) -> None:
    from health.db import make_engine

    with exclusive(make_engine(url), "writeback-salesforce") as taken:
        assert taken
        ready.set()
        time.sleep(60)


def test_a_lock_dies_with_a_killed_holder(engine):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    url = engine.url.render_as_string(hide_password=False)
    holder = ctx.Process(target=_hold, args=(url, ready))
    holder.start()
    assert ready.wait(20)
    with exclusive(engine, "writeback-salesforce") as taken:
        assert not taken
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    for _ in range(100):  # PostgreSQL lets go as soon as it sees the connection close
        with exclusive(engine, "writeback-salesforce") as taken:
            if taken:
                break
        time.sleep(0.05)
    assert taken
