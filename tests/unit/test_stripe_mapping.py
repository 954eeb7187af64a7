"""Stripe objects -> records: pure functions, no HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime

from connectors.stripe import mapping as mp
from health.records import RecordError


def ts(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def sub(status: str, *items: tuple[int, int, str, int]) -> dict:
    return {
        "status": status,
        "items": {
            "data": [
                {"price": {"unit_amount": cents, "recurring": {"interval": iv,
                                                               "interval_count": every}},
                 "quantity": qty}
                for cents, qty, iv, every in items
            ]
        },
    }  # fmt: skip


def test_subscription_arr_counts_billing_items_per_year():
    assert mp.subscription_arr(sub("active", (10_000, 3, "month", 1))) == 3600.0
    assert mp.subscription_arr(sub("past_due", (120_000, 1, "month", 3))) == 4800.0
    assert mp.subscription_arr(sub("active", (500_000, 1, "year", 1), (100, 52, "week", 1))) == (
        5000.0 + 2704.0
    )
    assert mp.subscription_arr(sub("canceled", (10_000, 1, "month", 1))) == 0.0


def test_customer_record_takes_the_crm_id_from_metadata_and_the_email_domain():
    cus = {"id": "cus_1", "name": None, "email": "AP@Acme.COM", "metadata": {"crm": " 001A "}}
    rec = mp.customer_record(cus, 1200.0, "crm")
    assert (rec.name, rec.domain, rec.cross_ref, rec.arr) == ("AP@Acme.COM", "acme.com", "001A",
                                                              1200.0)  # fmt: skip
    assert mp.customer_record(cus, None, "other").cross_ref is None
    assert isinstance(mp.customer_record({"email": "x@y.z"}, None, "crm"), RecordError)


def test_days_late_series_weekly_then_zero_when_settled_then_todays_snapshot():
    due = date(2026, 1, 10)
    paid = mp.Due("cus_1", due, date(2026, 1, 30))
    open_ = mp.Due("cus_1", date(2026, 3, 1), None)
    points = list(mp.days_late_series([paid, open_], date(2026, 3, 20)))
    assert points == [
        (date(2026, 1, 11), 1), (date(2026, 1, 18), 8), (date(2026, 1, 25), 15),
        (date(2026, 1, 30), 0),
        (date(2026, 3, 2), 1), (date(2026, 3, 9), 8), (date(2026, 3, 16), 15),
        (date(2026, 3, 20), 19),
    ]  # fmt: skip
    assert list(mp.days_late_series([paid], date(2026, 3, 20)))[-1] == (date(2026, 3, 20), 0)
    assert list(mp.days_late_series([paid], date(2026, 3, 20), snapshot=False))[-1] == (
        date(2026, 1, 30),
        0,
    )
    assert mp.late_on([paid, open_], date(2026, 1, 20)) == 10


def test_invoice_due_skips_drafts_and_falls_back_to_finalization():
    base = {"id": "in_1", "customer": "cus_1", "status": "open", "due_date": None}
    finalized = {**base, "status_transitions": {"finalized_at": ts(date(2026, 2, 1))}}
    assert mp.invoice_due(finalized) == mp.Due("cus_1", date(2026, 2, 1), None)
    assert mp.invoice_due({**base, "status": "draft"}) is None
    assert mp.invoice_due({**base, "status": "void"}) is None
    assert isinstance(mp.invoice_due({**base, "due_date": "soon"}), RecordError)
    paid = {**base, "status": "paid", "due_date": ts(date(2026, 2, 1)),
            "status_transitions": {"paid_at": ts(date(2026, 2, 9))}}  # fmt: skip
    assert mp.invoice_due(paid) == mp.Due("cus_1", date(2026, 2, 1), date(2026, 2, 9))


def test_only_failed_charges_are_payment_failed():
    ok = {"id": "ch_1", "status": "succeeded", "customer": "cus_1", "created": 1_790_000_000}
    assert mp.failed_payment(ok) is None
    obs = mp.failed_payment({**ok, "status": "failed"})
    assert (obs.signal, obs.account.crm_id, obs.value) == ("payment_failed", "cus_1", 1.0)
    assert isinstance(mp.failed_payment({"id": "ch_2", "status": "failed"}), RecordError)
