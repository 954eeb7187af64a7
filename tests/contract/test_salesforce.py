"""Contract tests: the real simple-salesforce client over HTTPS against the Salesforce fake."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import text

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError
from connectors.salesforce.client import RetryingSession, SalesforceClient
from connectors.salesforce.source import SalesforceSource, build_source, load_mapping
from connectors.sandbox.portfolio import account_records, generate_portfolio, outcome_records
from connectors.sandbox.salesforce_api import TOKEN, start_salesforce_sandbox
from connectors.sandbox.server import Fault
from health.ingest import ingest
from health.settings import Settings
from tests.conftest import _empty

PORTFOLIO = generate_portfolio(50, 240, seed=11)  # ~490 cases, ~490 tasks: 3 pages of 200


@pytest.fixture
def sandbox():
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        yield sb


def make_source(sb, *, batch_size=2000, sleeps=None, timeout=5.0, mapping=None) -> SalesforceSource:
    session = RetryingSession(
        timeout=timeout, sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )
    client = SalesforceClient(
        sb.url, TOKEN, ca_bundle=sb.ca_path, session=session, batch_size=batch_size
    )
    return SalesforceSource(client, mapping or load_mapping(None))


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def snapshot(engine) -> dict:
    """Table contents without surrogate ids or bookkeeping timestamps."""
    return {
        "accounts": sorted(
            rows(
                engine,
                "SELECT source, external_id, name, domain, owner, segment, arr, customer_since, "
                "renewal_date, deleted_at IS NOT NULL FROM account",
            )
        ),
        "observations": sorted(
            rows(
                engine,
                "SELECT a.external_id, o.signal, o.observed_at, o.value, o.source "
                "FROM observation o JOIN account a ON a.id = o.account_id",
            )
        ),
        "outcomes": sorted(
            rows(
                engine,
                "SELECT a.external_id, o.kind, o.occurred_on, o.arr_change, o.external_id "
                "FROM outcome o JOIN account a ON a.id = o.account_id",
            )
        ),
        "errors": sorted(set(rows(engine, "SELECT source, record_key, reason FROM syncerror"))),
        "watermark": rows(engine, "SELECT watermark FROM syncstate WHERE source = 'salesforce'"),
    }


def as_dt(value) -> datetime:
    """A datetime read back with raw SQL (SQLite gives text) -> aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def signals(engine) -> Counter:
    return Counter(s for (s,) in rows(engine, "SELECT signal FROM observation"))


def queries(sb) -> int:
    return sb.server.count("GET", "/query")


def test_full_sync_matches_the_portfolio(engine, sandbox):
    source = make_source(sandbox)
    report = ingest(engine, source)

    want = {a.external_id: a for a in account_records(PORTFOLIO)}
    got = rows(
        engine,
        "SELECT external_id, name, domain, owner, segment, arr, customer_since, "
        "renewal_date FROM account",
    )
    assert len(got) == len(want)
    for ext, name, domain, owner, segment, arr, since, renewal in got:
        a = want[ext]
        assert (name, domain, owner, segment, arr) == (a.name, a.domain, a.owner, a.segment, a.arr)
        assert (str(since), str(renewal)) == (str(a.customer_since), str(a.renewal_date))
    outcomes = set(
        rows(
            engine,
            "SELECT a.external_id, o.kind, o.arr_change FROM outcome o "
            "JOIN account a ON a.id = o.account_id",
        )
    )
    assert outcomes == {
        (o.account.crm_id, o.kind, o.arr_change) for o in outcome_records(PORTFOLIO)
    }
    sig = signals(engine)
    urgent = {(t.account_id, t.created_at) for t in PORTFOLIO.tickets if t.priority == "urgent"}
    assert sig["sev1_ticket"] == len(urgent) > 0
    assert sig["csm_touch"] == len({(v.account_id, v.occurred_at) for v in PORTFOLIO.touches})
    assert sig["exec_meeting"] == len(
        {(v.account_id, v.occurred_at) for v in PORTFOLIO.touches if v.executive}
    )
    left = {(c.account_id, c.left_on) for c in PORTFOLIO.contacts if c.is_champion and c.left_on}
    assert sig["champion_left"] == len(left)
    open_now = Counter(t.account_id for t in PORTFOLIO.tickets if t.solved_at is None)
    counts = dict(
        rows(
            engine,
            "SELECT a.external_id, o.value FROM observation o JOIN account a "
            "ON a.id = o.account_id WHERE o.signal = 'open_tickets'",
        )
    )
    with_cases = {t.account_id for t in PORTFOLIO.tickets}
    assert counts == {a: float(open_now.get(a, 0)) for a in with_cases}
    assert report.api_calls == source.api_calls == len(sandbox.server.requests)
    # 7 describes and 6 single-page streams: Contracts come as Account child rows, the open
    # counts from the Case pages; nothing per record
    assert sandbox.server.count("GET", "/describe") == 7
    assert queries(sandbox) == 6
    assert not any(" FROM Contract " in (r.arg("q") or "") for r in sandbox.server.requests)
    assert not any("COUNT(" in (r.arg("q") or "") for r in sandbox.server.requests)
    assert report.stored.errors == 0 and not report.stored.unmatched


