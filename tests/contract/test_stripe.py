"""Contract tests: the official stripe library over HTTP against the Stripe fake."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
import requests

from connectors.base import AuthConnectorError, TransientConnectorError
from connectors.sandbox.portfolio import generate_portfolio, observation_records
from connectors.sandbox.server import Fault
from connectors.sandbox.stripe_api import StripeSandbox, start_stripe_sandbox
from connectors.stripe.client import StripeApi
from connectors.stripe.mapping import subscription_arr
from connectors.stripe.source import FEW, StripeSource, build_source
from health.ingest import ingest
from health.settings import Settings
from tests.conftest import _empty
from tests.contract.helpers import Accounts, Killed, kill_after
from tests.contract.test_salesforce import rows, snapshot

PORTFOLIO = generate_portfolio(60, 400, seed=21)  # ~1,000 invoices: several pages of 100
PAYMENT = ("payment_failed", "payment_days_late")


@pytest.fixture
def sb():
    with start_stripe_sandbox(PORTFOLIO) as sandbox:
        yield sandbox


def source(sb: StripeSandbox, sleeps: list | None = None, **opts) -> StripeSource:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    api = StripeApi(sb.api_key, sb.url, sleep=sleep, **opts)
    return StripeSource(api, clock=lambda: sb.now)


def crm(engine, portfolio=PORTFOLIO) -> None:
    """The CRM's accounts (the portfolio ids are their CRM ids); the first without ARR."""
    first = portfolio.accounts[0]
    p = replace(portfolio, accounts=[replace(first, arr=None), *portfolio.accounts[1:]])
    ingest(engine, Accounts(p))


def payments(engine, *, until: date | None = None) -> Counter:
    got = rows(
        engine,
        "SELECT a.external_id, o.signal, o.observed_at, o.value FROM observation o "
        "JOIN account a ON a.id = o.account_id WHERE o.source = 'stripe'",
    )
    return Counter(
        (ext, sig, _dt(at), v)
        for ext, sig, at, v in got
        if until is None or _dt(at).date() <= until
    )


