"""One customer, one account, on SQLite and PostgreSQL: records linked by cross-reference and
by domain, ambiguity left for a person, manual links that survive a re-sync, merge then
unlink returning the original data, and linking costs that grow with batches, not records."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import event, select, text

from health.accounts import link_accounts, unlink_record
from health.db import session_scope
from health.identity import LinkError, to_review
from health.models import Account, CrmRecord
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord, OutcomeRecord
from health.repo import store_batch

NOW = datetime(2026, 11, 2, 6, tzinfo=UTC)


def sf(ext: str, name: str, domain: str | None, **kw) -> AccountRecord:
    return AccountRecord("salesforce", ext, name, domain, **kw)


def hs(ext: str, name: str, domain: str | None, **kw) -> AccountRecord:
    return AccountRecord("hubspot", ext, name, domain, **kw)


def obs(ref: AccountRef, signal: str, value: float, source: str) -> ObservationRecord:
    return ObservationRecord(ref, signal, NOW, value, source)


def store(engine, source: str, **batch) -> None:
    with session_scope(engine) as s:
        store_batch(session=s, source=source, batch=Batch(**batch), now=NOW)


def accounts(engine) -> dict[tuple[str, ...], tuple]:
    """Live accounts keyed by their records' ids: (name, domain, owner, renewal_date)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(
                Account.id, Account.name, Account.domain, Account.owner, Account.renewal_date
            ).where(Account.merged_into.is_(None))
        ).all()
        recs = s.execute(select(CrmRecord.account_id, CrmRecord.external_id)).all()
    ids: dict[int, list[str]] = {}
    for acc, ext in recs:
        ids.setdefault(acc, []).append(ext)
    return {tuple(sorted(ids[a])): tuple(rest) for a, *rest in rows if a in ids}


def test_a_cross_reference_and_a_shared_domain_each_make_one_account(engine):
    store(engine, "salesforce", accounts=[
        sf("001A", "Acme Corp", "acme.com", renewal_date=date(2027, 3, 1)),
        sf("001B", "Beta Ltd", "beta.io"),
    ])  # fmt: skip
    store(engine, "hubspot", accounts=[
        hs("9001", "ACME", "acme-europe.com", cross_ref="001A", owner="kim@x.test"),
        hs("9002", "Beta", "https://www.Beta.io/", owner="lee@x.test"),
        hs("9003", "Gamma", "gamma.dev"),
    ])  # fmt: skip
    assert accounts(engine) == {
        ("001A", "9001"): ("Acme Corp", "acme.com", "kim@x.test", date(2027, 3, 1)),
        ("001B", "9002"): ("Beta Ltd", "beta.io", "lee@x.test", None),  # HubSpot fills gaps
        ("9003",): ("Gamma", "gamma.dev", None, None),
    }
    with session_scope(engine) as s:
        how = dict(s.execute(select(CrmRecord.external_id, CrmRecord.linked_by)).all())
    assert how == {"001A": "new", "001B": "new", "9001": "cross_ref", "9002": "domain",
                   "9003": "new"}  # fmt: skip
    # signals from either record, and help-desk rows by domain, land on the one account
    store(engine, "zendesk", observations=[
        obs(AccountRef(crm_id="9001"), "csm_touch", 1, "hubspot"),
        obs(AccountRef(domain="acme.com"), "open_tickets", 3, "zendesk"),
        obs(AccountRef(domain="acme-europe.com"), "csat", 90, "zendesk"),
    ])  # fmt: skip
    with session_scope(engine) as s:
        owners = set(s.execute(text("SELECT DISTINCT account_id FROM observation")).scalars())
    assert len(owners) == 1


def test_the_hubspot_record_first_and_salesforce_naming_it_later_still_link(engine):
    store(engine, "hubspot", accounts=[hs("9001", "ACME", None, cross_ref="001A")])
    store(engine, "salesforce", accounts=[sf("001A", "Acme Corp", None)])
    assert list(accounts(engine)) == [("001A", "9001")]
    assert accounts(engine)[("001A", "9001")][0] == "Acme Corp"  # the primary CRM leads


def test_ambiguous_domains_are_listed_for_review_never_merged(engine):
    store(engine, "salesforce", accounts=[
        sf("001A", "Acme", "acme.com"), sf("001B", "Acme Labs", "acme.com"),
    ])  # fmt: skip
    store(engine, "hubspot", accounts=[hs("9001", "ACME", "acme.com")])
    assert set(accounts(engine)) == {("001A",), ("001B",), ("9001",)}
    with session_scope(engine) as s:
        review = {r.external_id: r.review for r in to_review(session=s)}
    assert review == {  # both duplicates are listed: neither is the obvious one
        "001A": "domain acme.com is claimed by 2 salesforce records (001A, 001B)",
        "001B": "domain acme.com is claimed by 2 salesforce records (001A, 001B)",
        "9001": "domain acme.com matches 2 accounts",
    }
    with session_scope(engine) as s:
        report = store_batch(session=s, source="zendesk", now=NOW, batch=Batch(observations=[
            obs(AccountRef(domain="acme.com"), "open_tickets", 1, "zendesk")]))  # fmt: skip
    assert report.unmatched == {"domain acme.com matches 3 accounts": 1}