def test_incremental_sync_reads_only_what_changed(engine, sandbox):
    source = make_source(sandbox)
    ingest(engine, source)
    acc = PORTFOLIO.accounts[0].external_id
    gone = PORTFOLIO.accounts[1].external_id
    sandbox.modify("Account", acc, ARR__c=123456.0)
    sandbox.delete("Account", gone)
    case = sandbox.add("Case", AccountId=acc, Priority="Critical", IsClosed=False)
    sandbox.server.reset_counts()

    report = ingest(engine, source)

    assert report.fetched == 3 + 1  # the three changes + one aggregate count row
    assert queries(sandbox) == 7 + 1  # one query per stream + one open-ticket count
    assert sandbox.server.count("GET", "/describe") == 0  # checked once per source
    assert rows(engine, f"SELECT arr FROM account WHERE external_id = '{acc}'") == [(123456.0,)]
    assert rows(
        engine, f"SELECT deleted_at IS NOT NULL FROM account WHERE external_id = '{gone}'"
    ) == [(True,)]
    sev1 = rows(
        engine,
        "SELECT o.observed_at FROM observation o JOIN account a ON a.id = "
        f"o.account_id WHERE a.external_id = '{acc}' AND o.signal = 'sev1_ticket'",
    )
    created = datetime.fromisoformat(case["CreatedDate"].replace("+0000", "+00:00"))
    assert created in [as_dt(r[0]) for r in sev1]
    latest = rows(
        engine,
        "SELECT o.value FROM observation o JOIN account a ON a.id = o.account_id "
        f"WHERE a.external_id = '{acc}' AND o.signal = 'open_tickets' "
        "ORDER BY o.observed_at DESC",
    )
    open_now = sum(1 for t in PORTFOLIO.tickets if t.account_id == acc and t.solved_at is None)
    assert latest[0] == (float(open_now + 1),)
    # deleting that case re-counts the account (queryAll sees the deletion)
    sandbox.delete("Case", case["Id"])
    ingest(engine, source)
    latest = rows(
        engine,
        "SELECT o.value FROM observation o JOIN account a ON a.id = o.account_id "
        f"WHERE a.external_id = '{acc}' AND o.signal = 'open_tickets' "
        "ORDER BY o.observed_at DESC",
    )
    assert latest[0] == (float(open_now),)


def test_a_changed_contract_rereads_its_account(engine, sandbox):
    source = make_source(sandbox)
    ingest(engine, source)
    contract = next(c for c in sandbox.db["Contract"].values())
    sandbox.modify("Contract", contract["Id"], EndDate="2030-01-31")
    report = ingest(engine, source)
    assert report.fetched == 2  # the contract, then its account
    renewal = rows(
        engine, f"SELECT renewal_date FROM account WHERE external_id = '{contract['AccountId']}'"
    )
    assert str(renewal[0][0]) == "2030-01-31"


