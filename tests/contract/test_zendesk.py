"""Zendesk connector against the local Zendesk fake, over real HTTP, into a real database."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.server import Fault
from connectors.sandbox.zendesk_api import EXPORT, ZendeskSandbox, start_zendesk_sandbox
from connectors.zendesk.client import ZendeskClient
from connectors.zendesk.source import ZendeskSource, build_source, is_configured
from health.ingest import ingest
from health.models import Account, Observation
from health.settings import Settings
from tests.conftest import _empty
from tests.contract.helpers import Accounts

OPEN = {"new", "open", "pending", "hold"}


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=40, days=120, seed=11)


@pytest.fixture
def sb(portfolio):
    with start_zendesk_sandbox(portfolio) as sandbox:
        yield sandbox


def source(sb: ZendeskSandbox, sleeps: list | None = None, **client_kw) -> ZendeskSource:
    per_page = client_kw.pop("per_page", 1000)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    client = ZendeskClient(sb.url, sb.email, sb.token, sleep=sleep, backoff=0.01, **client_kw)
    return ZendeskSource(client, per_page=per_page)


def seeded(engine, portfolio):
    _empty(engine)
    ingest(engine, Accounts(portfolio))
    return engine


def observations(engine, signal: str | None = None) -> list[tuple]:
    """(account external id, signal, observed_at ISO, value, source), sorted."""
    query = select(
        Account.external_id,
        Observation.signal,
        Observation.observed_at,
        Observation.value,
        Observation.source,
    ).join(Account)
    if signal:
        query = query.where(Observation.signal == signal)
    with Session(engine) as session:
        rows = session.exec(query).all()
    return sorted((e, s, at.isoformat(), v, src) for e, s, at, v, src in rows)


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        errors = sorted(
            tuple(r) for r in conn.execute(text("SELECT source, record_key, reason FROM syncerror"))
        )
        marks = sorted(
            tuple(r) for r in conn.execute(text("SELECT source, watermark FROM syncstate"))
        )
    return {"observations": observations(engine), "errors": errors, "watermarks": marks}


def latest_open(engine) -> dict[str, float]:
    latest: dict[str, tuple] = {}
    for ext, _, at, value, _ in observations(engine, "open_tickets"):
        if ext not in latest or at > latest[ext][0]:
            latest[ext] = (at, value)
    return {ext: v for ext, (_, v) in latest.items()}


SNAPSHOTS = ("open_tickets", "oldest_open_ticket_days")


def latest_oldest(engine) -> dict[str, tuple[datetime, float]]:
    latest: dict[str, tuple] = {}
    for ext, _, at, value, _ in observations(engine, "oldest_open_ticket_days"):
        if ext not in latest or at > latest[ext][0]:
            latest[ext] = (at, value)
    return latest


def expected_oldest(sb: ZendeskSandbox, at_of: dict[str, tuple]) -> dict[str, float]:
    """Age in days of each account's oldest open ticket at its newest snapshot (0: none)."""
    created: dict[str, list[datetime]] = {}
    for t in sb.tickets.values():
        org = sb.orgs[t["organization_id"]]
        if "_account" in org and t["status"] in OPEN:
            at = datetime.fromisoformat(t["created_at"].replace("Z", "+00:00"))
            created.setdefault(org["_account"], []).append(at)
    out = {}
    for acc, (at, _value) in at_of.items():
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        first = min(created.get(acc, []), default=None)
        out[acc] = round((at - first).total_seconds() / 86400, 2) if first else 0.0
    return out


def expected_open(sb: ZendeskSandbox) -> dict[str, float]:
    counts: Counter = Counter()
    for t in sb.tickets.values():
        org = sb.orgs[t["organization_id"]]
        if "_account" in org:
            counts[org["_account"]] += t["status"] in OPEN
    return {acc: float(n) for acc, n in counts.items()}


