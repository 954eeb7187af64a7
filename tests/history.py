"""A small history with known outcomes: accounts whose usage declines before they churn, and
accounts that renew, for the backfill/backtest tests (stored directly or written as CSV)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from health.records import AccountRecord, AccountRef, Batch, ObservationRecord, OutcomeRecord

END = date(2026, 10, 31)


@dataclass
class History:
    accounts: list[AccountRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    outcomes: list[OutcomeRecord] = field(default_factory=list)

    def batch(self) -> Batch:
        return Batch(self.accounts, self.observations, self.outcomes)

    def write_csv(self, folder: Path) -> dict[str, Path]:
        paths = {k: folder / f"{k}.csv" for k in ("accounts", "observations", "outcomes")}
        with paths["accounts"].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["external_id", "name", "segment", "owner", "customer_since"])
            for a in self.accounts:
                w.writerow([a.external_id, a.name, a.segment, a.owner, a.customer_since])
        with paths["observations"].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["account", "signal", "observed_at", "value"])
            for o in self.observations:
                w.writerow([o.account.crm_id, o.signal, o.observed_at.date(), o.value])
        with paths["outcomes"].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["account", "kind", "occurred_on"])
            for o in self.outcomes:
                w.writerow([o.account.crm_id, o.kind, o.occurred_on])
        return paths


def history(n: int = 30, days: int = 240, *, seed: int = 1, source: str = "csv") -> History:
    """`n` accounts over `days` days to END; every other one churns. Outcomes fall in the last
    120 days; a churner's usage starts falling 60-100 days before it leaves."""
    rng = random.Random(seed)
    h = History()
    start = END - timedelta(days=days - 1)
    for i in range(n):
        ext = f"H{i:03d}"
        churns = i % 2 == 0
        h.accounts.append(
            AccountRecord(
                source,
                ext,
                f"History {i}",
                segment=("smb", "mid_market")[i % 3 == 0],
                owner=f"csm{i // 2 % 2}@example.test",
                customer_since=start - timedelta(days=400),
            )
        )
        ref = AccountRef(crm_id=ext)
        ends = END - timedelta(days=rng.randint(0, 120))
        falls = ends - timedelta(days=rng.randint(60, 100))
        level = rng.uniform(20, 40)
        for d in range(days):
            day = start + timedelta(days=d)
            if day > ends and churns:
                break
            at = datetime.combine(day, datetime.min.time(), UTC)
            users = level * rng.uniform(0.85, 1.15)
            if churns and day > falls:
                users *= max(0.05, 1 - (day - falls).days / (ends - falls).days)
            h.observations.append(ObservationRecord(ref, "active_users", at, round(users), source))
            h.observations.append(ObservationRecord(ref, "seats", at, 50, source))
            if d % 30 == 3:
                rating = (2 if churns and day > falls else 4) if rng.random() < 0.8 else 3
                h.observations.append(ObservationRecord(ref, "csm_sentiment", at, rating, source))
        h.outcomes.append(OutcomeRecord(ref, "churned" if churns else "renewed", ends, source))
    return h