def test_pagination_across_many_pages(engine, sandbox):
    n_cases = len(sandbox.db["Case"])
    n_tasks = len(sandbox.db["Task"])
    assert n_cases > 400 and n_tasks > 400  # several pages of 200 each
    report = ingest(engine, make_source(sandbox, batch_size=200))
    more = sandbox.server.count("GET", "/query/01g") + sandbox.server.count("GET", "/queryAll/01g")
    pages = sum(-(-len(sandbox.db[o]) // 200) for o in ("Case", "Task", "Event"))
    assert more >= pages - 3
    big = snapshot(engine)
    _empty(engine)
    ingest(engine, make_source(sandbox, batch_size=2000))
    assert snapshot(engine)["observations"] == big["observations"]
    assert report.fetched >= n_cases + n_tasks


def _kill_after(source, n: int):
    class Killer:
        name = source.name

        @property
        def api_calls(self):
            return source.api_calls

        def pull(self, since):
            for k, batch in enumerate(source.pull(since)):
                if k == n:
                    raise RuntimeError("killed")
                yield batch

    return Killer()


def test_many_records_sharing_one_timestamp_across_a_page_boundary(engine, sandbox):
    tasks = sorted(sandbox.db["Task"])[:450]
    stamp = datetime(2026, 11, 1, 12, 0, 0, 250000, tzinfo=UTC)
    sandbox.set_timestamp("Task", tasks, stamp)
    source = make_source(sandbox, batch_size=200)
    ingest(engine, source)
    whole = snapshot(engine)
    _empty(engine)
    # kill after each batch in turn around the Task stream; the rerun must converge
    n_batches = sum(1 for _ in make_source(sandbox, batch_size=200).pull(None))
    for cut in (n_batches - 6, n_batches - 5, n_batches - 4):
        _empty(engine)
        with pytest.raises(RuntimeError):
            ingest(engine, _kill_after(make_source(sandbox, batch_size=200), cut))
        ingest(engine, make_source(sandbox, batch_size=200))
        assert snapshot(engine) == whole


def test_a_record_modified_exactly_at_the_saved_watermark(engine, sandbox):
    source = make_source(sandbox)
    ingest(engine, source)
    wm = rows(engine, "SELECT watermark FROM syncstate")[0][0]
    ts, last_id = json.loads(wm)["Task"]
    acc = PORTFOLIO.accounts[2].external_id
    same = ts.replace("Z", "+0000")
    sandbox.add(
        "Task",
        Id="00TZZ0000000001AAA",
        AccountId=acc,
        IsClosed=True,
        CompletedDateTime=same,
        Status="Completed",
    )
    sandbox.set_timestamp(
        "Task", ["00TZZ0000000001AAA"], datetime.fromisoformat(ts.replace("Z", "+00:00"))
    )
    assert last_id < "00TZZ0000000001AAA"
    report = ingest(engine, source)
    assert report.fetched == 1  # the new one; the one at the watermark is not read twice
    touches = rows(
        engine,
        "SELECT o.observed_at FROM observation o JOIN account a ON "
        f"a.id = o.account_id WHERE a.external_id = '{acc}' AND o.signal = 'csm_touch'",
    )
    assert datetime.fromisoformat(ts.replace("Z", "+00:00")) in {as_dt(t) for (t,) in touches}


def test_429_storm_honours_retry_after():
    sleeps: list[float] = []
    with start_salesforce_sandbox(PORTFOLIO, rate_limit_status=429) as sb:
        sb.server.inject(Fault("rate_limit", path_contains="/query", times=3, retry_after=0.07))
        batches = list(make_source(sb, sleeps=sleeps).pull(None))
    assert sleeps == [0.07, 0.07, 0.07]
    assert sum(len(b.accounts) for b in batches) == len(PORTFOLIO.accounts)


def test_daily_limit_is_403_request_limit_exceeded(engine, sandbox):
    sandbox.server.inject(Fault("rate_limit", path_contains="/query", times=1))
    with pytest.raises(TransientConnectorError, match="REQUEST_LIMIT_EXCEEDED"):
        ingest(engine, make_source(sandbox))
    assert rows(engine, "SELECT COUNT(*) FROM account") == [(0,)]
    with (
        start_salesforce_sandbox(PORTFOLIO, api_limit=10) as sb,  # the allocation runs out
        pytest.raises(TransientConnectorError, match="TotalRequests Limit exceeded"),
    ):
        list(make_source(sb).pull(None))


def test_5xx_is_retried_with_backoff_then_gives_up(sandbox):
    sleeps: list[float] = []
    sandbox.server.inject(Fault("server_error", path_contains="/query", times=2))
    batches = list(make_source(sandbox, sleeps=sleeps).pull(None))
    assert len(sleeps) == 2 and all(0 < s <= 1.0 for s in sleeps)
    assert sum(len(b.accounts) for b in batches) == len(PORTFOLIO.accounts)
    sandbox.server.inject(Fault("server_error", path_contains="/describe", times=50))
    with pytest.raises(TransientConnectorError, match="UNKNOWN_EXCEPTION"):
        list(make_source(sandbox).pull(None))


def test_timeouts_are_retried(sandbox):
    sleeps: list[float] = []
    sandbox.server.inject(Fault("slow", path_contains="/query", times=1, delay=1.0))
    batches = list(make_source(sandbox, sleeps=sleeps, timeout=0.5).pull(None))
    assert len(sleeps) == 1
    assert sum(len(b.accounts) for b in batches) == len(PORTFOLIO.accounts)
    sandbox.server.inject(Fault("slow", path_contains="/describe", times=5, delay=0.8))
    with pytest.raises(TransientConnectorError, match="did not answer"):
        list(make_source(sandbox, timeout=0.5).pull(None))


def test_expired_token_names_the_variable_and_keeps_committed_batches(engine, sandbox):
    source = make_source(sandbox, batch_size=200)
    sandbox.server.inject(Fault("expired_token", path_contains="/query/01g", times=1))
    with pytest.raises(AuthConnectorError, match="SALESFORCE_ACCESS_TOKEN"):
        ingest(engine, source)
    committed = rows(engine, "SELECT watermark FROM syncstate")
    assert committed  # the batches before the failure are stored with their watermark
    sandbox.expire_token()
    with pytest.raises(AuthConnectorError, match="INVALID_SESSION_ID"):
        list(make_source(sandbox).pull(None))


def test_malformed_records_are_skipped_with_a_reason(engine, sandbox):
    acc = PORTFOLIO.accounts[0].external_id
    sandbox.add("Case", AccountId=acc, CreatedDate="31/12/2026", IsClosed=False)
    sandbox.server.inject(Fault("malformed", path_contains="/queryAll", times=1))  # Accounts
    report = ingest(engine, make_source(sandbox))
    reasons = sorted(r for (r,) in rows(engine, "SELECT reason FROM syncerror"))
    assert reasons == ["CreatedDate is not a datetime: '31/12/2026'", "missing Id"]
    # the Account page lost its first record's Id: that account alone is missing (a first sync
    # sends no Contract query that would re-read it), and what refers to it is counted unmatched
    lost = min(sandbox.db["Account"].values(), key=lambda r: (r["SystemModstamp"], r["Id"]))["Id"]
    accounts = {a for (a,) in rows(engine, "SELECT external_id FROM account")}
    assert accounts == {a.external_id for a in PORTFOLIO.accounts} - {lost}
    assert set(report.stored.unmatched) == {lost}
    assert report.skipped == Counter(
        {"missing Id": 1, "CreatedDate is not a datetime: '31/12/2026'": 1}
    )


def test_unmatched_accounts_are_counted(engine, sandbox):
    for _ in range(2):
        sandbox.add("Case", AccountId="001ZZ0000000000AAA", Priority="Critical", IsClosed=False)
    report = ingest(engine, make_source(sandbox))
    assert report.stored.unmatched == {"001ZZ0000000000AAA": 3}  # 2 sev1 + 1 open_tickets


@pytest.mark.parametrize("how", ["exception", "fault"])
def test_killed_run_then_rerun_equals_an_uninterrupted_run(engine, sandbox, how):
    sandbox.modify("Account", PORTFOLIO.accounts[3].external_id, Name="Renamed Co")
    ingest(engine, make_source(sandbox, batch_size=200))
    whole = snapshot(engine)
    _empty(engine)
    if how == "exception":
        with pytest.raises(RuntimeError):
            ingest(engine, _kill_after(make_source(sandbox, batch_size=200), 5))
    else:  # a Case page fails for good half-way through the Case stream
        sandbox.server.inject(Fault("server_error", path_contains="/queryAll/01g", times=50))
        with pytest.raises(TransientConnectorError):
            ingest(engine, make_source(sandbox, batch_size=200))
        sandbox.server.faults.clear()
    assert snapshot(engine) != whole
    ingest(engine, make_source(sandbox, batch_size=200))
    assert snapshot(engine) == whole


def test_unknown_mapped_field_is_reported_before_any_query(sandbox, tmp_path):
    custom = tmp_path / "mapping.yaml"
    default = load_mapping(None).path
    text_ = Path(default).read_text()
    custom.write_text(text_.replace("arr: [ARR__c", "arr: [Annual_Recurring__c"))
    source = make_source(sandbox, mapping=load_mapping(custom))
    with pytest.raises(PermanentConnectorError) as err:
        list(source.pull(None))
    assert "Account.Annual_Recurring__c" in str(err.value) and str(custom) in str(err.value)
    assert queries(sandbox) == 0


def test_build_source_from_settings(sandbox, monkeypatch):
    settings = Settings(
        _env_file=None,
        salesforce_instance_url=sandbox.url,
        salesforce_access_token=TOKEN,
        requests_ca_bundle=sandbox.ca_path,
    )
    source = build_source(settings)
    assert sum(len(b.accounts) for b in source.pull(None)) == len(PORTFOLIO.accounts)
    with pytest.raises(PermanentConnectorError, match="SALESFORCE_INSTANCE_URL"):
        build_source(Settings(_env_file=None, salesforce_instance_url=None))
    with pytest.raises(PermanentConnectorError, match="SALESFORCE_ACCESS_TOKEN"):
        build_source(Settings(_env_file=None, salesforce_instance_url=sandbox.url))


def _raw(sb) -> Salesforce:
    session = RetryingSession()
    session.ca_bundle = sb.ca_path
    return Salesforce(instance_url=sb.url, session_id=sb.token, session=session, version="59.0")


def test_fake_query_shape_paging_and_limits_header(sandbox):
    sf = _raw(sandbox)
    page = sf.query(
        "SELECT Id, Name, Owner.Email FROM Account ORDER BY Id",
        headers={"Sforce-Query-Options": "batchSize=10"},
    )
    n = len(PORTFOLIO.accounts)
    assert page["totalSize"] == n and page["done"] is True and len(page["records"]) == n  # min 200
    case = sf.query(
        "SELECT Id FROM Case ORDER BY Id", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert case["done"] is False and len(case["records"]) == 200
    assert case["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert case["nextRecordsUrl"].endswith("-200")
    rec = page["records"][0]
    assert rec["attributes"]["type"] == "Account" and "@" in rec["Owner"]["Email"]
    assert len(list(sf.query_all_iter("SELECT Id FROM Case"))) == len(sandbox.db["Case"])
    assert sf.api_usage["api-usage"].used == len(sandbox.server.requests)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM Account WHERE Name LIKE 'A%'")
    assert err.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id, Bogus__c FROM Account")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_fake_collections_update_and_composite(sandbox):
    sf = _raw(sandbox)
    a, b = PORTFOLIO.accounts[0].external_id, PORTFOLIO.accounts[1].external_id
    records = [
        {
            "attributes": {"type": "Account"},
            "id": a,
            "Health_Score__c": 71.5,
            "Health_Tier__c": "monitor",
        },
        {"attributes": {"type": "Account"}, "id": "001ZZ0000000000AAA", "Health_Score__c": 10},
        {"attributes": {"type": "Account"}, "id": b, "Nope__c": 1},
    ]
    result = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in result] == [True, False, False]
    assert result[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert result[2]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert sandbox.record("Account", a)["Health_Score__c"] == 71.5
    too_many = [{"attributes": {"type": "Account"}, "id": a, "Health_Score__c": 1}] * 201
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="PATCH", json={"records": too_many})
    calls = len(sandbox.server.requests)
    out = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": "/services/data/v59.0/composite/sobjects",
                    "referenceId": "w1",
                    "body": {
                        "records": [
                            {"attributes": {"type": "Account"}, "id": b, "Health_Score__c": 42}
                        ]
                    },
                },
                {
                    "method": "GET",
                    "url": f"/services/data/v59.0/sobjects/Account/{b}",
                    "referenceId": "r1",
                },
            ]
        },
    )
    assert [r["httpStatusCode"] for r in out["compositeResponse"]] == [200, 200]
    assert out["compositeResponse"][1]["body"]["Health_Score__c"] == 42
    assert len(sandbox.server.requests) == calls + 1  # one API request for the lot


def test_score_sink_writes_in_batches_of_200(sandbox):
    from connectors.salesforce.sink import SalesforceScoreSink
    from health.records import ScoreWrite

    at = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    ids = [a.external_id for a in PORTFOLIO.accounts]
    rows_ = [
        ScoreWrite(ids[k % len(ids)], 50 + k % 40, "monitor", -3.5, "usage down", at)
        for k in range(399)
    ] + [ScoreWrite("001ZZ0000000000AAA", 10, "critical", None, "", at)]
    sink = SalesforceScoreSink(make_source(sandbox).client)
    result = sink.write(rows_)
    assert sandbox.server.count("PATCH", "/composite/sobjects") == 2
    assert list(result.errors) == ["001ZZ0000000000AAA"]
    assert result.errors["001ZZ0000000000AAA"].code == "INVALID_CROSS_REFERENCE_KEY"
    assert len(result.ok) == 399
    last = rows_[398]
    rec = sandbox.record("Account", last.account_external_id)
    assert (rec["Health_Score__c"], rec["Health_Tier__c"], rec["Health_Trend_30d__c"]) == (
        last.score,
        "monitor",
        -3.5,
    )
    assert rec["Health_Updated_At__c"] == "2026-11-02T06:00:00.000+0000"