def seed_two(engine) -> None:
    store(engine, "salesforce", accounts=[sf("001A", "Acme Corp", "acme.com")],
          observations=[obs(AccountRef(crm_id="001A"), "seats", 40, "salesforce")],
          outcomes=[OutcomeRecord(AccountRef(crm_id="001A"), "renewed", date(2026, 1, 5),
                                  "salesforce")])  # fmt: skip
    store(engine, "hubspot", accounts=[hs("9001", "Acme (EU)", "acme.eu", owner="kim@x.test")],
          observations=[obs(AccountRef(crm_id="9001"), "seats", 12, "hubspot"),
                        obs(AccountRef(crm_id="9001"), "csm_touch", 1, "hubspot")],
          outcomes=[OutcomeRecord(AccountRef(crm_id="9001"), "renewed", date(2026, 1, 5),
                                  "hubspot")])  # fmt: skip


def data(engine) -> dict:
    """Everything a link or unlink moves, by CRM record: which account (by its records)."""
    with session_scope(engine) as s:
        q = "SELECT r.external_id, t.account_id FROM {} t JOIN crmrecord r ON r.id = t.record_id"
        by_table = {
            t: sorted((ext, acc) for ext, acc in s.execute(text(q.format(t))).all())
            for t in ("observation", "outcome")
        }
        names = {a.id: a.name for a in s.execute(select(Account)).scalars()}
    return {"accounts": accounts(engine), **{t: [(e, names[a]) for e, a in v]
                                             for t, v in by_table.items()}}  # fmt: skip


def test_merge_then_unlink_returns_the_original_data(engine):
    seed_two(engine)
    before = data(engine)
    with session_scope(engine) as s:
        keep, absorbed = link_accounts(
            session=s, first="acme.eu", second="Acme Corp", now=NOW, primary="salesforce"
        )
    assert (keep.name, absorbed.name) == ("Acme Corp", "Acme (EU)")  # Salesforce leads
    merged = data(engine)
    assert list(merged["accounts"]) == [("001A", "9001")]
    assert {name for _, name in merged["observation"] + merged["outcome"]} == {"Acme Corp"}
    with session_scope(engine) as s:
        unlink_record(session=s, record="hubspot:9001", now=NOW, primary="salesforce")
    assert data(engine) == before
    with session_scope(engine) as s:
        ids = s.execute(select(Account.id).order_by(Account.id)).scalars().all()
    assert len(ids) == 2  # the absorbed account came back; none was made anew


def test_a_manual_link_survives_a_full_resync_and_bad_requests_say_why(engine):
    seed_two(engine)
    with session_scope(engine) as s:
        link_accounts(session=s, first="Acme Corp", second="9001", now=NOW, primary="salesforce")
    seed_two(engine)  # the same records again, as a full re-sync sends them
    assert list(accounts(engine)) == [("001A", "9001")]
    with session_scope(engine) as s:
        unlink_record(session=s, record="hubspot:9001", now=NOW, primary="salesforce")
    seed_two(engine)
    assert set(accounts(engine)) == {("001A",), ("9001",)}  # and so does an unlink
    with session_scope(engine) as s, pytest.raises(LinkError, match="only record"):
        unlink_record(session=s, record="salesforce:001A", now=NOW, primary="salesforce")
    with session_scope(engine) as s, pytest.raises(LinkError, match="use SOURCE:ID"):
        unlink_record(session=s, record="nope:1", now=NOW, primary="salesforce")
    with session_scope(engine) as s, pytest.raises(LinkError, match="same account"):
        link_accounts(session=s, first="001A", second="acme.com", now=NOW, primary="salesforce")


def test_linking_costs_a_fixed_number_of_statements_per_batch(engine):
    def statements_for(n: int) -> int:
        count = []
        listener = lambda *args: count.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            store(engine, "salesforce", accounts=[
                sf(f"001{n}x{i}", f"S{i}", f"c{n}x{i}.com") for i in range(n)])  # fmt: skip
            store(engine, "hubspot", accounts=[
                hs(f"9{n}x{i}", f"H{i}", f"c{n}x{i}.com" if i % 2 else None,
                   cross_ref=None if i % 2 else f"001{n}x{i}") for i in range(n)])  # fmt: skip
            csv = [AccountRecord("csv", f"c{n}x{i}", f"C{i}", f"c{n}x{i}.com") for i in range(n)]
            store(engine, "csv", accounts=csv)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(count)

    small, large = statements_for(50), statements_for(900)
    assert len(accounts(engine)) == 50 + 900  # every customer in all three: one account each
    assert large <= small + 6  # 18x the records, the same handful of statements


def test_a_duplicate_arriving_later_puts_both_claimants_up_for_review(engine):
    store(engine, "salesforce", accounts=[sf("001A", "Acme", "acme.com")])
    store(engine, "hubspot", accounts=[hs("1", "Acme", "acme.com")])  # linked by domain
    store(engine, "hubspot", accounts=[hs("2", "Acme Inc", "acme.com")])  # a duplicate
    with session_scope(engine) as s:
        review = sorted(r.external_id for r in to_review(session=s))
    assert review == ["1", "2"]
    assert set(accounts(engine)) == {("001A", "1"), ("2",)}  # shown, not undone


def test_late_cross_references_merge_accounts_in_a_fixed_number_of_statements(engine):
    def merged(n: int) -> int:
        store(engine, "salesforce", accounts=[sf(f"001{n}x{i}", "S", None) for i in range(n)])
        store(engine, "hubspot", accounts=[hs(f"9{n}x{i}", "H", None) for i in range(n)])
        count = []
        listener = lambda *args: count.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:  # the CRM integration is switched on: every company now names its account
            store(engine, "hubspot", accounts=[
                hs(f"9{n}x{i}", "H", None, cross_ref=f"001{n}x{i}") for i in range(n)])  # fmt: skip
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(count)

    small, large = merged(20), merged(400)
    assert len(accounts(engine)) == 420  # every pair one account
    assert large <= small + 4