def test_full_sync_maps_every_signal(engine, portfolio, sb):
    seeded(engine, portfolio)
    report = ingest(engine, source(sb))
    tickets = portfolio.tickets
    assert report.fetched == len(sb.tickets)
    assert sb.server.count("GET", EXPORT) == 1  # <= 1000 tickets: one page
    assert sb.server.count("GET", "/organizations") == 0  # organizations came side-loaded
    assert report.api_calls == 1
    sev1 = Counter(t.account_id for t in tickets if t.priority == "urgent")
    assert Counter(o[0] for o in observations(engine, "sev1_ticket")) == sev1
    esc = Counter(t.account_id for t in tickets if t.escalated)
    assert Counter(o[0] for o in observations(engine, "escalation")) == esc
    csat = sorted(
        (
            t.account_id,
            t.solved_at.replace(microsecond=0).isoformat(),
            100.0 if t.satisfaction == "good" else 0.0,
        )
        for t in tickets
        if t.satisfaction
    )
    assert sorted((e, at, v) for e, _, at, v, _ in observations(engine, "csat")) == csat
    assert latest_open(engine) == expected_open(sb)
    sev2 = Counter(t.account_id for t in tickets if t.priority == "high")
    assert Counter(o[0] for o in observations(engine, "sev2_ticket")) == sev2
    oldest = latest_oldest(engine)
    assert {acc: v for acc, (_, v) in oldest.items()} == expected_oldest(sb, oldest)
    assert any(v > 0 for _, v in oldest.values())
    # organizations matched by external_id and by domain alike; unknown ones are unmatched
    with_tickets = {t.account_id for t in tickets}
    assert {o[0] for o in observations(engine)} == with_tickets
    by_domain = {a.external_id for i, a in enumerate(portfolio.accounts) if i % 5 == 4}
    assert by_domain & with_tickets  # some organizations carry only a domain, and match
    assert report.as_dict()["unmatched"] == 3
    assert "ZD-UNKNOWN-1" in report.stored.unmatched


def test_incremental_sync_reads_only_changes(engine, portfolio, sb):
    seeded(engine, portfolio)
    ingest(engine, source(sb))
    before = observations(engine)
    open_ticket = next(
        t
        for t in sb.tickets.values()
        if t["status"] == "open" and "_account" in sb.orgs[t["organization_id"]]
    )
    account = sb.orgs[open_ticket["organization_id"]]["_account"]
    calm = next(
        t for t in sb.tickets.values() if t["status"] == "closed" and t["priority"] != "urgent"
    )
    sb.advance(3600)
    sb.touch(open_ticket["id"], status="solved", satisfaction_rating={"score": "good"})
    sb.touch(calm["id"], priority="urgent")
    sb.advance(61)
    sb.server.reset_counts()

    report = ingest(engine, source(sb))
    assert report.fetched == 2
    assert sb.server.count("GET") == 1
    after = observations(engine)
    new = sorted(set(after) - set(before))
    calm_acc = sb.orgs[calm["organization_id"]]["_account"]
    assert {(r[0], r[1]) for r in new} >= {
        (account, "open_tickets"),
        (account, "csat"),
        (calm_acc, "sev1_ticket"),
    }
    assert latest_open(engine) == expected_open(sb)

    sb.server.reset_counts()  # nothing changed since: one call, nothing new
    report = ingest(engine, source(sb))
    assert (report.fetched, sb.server.count("GET"), observations(engine)) == (0, 1, after)


def test_deleted_and_moved_tickets_leave_the_open_count(engine, portfolio, sb):
    seeded(engine, portfolio)
    ingest(engine, source(sb))
    opens = [
        t
        for t in sb.tickets.values()
        if t["status"] in OPEN and "_account" in sb.orgs[t["organization_id"]]
    ]
    deleted, moved = (
        opens[0],
        next(t for t in opens[1:] if t["organization_id"] != opens[0]["organization_id"]),
    )
    target = next(
        o for o in sb.orgs.values() if o["id"] != moved["organization_id"] and "_account" in o
    )
    old_org = moved["organization_id"]
    sb.delete_ticket(deleted["id"])
    sb.touch(moved["id"], organization_id=target["id"])
    sb.advance(61)
    sb.server.reset_counts()
    ingest(engine, source(sb))
    assert latest_open(engine) == expected_open(sb)
    # the old organization was not side-loaded with the page: one show_many call fetched it
    assert sb.server.count("GET", "/organizations/show_many") == 1
    assert (
        expected_open(sb)[sb.orgs[old_org]["_account"]]
        == latest_open(engine)[sb.orgs[old_org]["_account"]]
    )


