"""Pieces the contract tests share: a CRM stand-in and a sync killed part-way."""

from __future__ import annotations

from connectors.sandbox.portfolio import Portfolio, account_records
from health.records import Batch


class Accounts:
    """The CRM side: the portfolio's accounts only, for a source whose records are matched to
    them (help desk, product usage)."""

    name = "sandbox"

    def __init__(self, portfolio: Portfolio):
        self.portfolio = portfolio

    def pull(self, since):
        yield Batch(accounts=account_records(self.portfolio), watermark="seeded")


class Killed(Exception):
    """Stands for the process dying between two batches."""


def kill_after(n: int):
    """An `on_batch` hook that kills the sync once `n` batches are stored."""

    def on_batch(report, batch):
        on_batch.n += 1
        if on_batch.n == n:
            raise Killed

    on_batch.n = 0
    return on_batch
