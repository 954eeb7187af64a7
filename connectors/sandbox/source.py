"""The bundled sandbox portfolio as a Source: the embedded demo's data without any vendor API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import islice

from connectors.sandbox.portfolio import (
    Portfolio,
    account_records,
    observation_records,
    outcome_records,
)
from health.records import AccountRef, Batch, ObservationRecord


class PortfolioSource:
    name = "sandbox"

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        batch_size: int = 20_000,
        only_signals: frozenset[str] | None = None,
    ):
        """`only_signals`: just these signals, naming accounts by domain and creating none
        (the signals no vendor sandbox serves, beside a sync through the vendor sandboxes)."""
        self.portfolio = portfolio
        self.batch_size = batch_size
        self.only_signals = only_signals
        self.api_calls = 0

    def _observations(self) -> Iterator[ObservationRecord]:
        records = observation_records(self.portfolio)
        if self.only_signals is None:
            yield from records
            return
        domains = {a.external_id: a.domain for a in self.portfolio.accounts}
        for r in records:
            if r.signal in self.only_signals:
                yield replace(r, account=AccountRef(domain=domains[r.account.crm_id]))

    def pull(self, since: str | None) -> Iterator[Batch]:
        if self.only_signals is None:
            accounts = account_records(self.portfolio)
            yield Batch(
                accounts=accounts, outcomes=outcome_records(self.portfolio), fetched=len(accounts)
            )
        observations = self._observations()
        while part := list(islice(observations, self.batch_size)):
            yield Batch(observations=part, fetched=len(part))
        yield Batch(watermark=self.portfolio.end.isoformat())
