"""The bundled sandbox portfolio as a Source: the embedded demo's data without any vendor API."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from connectors.sandbox.portfolio import (
    Portfolio,
    account_records,
    observation_records,
    outcome_records,
)
from health.records import Batch


class PortfolioSource:
    name = "sandbox"

    def __init__(self, portfolio: Portfolio, *, batch_size: int = 20_000):
        self.portfolio = portfolio
        self.batch_size = batch_size
        self.api_calls = 0

    def pull(self, since: str | None) -> Iterator[Batch]:
        accounts = account_records(self.portfolio)
        yield Batch(
            accounts=accounts, outcomes=outcome_records(self.portfolio), fetched=len(accounts)
        )
        observations = observation_records(self.portfolio)
        while part := list(islice(observations, self.batch_size)):
            yield Batch(observations=part, fetched=len(part))
        yield Batch(watermark=self.portfolio.end.isoformat())
