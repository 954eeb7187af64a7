"""An account with too little data for a tier is counted and shown as "Insufficient data"
everywhere: portfolio, a CSM's book, the digest, App Home, the CRM tier. Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot import views
from health.briefs import book, portfolio
from health.db import session_scope
from health.digests import needing_attention
from health.outbox import claim
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH

MODEL = load_model(DEFAULT_MODEL_PATH)
DAY = date(2026, 11, 1)
OWNER = "kim@x.test"


def seed(engine) -> None:
    """Three accounts of one CSM: a collapsed one with usage data, a fine one, and one whose
    only signal is a poor NPS answer (10% of the model)."""
    at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    obs = []
    for ext, users in (("FINE", 60), ("DOWN", 3)):
        ref = AccountRef(crm_id=ext)
        for d in range(120):
            now = users if d < 30 else 60
            when = at - timedelta(days=d)
            obs += [
                ObservationRecord(ref, "active_users", when, now, "product"),
                ObservationRecord(ref, "seats", when, 80, "product"),
                ObservationRecord(ref, "core_features_used", when, 4 if now > 10 else 1, "product"),
                ObservationRecord(ref, "key_events", when, 5 * now, "product"),
            ]
    obs.append(ObservationRecord(AccountRef(crm_id="THIN"), "nps", at, 2, "survey"))
    accounts = [
        AccountRecord("salesforce", ext, f"Account {ext}", f"{ext.lower()}.test", owner=OWNER,
                      arr=50_000.0)
        for ext in ("FINE", "DOWN", "THIN")
    ]  # fmt: skip
    with session_scope(engine) as s:
        store_batch(
            session=s, source="salesforce", batch=Batch(accounts=accounts, observations=obs), now=at
        )
    rescore(engine, MODEL, day=DAY, targets=("salesforce",))


def test_too_little_data_is_its_own_tier_everywhere(engine):
    seed(engine)
    with session_scope(engine) as s:
        view = portfolio(session=s)
        lines = book(session=s, owner=OWNER)
        digest = needing_attention(session=s)
        queued, _ = claim(session=s, target="salesforce", limit=10, now=datetime.now(UTC))
    counts = {t.tier: t.accounts for t in view.tiers}
    assert counts["insufficient"] == 1 and sum(counts.values()) == 3
    by_name = {x.name: x for x in lines}
    thin = by_name["Account THIN"]
    assert thin.tier == "insufficient" and thin.confidence < MODEL.tiers.min_confidence
    assert by_name["Account DOWN"].tier in ("at_risk", "critical")
    assert by_name["Account FINE"].tier in ("healthy", "monitor")
    # a poor NPS alone scores low, but is never listed at risk: the claim needs data
    assert [x.name for x in view.at_risk] == ["Account DOWN"]
    assert [x.name for x in digest[OWNER]] == ["Account DOWN"]
    assert lines[0].name == "Account DOWN" and lines[-1].name == "Account THIN"  # worst first
    assert "no fresh Product usage or Adoption depth" in thin.reason
    assert "USAGE_CSV" in thin.reason  # which source would fill the gap
    # the CRM gets the tier as it is
    assert {c.write.tier for c in queued} == {"insufficient", by_name["Account DOWN"].tier,
                                              by_name["Account FINE"].tier}  # fmt: skip
    home = views.as_dicts(views.home_view(OWNER, lines, [], 30).blocks)
    text = " ".join(b.get("text", {}).get("text", "") for b in home if b.get("text"))
    assert ":white_circle: *Insufficient data* (1)" in text and "Account THIN" in text