def _dt(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pages(n: int) -> int:
    return max(1, math.ceil(n / 100))


def test_full_sync_matches_the_portfolio_and_records_the_unknown_customer(engine, sb):
    crm(engine)
    src = source(sb)
    report = ingest(engine, src)

    want = Counter(
        (o.account.crm_id, o.signal, o.observed_at, o.value)
        for o in observation_records(PORTFOLIO)
        if o.signal in PAYMENT
    )
    kinds = Counter(sig for _, sig, _, _ in want)
    assert kinds["payment_failed"] > 0 and kinds["payment_days_late"] > 20
    assert payments(engine, until=PORTFOLIO.end) == want
    # after the portfolio's end, only today's snapshot of what is overdue now
    later = payments(engine) - want
    assert later and {(s, at.date()) for _, s, at, _ in later} == {
        ("payment_days_late", sb.now.date())
    }
    # customers attach to the CRM's accounts: by metadata id (2 in 3) or by email domain
    linked = Counter(rows(engine, "SELECT linked_by FROM crmrecord WHERE source = 'stripe'"))
    assert linked == {("cross_ref",): 40, ("domain",): 20}
    # subscription ARR fills the account the CRM gave none, and only that one
    arr = dict(rows(engine, "SELECT external_id, arr FROM account"))
    assert arr[PORTFOLIO.accounts[0].external_id] == PORTFOLIO.accounts[0].arr
    assert all(arr[a.external_id] == a.arr for a in PORTFOLIO.accounts[1:])
    # the customer of an unknown company is recorded, not dropped and not an account
    (unknown,) = [c for c in sb.objects["customers"].values() if "unknown" in c["email"]]
    errors = rows(engine, "SELECT source, record_key, reason FROM syncerror")
    assert errors == [
        ("stripe", unknown["id"], "matches no account: no account has the domain "
         "unknown-prospect-1.example")
    ]  # fmt: skip
    assert report.skipped == Counter({f"{unknown['id']} {errors[0][2]}": 1})
    assert len(rows(engine, "SELECT id FROM account")) == len(PORTFOLIO.accounts)
    # calls: the newest event, then every list at 100 a page, nothing per customer
    n = {k: len(v) for k, v in sb.objects.items()}
    minimum = 1 + sum(pages(n[k]) for k in ("subscriptions", "customers", "invoices", "charges"))
    assert report.api_calls == src.api_calls == len(sb.server.requests) == minimum
    assert all(r.arg("limit") in ("1", "100") for r in sb.server.requests)


def test_incremental_sync_reads_events_and_open_invoices_only(engine, sb):
    crm(engine)
    ingest(engine, source(sb))
    before = payments(engine)
    sb.server.reset_counts()
    report = ingest(engine, source(sb))  # nothing new: events + open invoices
    assert len(sb.server.requests) == report.api_calls == 2
    assert report.stored.upserted == 0 and payments(engine) == before

    open_late = sorted(
        (i for i in sb.objects["invoices"].values() if i["status"] == "open"),
        key=lambda i: i["due_date"],
    )
    paid = sb.pay(open_late[0]["id"])
    card = next(i for i in sb.objects["invoices"].values() if i["status"] == "paid")
    failed = sb.fail_payment(card["id"])
    cus = sb.objects["customers"][card["customer"]]
    sb.tick()
    cus["name"] = "Renamed In Stripe"
    sb.emit("customer.updated", cus, int(sb.now.timestamp()))
    sb.server.reset_counts()
    report = ingest(engine, source(sb))
    # events, the subscriptions (a customer changed) and the open invoices: one page each
    assert [r.path for r in sb.server.requests] == [
        "/v1/events",
        "/v1/subscriptions",
        "/v1/invoices",
    ]
    new = payments(engine) - before
    acc = {
        c: ext
        for c, ext in rows(
            engine,
            "SELECT r.external_id, a.external_id FROM crmrecord r JOIN account a "
            "ON a.id = r.account_id WHERE r.source = 'stripe'",
        )
    }
    today = datetime(sb.now.year, sb.now.month, sb.now.day, tzinfo=UTC)
    failed_at = datetime.fromtimestamp(failed["created"], UTC)
    assert (acc[card["customer"]], "payment_failed", failed_at, 1.0) in new
    assert (acc[paid["customer"]], "payment_days_late", today, 0.0) in new
    names = dict(rows(engine, "SELECT external_id, name FROM crmrecord WHERE source = 'stripe'"))
    assert names[cus["id"]] == "Renamed In Stripe"
    again = payments(engine)
    ingest(engine, source(sb))  # the same second read again adds nothing
    assert payments(engine) == again


def test_killed_run_then_rerun_equals_an_uninterrupted_run(engine, sb):
    crm(engine)
    ingest(engine, source(sb))
    whole = snapshot(engine) | {"stripe": rows(engine, "SELECT watermark FROM syncstate "
                                               "WHERE source = 'stripe'")}  # fmt: skip
    _empty(engine)
    crm(engine)
    with pytest.raises(Killed):
        ingest(engine, source(sb), on_batch=kill_after(2))
    # customers and a page of charges stored; no days-late series, no watermark yet
    assert {sig for _, sig, _, _ in payments(engine)} == {"payment_failed"}
    assert rows(engine, "SELECT watermark FROM syncstate WHERE source = 'stripe'") == []
    ingest(engine, source(sb))
    assert snapshot(engine) | {"stripe": rows(engine, "SELECT watermark FROM syncstate "
                                              "WHERE source = 'stripe'")} == whole  # fmt: skip


def test_429_is_retried_after_retry_after_then_raises_transient(engine, sb):
    crm(engine)
    sleeps: list[float] = []
    sb.server.inject(Fault("rate_limit", path_contains="/v1/invoices", times=2, retry_after=3))
    report = ingest(engine, source(sb, sleeps))
    assert sleeps == [3.0, 3.0] and report.stored.upserted > 0
    assert sb.server.count("GET", "/v1/invoices") == pages(len(sb.objects["invoices"])) + 2

    sb.server.reset_counts()
    sb.server.inject(Fault("rate_limit", path_contains="/v1/events", times=10, retry_after=1))
    with pytest.raises(TransientConnectorError) as err:
        list(source(sb, [], max_retries=2).pull(json.dumps({"events": int(sb.now.timestamp())})))
    assert err.value.retry_after == 1.0 and "rate limit" in str(err.value).lower()
    assert sb.server.count("GET", "/v1/events") == 3  # 1 + 2 retries, then the task's turn


def test_a_rejected_key_names_the_variable(sb):
    api = StripeApi("sk_test_wrong", sb.url, sleep=lambda s: None)
    with pytest.raises(AuthConnectorError, match="STRIPE_API_KEY"):
        list(StripeSource(api).pull(None))


def test_the_fake_answers_in_stripes_shapes(sb):
    head = {"Authorization": f"Bearer {sb.api_key}"}
    first = requests.get(f"{sb.url}/v1/invoices", params={"limit": 3}, headers=head).json()
    assert first["object"] == "list" and first["url"] == "/v1/invoices" and first["has_more"]
    after = requests.get(
        f"{sb.url}/v1/invoices",
        params={"limit": 3, "starting_after": first["data"][-1]["id"]},
        headers=head,
    ).json()
    created = [i["created"] for i in first["data"] + after["data"]]
    assert created == sorted(created, reverse=True)  # newest first, across pages
    too_many = requests.get(f"{sb.url}/v1/customers", params={"limit": 101}, headers=head)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["type"] == "invalid_request_error"
    assert too_many.json()["error"]["param"] == "limit"
    bad_key = requests.get(f"{sb.url}/v1/customers", headers={"Authorization": "Bearer x"})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["type"] == "authentication_error"


def test_build_source_from_settings(sb):
    settings = Settings(_env_file=None, stripe_api_key=sb.api_key, stripe_base_url=sb.url,
                        stripe_account_metadata_key="hb_account")  # fmt: skip
    src = build_source(settings, clock=lambda: sb.now)
    batch = next(src.pull(None))
    assert batch.attach_only and all(a.cross_ref is None for a in batch.accounts)


def test_a_customer_whose_domain_is_on_two_accounts_is_recorded_as_ambiguous(engine):
    small = generate_portfolio(6, 60, seed=4)
    third = small.accounts[2]  # i % 3 == 2: no CRM id in its metadata, matched by domain
    twin = replace(small.accounts[0], external_id="CRM-TWIN", name="Twin", domain=third.domain)
    ingest(engine, Accounts(replace(small, accounts=[*small.accounts, twin])))
    with start_stripe_sandbox(small, unmatched=0) as sb:
        report = ingest(engine, source(sb))
        cus = next(c for c in sb.objects["customers"].values() if third.domain in c["email"])
    reason = f"matches no account: domain {third.domain} matches 2 accounts"
    assert rows(engine, "SELECT record_key, reason FROM syncerror") == [(cus["id"], reason)]
    assert report.stored.unmatched == {cus["id"]: sum(report.stored.unmatched.values())}


@pytest.mark.parametrize("renamed", [2, FEW + 1])
def test_changed_customers_read_their_subscriptions_each_or_all_at_once(engine, sb, renamed):
    crm(engine)
    ingest(engine, source(sb))
    customers = sorted(sb.objects["customers"].values(), key=lambda c: c["id"])[:renamed]
    for cus in customers:
        cus["name"] += " (renamed)"
        sb.emit("customer.updated", cus, sb.tick())
    sb.server.reset_counts()
    ingest(engine, source(sb))
    subs = [r for r in sb.server.requests if r.path == "/v1/subscriptions"]
    if renamed <= FEW:
        assert sorted(r.arg("customer") for r in subs) == [c["id"] for c in customers]
    else:
        assert len(subs) == pages(len(sb.objects["subscriptions"])) and not subs[0].arg("customer")
    names = dict(rows(engine, "SELECT external_id, name FROM crmrecord WHERE source = 'stripe'"))
    arr = dict(rows(engine, "SELECT external_id, arr FROM crmrecord WHERE source = 'stripe'"))
    for cus in customers:
        assert names[cus["id"]].endswith("(renamed)")
        live = [s for s in sb.objects["subscriptions"].values() if s["customer"] == cus["id"]]
        assert arr[cus["id"]] == (sum(subscription_arr(s) for s in live) or None)


def test_a_quiet_spell_moves_the_mark_on_instead_of_ageing_into_a_full_reread(engine, sb):
    crm(engine)
    ingest(engine, source(sb))
    for days in (10, 10, 10):  # a month with no customer, invoice or charge event of ours
        sb.tick(days * 86400)
        sb.emit("payment_intent.created", {"id": "pi_1", "object": "payment_intent"}, sb.tick())
        sb.server.reset_counts()
        report = ingest(engine, source(sb))
        assert report.api_calls <= 3  # events, open invoices, and the newest event: no re-read
    assert not any(r.path.endswith("/v1/customers") for r in sb.server.requests)
