"""Contract tests of the Salesforce request plan: each record read once, counts without COUNTs
on a first sync, child rows filling pages, and the saved-second re-read incremental runs need."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest

from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from connectors.sandbox.salesforce_seed import seed
from health.ingest import ingest
from tests.conftest import _empty
from tests.contract.test_salesforce import _kill_after, _raw, make_source, rows, snapshot

PORTFOLIO = generate_portfolio(50, 240, seed=11)


@pytest.fixture
def sandbox():
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        yield sb


def soql_sent(sb) -> list[str]:
    return [r.arg("q") for r in sb.server.requests if r.arg("q")]


def open_tickets(engine) -> dict[str, float]:
    """The newest open_tickets value per account."""
    out = {}
    for acc, value in rows(
        engine,
        "SELECT a.external_id, o.value FROM observation o JOIN account a ON a.id = o.account_id "
        "WHERE o.signal = 'open_tickets' ORDER BY o.observed_at",
    ):
        out[acc] = value
    return out


def test_first_sync_tallies_open_counts_from_the_case_pages(engine, sandbox):
    a, b = PORTFOLIO.accounts[0].external_id, PORTFOLIO.accounts[1].external_id
    sandbox.delete("Case", sandbox.add("Case", AccountId=a, IsClosed=False)["Id"])  # not counted
    sandbox.add("Case", AccountId=a, IsClosed=True)
    sandbox.add("Case", AccountId=b, IsClosed=False)
    ingest(engine, make_source(sandbox, batch_size=200))  # several Case pages
    assert not any("COUNT(" in q for q in soql_sent(sandbox))
    # the same numbers Salesforce's aggregate gives
    counted = {
        r["AccountId"]: float(r["c"])
        for r in _raw(sandbox).query_all_iter(
            "SELECT AccountId, COUNT(Id) c FROM Case WHERE IsClosed = false GROUP BY AccountId"
        )
    }
    with_cases = {r["AccountId"] for r in sandbox.db["Case"].values()}
    assert open_tickets(engine) == {acc: counted.get(acc, 0.0) for acc in with_cases}


def test_incremental_sync_counts_open_cases_with_one_aggregate_query(engine, sandbox):
    source = make_source(sandbox)
    ingest(engine, source)
    acc = PORTFOLIO.accounts[4].external_id
    sandbox.add("Case", AccountId=acc, IsClosed=False)
    sandbox.server.reset_counts()
    ingest(engine, source)
    assert sum("COUNT(" in q for q in soql_sent(sandbox)) == 1
    open_now = sum(1 for t in PORTFOLIO.tickets if t.account_id == acc and t.solved_at is None)
    assert open_tickets(engine)[acc] == float(open_now + 1)


def test_first_sync_reads_contracts_once_as_account_child_rows(engine, sandbox):
    ingest(engine, make_source(sandbox))
    sent = soql_sent(sandbox)
    assert [q for q in sent if q.split(" FROM ")[-1].startswith("Contract ")] == []
    assert sum(" FROM Contracts)" in q for q in sent) == 1  # the Account query carries them
    wm = json.loads(rows(engine, "SELECT watermark FROM syncstate")[0][0])
    newest = max(sandbox.db["Contract"].values(), key=lambda r: (r["SystemModstamp"], r["Id"]))
    assert wm["Contract"] == [newest["SystemModstamp"].replace("+0000", "Z"), newest["Id"]]
    # the next run asks for changed Contracts only: none
    sandbox.server.reset_counts()
    report = ingest(engine, make_source(sandbox))
    assert report.fetched == 0
    assert sum(q.split(" FROM ")[-1].startswith("Contract ") for q in soql_sent(sandbox)) == 1


def test_a_run_killed_between_account_pages_then_rerun_equals_an_uninterrupted_one(engine, sandbox):
    for k, a in enumerate(PORTFOLIO.accounts[:40]):  # 40 x 6 more Contracts: 3 Account pages
        for j in range(6):
            sandbox.add(
                "Contract",
                AccountId=a.external_id,
                StartDate="2020-01-01",
                EndDate=f"{2027 + (k + j) % 3}-06-30",
                Status="Activated",
            )
    ingest(engine, make_source(sandbox, batch_size=200))
    whole = snapshot(engine)
    assert sandbox.server.count("GET", "/queryAll/01g") >= 2  # Account pages beyond the first
    for cut in (1, 2):
        _empty(engine)
        with pytest.raises(RuntimeError):
            ingest(engine, _kill_after(make_source(sandbox, batch_size=200), cut))
        ingest(engine, make_source(sandbox, batch_size=200))
        assert snapshot(engine) == whole


def test_fake_counts_child_rows_toward_the_batch(sandbox):
    heavy = PORTFOLIO.accounts[0].external_id
    for _ in range(160):
        sandbox.add("Contract", AccountId=heavy, Status="Activated")
    sf = _raw(sandbox)
    soql = "SELECT Id, (SELECT Id FROM Contracts) FROM Account ORDER BY Id"
    page = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    weight = sum(1 + len((r["Contracts"] or {"records": []})["records"]) for r in page["records"])
    assert page["done"] is False and weight <= 200 < weight + 50
    assert len(list(sf.query_all_iter(soql))) == len(PORTFOLIO.accounts)
    single = sf.query(soql.replace("ORDER BY Id", f"WHERE Id = '{heavy}'"))
    assert len(single["records"]) == 1  # a parent heavier than a page still comes whole


def test_a_later_millisecond_of_the_saved_second_with_a_smaller_id_is_read(engine, sandbox):
    """Why the saved second is re-read: Salesforce sorts by the millisecond but compares to the
    second, so `> (ts, id)` would skip this record."""
    source = make_source(sandbox)
    ingest(engine, source)
    ts, last_id = json.loads(rows(engine, "SELECT watermark FROM syncstate")[0][0])["Task"]
    saved = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    later = saved.replace(microsecond=999_000)
    assert later > saved  # the seeded stamps are on whole seconds
    acc = PORTFOLIO.accounts[5].external_id
    rid = "00T" + "0" * 15
    assert rid < last_id
    sandbox.add(
        "Task",
        Id=rid,
        AccountId=acc,
        IsClosed=True,
        Status="Completed",
        CompletedDateTime=later.strftime("%Y-%m-%dT%H:%M:%S.999+0000"),
    )
    sandbox.set_timestamp("Task", [rid], later)
    report = ingest(engine, source)
    assert report.fetched == 1


def test_seeded_modstamps_are_spread_like_a_real_org():
    db = seed(generate_portfolio(2000, 90, seed=3))
    for obj in ("Account", "Contract", "Opportunity", "Contact"):
        per_second = Counter(r["SystemModstamp"][:19] for r in db[obj].values())
        assert max(per_second.values()) <= 10, obj
    for r in db["Opportunity"].values():
        assert r["CreatedDate"] <= r["SystemModstamp"]


def test_changed_accounts_child_rows_do_not_hide_other_changed_contracts(engine, sandbox):
    source = make_source(sandbox)
    ingest(engine, source)
    contracts = {r["AccountId"]: r["Id"] for r in sandbox.db["Contract"].values()}
    x, y = PORTFOLIO.accounts[6].external_id, PORTFOLIO.accounts[7].external_id
    sandbox.modify("Contract", contracts[x], EndDate="2031-03-31")
    sandbox.modify("Contract", contracts[y], EndDate="2032-03-31")  # newer than x's change
    sandbox.modify("Account", y, ARR__c=1.0)  # read with y's Contract as a child row
    ingest(engine, source)
    renewals = dict(
        rows(
            engine,
            f"SELECT external_id, renewal_date FROM account WHERE external_id IN ('{x}', '{y}')",
        )
    )
    assert {k: str(v) for k, v in renewals.items()} == {x: "2031-03-31", y: "2032-03-31"}
