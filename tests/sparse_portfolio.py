"""A portfolio whose product usage is weekly and sparse, as a real product's export often is:
one usage row per account and week (weekly active users, 0 for a quiet week), most customers
active a few weeks a month, churners fading out before their renewal. Deterministic."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from health.records import AccountRecord, AccountRef, ObservationRecord

WEEKS = 39  # nine months of weekly rows


@dataclass(frozen=True)
class SparsePortfolio:
    accounts: list[AccountRecord]
    observations: list[ObservationRecord]
    churned: dict[str, bool]  # external id -> churns at its coming renewal
    today: date  # the scoring day: every renewal lies 30-90 days after it


def sparse_portfolio(n: int = 240, *, seed: int = 5, today: date = date(2026, 11, 1)):
    rng = random.Random(seed)
    accounts, obs, churned = [], [], {}
    first = today - timedelta(weeks=WEEKS - 1)
    for i in range(n):
        ext, ref = f"S{i:04d}", AccountRef(crm_id=f"S{i:04d}")
        churns = rng.random() < 0.25
        # a churner fades out over the last 6-20 weeks; one in eight leaves with no warning
        fade = rng.randint(6, 20) if churns and rng.random() > 1 / 8 else 0
        gone = rng.randint(0, 4) if fade else 0  # weeks of nothing at all before today
        seats = rng.randint(5, 200)
        p_active = rng.uniform(0.35, 0.9)  # share of weeks with any use
        util = rng.uniform(0.08, 0.5)  # share of seats active in an active week
        feats = rng.uniform(1.5, 6)
        accounts.append(
            AccountRecord(
                source="salesforce",
                external_id=ext,
                name=f"Sparse {i}",
                domain=f"sparse{i}.test",
                renewal_date=today + timedelta(days=rng.randint(30, 90)),
                customer_since=first - timedelta(days=rng.randint(30, 900)),
            )
        )
        churned[ext] = churns
        for w in range(WEEKS):
            at = datetime.combine(first + timedelta(weeks=w), datetime.min.time(), UTC)
            left = WEEKS - 1 - w  # weeks before today
            level = 1.0
            if fade and left < gone:
                level = 0.0
            elif fade and left < fade + gone:
                level = (left - gone) / fade
            active = rng.random() < p_active * (0.3 + 0.7 * level) and level > 0
            users = max(1, round(seats * util * (0.4 + 0.6 * level) * rng.uniform(0.7, 1.3)))
            users = users if active else 0
            f = max(1, round(feats * (0.5 + 0.5 * level) + rng.gauss(0, 0.7))) if active else 0
            obs.append(ObservationRecord(ref, "active_users", at, users, "usage"))
            obs.append(ObservationRecord(ref, "core_features_used", at, f, "usage"))
            obs.append(ObservationRecord(ref, "key_events", at, users * rng.randint(3, 9), "usage"))
            if w % 4 == 0:
                obs.append(ObservationRecord(ref, "seats", at, seats, "usage"))
                tickets = rng.choice((0, 0, 0, 1, 2))
                obs.append(ObservationRecord(ref, "open_tickets", at, tickets, "zendesk"))
            if rng.random() < 0.3:  # CSM touches, whatever the account does
                touch = at + timedelta(days=rng.randint(0, 6), hours=10)
                obs.append(ObservationRecord(ref, "csm_touch", touch, 1, "salesforce"))
    return SparsePortfolio(accounts, obs, churned, today)