@pytest.mark.parametrize("per_page", [7, 50])
def test_pagination_gives_the_same_result_as_one_page(engine, portfolio, sb, per_page):
    seeded(engine, portfolio)
    ingest(engine, source(sb))
    one_page = observations(engine)
    seeded(engine, portfolio)
    sb.server.reset_counts()
    report = ingest(engine, source(sb, per_page=per_page))
    assert sb.server.count("GET", EXPORT) == math.ceil(len(sb.tickets) / per_page)
    assert report.fetched == len(sb.tickets)
    # snapshots are per page, so they have more points; every event signal is equal
    paged = observations(engine)
    assert [r for r in paged if r[1] not in SNAPSHOTS] == [
        r for r in one_page if r[1] not in SNAPSHOTS
    ]
    assert latest_open(engine) == expected_open(sb)


def test_many_tickets_sharing_one_timestamp_across_pages(engine, portfolio, sb):
    seeded(engine, portfolio)
    ingest(engine, source(sb, per_page=10))
    same = sb.now.replace(microsecond=0)
    ids = sorted(sb.tickets)[:35]
    for tid in ids:
        sb.touch(tid, at=same, priority="urgent")
    sb.advance(61)
    seen: list[int] = []
    client = ZendeskClient(sb.url, sb.email, sb.token)
    page = client.export_tickets(start_time=int(same.timestamp()), per_page=10)
    while True:
        seen += [t["id"] for t in page["tickets"]]
        if page["end_of_stream"]:
            break
        page = client.export_tickets(cursor=page["after_cursor"], per_page=10)
    assert sorted(seen) == ids  # the fake itself neither skips nor repeats on a tie
    report = ingest(engine, source(sb, per_page=10))
    assert report.fetched == 35
    assert sb.server.count("GET", EXPORT) >= 4
    sev1 = {o[0] for o in observations(engine, "sev1_ticket")}
    assert {sb.orgs[sb.tickets[t]["organization_id"]].get("_account") for t in ids} - {None} <= sev1


def test_change_in_the_second_of_the_cursor_is_picked_up_once(engine, portfolio, sb):
    seeded(engine, portfolio)
    ingest(engine, source(sb))
    ticket = next(
        t
        for t in sb.tickets.values()
        if t["priority"] == "low" and "_account" in sb.orgs[t["organization_id"]]
    )
    horizon = sb.now - timedelta(seconds=60)  # the previous run's cursor position
    sb.touch(ticket["id"], at=horizon + timedelta(seconds=1), priority="urgent")
    assert ingest(engine, source(sb)).fetched == 0  # inside the last minute: not yet exported
    sb.advance(61)
    assert ingest(engine, source(sb)).fetched == 1
    assert ingest(engine, source(sb)).fetched == 0
    acc = sb.orgs[ticket["organization_id"]]["_account"]
    assert (acc, "sev1_ticket") in {(o[0], o[1]) for o in observations(engine)}


def test_rate_limit_storm_honours_retry_after(engine, portfolio, sb):
    seeded(engine, portfolio)
    sleeps: list[float] = []
    sb.server.inject(Fault("rate_limit", path_contains=EXPORT, times=3, retry_after=2))
    report = ingest(engine, source(sb, sleeps))
    assert sleeps == [2.0, 2.0, 2.0]
    assert sb.server.count("GET", EXPORT) == 4 and report.api_calls == 4
    assert latest_open(engine) == expected_open(sb)


def test_rate_limit_beyond_the_retry_budget_is_transient(engine, portfolio, sb):
    seeded(engine, portfolio)
    sb.server.inject(Fault("rate_limit", path_contains=EXPORT, times=10, retry_after=7))
    with pytest.raises(TransientConnectorError) as err:
        ingest(engine, source(sb, max_retries=2))
    assert err.value.retry_after == 7
    assert observations(engine) == []


def test_server_errors_and_timeouts_are_retried(engine, portfolio, sb):
    seeded(engine, portfolio)
    sleeps: list[float] = []
    sb.server.inject(
        Fault("server_error", path_contains=EXPORT, times=2),
        Fault("slow", path_contains=EXPORT, times=1, delay=1.0),
    )
    ingest(engine, source(sb, sleeps, timeout=0.5))
    assert len(sleeps) == 3 and all(0 < s < 1 for s in sleeps)
    assert sb.server.count("GET", EXPORT) == 4
    assert latest_open(engine) == expected_open(sb)


def test_malformed_tickets_are_skipped_with_a_reason(engine, portfolio, sb):
    seeded(engine, portfolio)
    org = sb.org_for(portfolio.accounts[0].external_id)
    bad = sb.add_malformed_ticket(org["id"], at=sb.now - timedelta(hours=2))
    sb.server.inject(Fault("malformed", path_contains=EXPORT))
    report = ingest(engine, source(sb))
    errors = snapshot(engine)["errors"]
    assert len(errors) == 2 and all(e[2].startswith("unparsable created_at") for e in errors)
    assert f"ticket:{bad['id']}" in {e[1] for e in errors}
    assert report.fetched == len(sb.tickets)
    assert len(observations(engine, "sev1_ticket")) > 0


def test_wrong_token_names_the_variable_and_stores_nothing(engine, portfolio, sb):
    seeded(engine, portfolio)
    client = ZendeskClient(sb.url, sb.email, "wrong")
    with pytest.raises(AuthConnectorError, match="ZENDESK_API_TOKEN"):
        ingest(engine, ZendeskSource(client))
    assert observations(engine) == []


def _uninterrupted(engine, portfolio, sb) -> dict:
    seeded(engine, portfolio)
    ingest(engine, source(sb, per_page=20))
    sb.server.reset_counts()
    return snapshot(engine)


def test_expired_token_mid_run_then_rerun_matches(engine, portfolio, sb):
    expected = _uninterrupted(engine, portfolio, sb)
    seeded(engine, portfolio)

    def expire_after_two(report, batch):
        if sb.server.count("GET", EXPORT) == 2:
            sb.server.inject(Fault("expired_token", path_contains=EXPORT, times=1))

    with pytest.raises(AuthConnectorError, match="ZENDESK_EMAIL and ZENDESK_API_TOKEN"):
        ingest(engine, source(sb, per_page=20), on_batch=expire_after_two)
    partial = snapshot(engine)
    assert 0 < len(partial["observations"]) < len(expected["observations"])
    ingest(engine, source(sb, per_page=20))
    assert snapshot(engine) == expected


def test_killed_mid_run_then_rerun_matches(engine, portfolio, sb):
    expected = _uninterrupted(engine, portfolio, sb)
    seeded(engine, portfolio)

    def kill(report, batch):
        if sb.server.count("GET", EXPORT) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(engine, source(sb, per_page=20), on_batch=kill)
    assert snapshot(engine) != expected
    ingest(engine, source(sb, per_page=20))
    assert snapshot(engine) == expected


def test_unreadable_watermark_is_a_permanent_error(sb):
    with pytest.raises(PermanentConnectorError, match="watermark"):
        next(source(sb).pull("not json"))


def test_build_source_names_missing_variables(sb):
    settings = Settings(_env_file=None, zendesk_base_url=sb.url, zendesk_email=None)
    assert not is_configured(settings)
    with pytest.raises(PermanentConnectorError, match="ZENDESK_EMAIL, ZENDESK_API_TOKEN"):
        build_source(settings)
    ok = Settings(
        _env_file=None, zendesk_base_url=sb.url, zendesk_email=sb.email, zendesk_api_token=sb.token
    )
    assert is_configured(ok)
    batches = list(build_source(ok).pull(None))
    assert sum(b.fetched for b in batches) == len(sb.tickets)
