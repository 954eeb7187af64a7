"""Contract tests: score writes through Bulk API 2.0 (the real simple-salesforce `bulk2`) against
the Salesforce fake's jobs/ingest endpoints, and the fake's job lifecycle and error bodies."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceResourceNotFound,
)

from connectors.base import AuthConnectorError, PermanentConnectorError
from connectors.salesforce.client import RetryingSession, SalesforceClient
from connectors.salesforce.sink import SalesforceScoreSink
from connectors.salesforce.source import SalesforceSource, load_mapping
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.salesforce_api import TOKEN, start_salesforce_sandbox
from connectors.sandbox.salesforce_bulk import bulk_jobs
from connectors.sandbox.server import Fault
from health.ingest import ingest
from health.records import ScoreWrite

PORTFOLIO = generate_portfolio(2500, 14, seed=23)
IDS = [a.external_id for a in PORTFOLIO.accounts]
AT = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
UNKNOWN = ["001ZZ0000000000AAA", "001ZZ0000000001AAA"]
INGEST = "/jobs/ingest"


@pytest.fixture
def sandbox():
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        yield sb


def make_client(sb, sleeps: list | None = None) -> SalesforceClient:
    session = RetryingSession(
        timeout=5.0, sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )
    return SalesforceClient(sb.url, TOKEN, ca_bundle=sb.ca_path, session=session)


def make_sink(sb, **kw) -> SalesforceScoreSink:
    return SalesforceScoreSink(make_client(sb), bulk_wait=0, **kw)


def score_rows(ids: list[str]) -> list[ScoreWrite]:
    return [
        ScoreWrite(rid, k % 100, "monitor" if k % 2 else "healthy", -1.5, f'usage, "down" {k}', AT)
        for k, rid in enumerate(ids)
    ]


def _raw(sb) -> Salesforce:
    session = RetryingSession()
    session.ca_bundle = sb.ca_path
    return Salesforce(instance_url=sb.url, session_id=sb.token, session=session, version="59.0")


def job_polls(sb) -> int:
    return sum(
        1
        for r in sb.server.requests
        if r.method == "GET" and r.path.rsplit("/", 1)[-1].startswith("750")
    )


def test_a_2500_row_score_write_goes_through_one_bulk_job(sandbox):
    deleted = IDS[5]
    sandbox.delete("Account", deleted)
    before = {rid: sandbox.record("Account", rid)["SystemModstamp"] for rid in IDS[:3]}
    bad = [*UNKNOWN, deleted, "not-an-id"]
    rows_ = score_rows([rid for rid in IDS if rid != deleted][:2496] + bad)
    assert len(rows_) == 2500 and len({r.account_external_id for r in rows_}) == 2500
    sandbox.server.reset_counts()

    result = make_sink(sandbox).write(rows_)

    srv = sandbox.server
    assert srv.count("POST", INGEST) == 1  # one job create
    assert srv.count("PUT", "/batches") == 1  # one upload
    assert srv.count("PATCH", INGEST) == 1  # one close
    assert job_polls(sandbox) == 3  # InProgress, JobComplete, and the client's final GET
    assert srv.count("GET", "/failedResults") == 1
    assert srv.count("GET", "/successfulResults") == 0  # every row processed: not needed
    assert srv.count(None, "/composite") == 0
    assert len(srv.requests) == 7
    assert sorted(result.errors) == sorted(bad)
    assert result.errors[UNKNOWN[0]].code == "INVALID_CROSS_REFERENCE_KEY"
    assert result.errors[deleted].code == "ENTITY_IS_DELETED"
    assert result.errors["not-an-id"].code == "MALFORMED_ID"
    assert not any(e.transient for e in result.errors.values())
    assert len(result.ok) == 2496 and deleted not in result.ok
    for k, row in enumerate(rows_[:3]):
        rec = sandbox.record("Account", row.account_external_id)
        assert rec["Health_Score__c"] == float(k) and rec["Health_Trend_30d__c"] == -1.5
        assert rec["Health_Drivers__c"] == f'usage, "down" {k}'
        assert rec["Health_Updated_At__c"] == "2026-11-02T06:00:00.000+0000"
        assert rec["SystemModstamp"] > before[row.account_external_id]
    assert sandbox.record("Account", deleted).get("Health_Score__c") is None


def test_up_to_the_threshold_writes_use_collections(sandbox):
    sink = make_sink(sandbox)
    result = sink.write(score_rows(IDS[:2000]))
    assert sandbox.server.count("PATCH", "/composite/sobjects") == 10
    assert sandbox.server.count(None, INGEST) == 0
    assert len(result.ok) == 2000
    sandbox.server.reset_counts()
    result = make_sink(sandbox, bulk_threshold=100).write(score_rows(IDS[:101]))
    assert sandbox.server.count("POST", INGEST) == 1 and len(result.ok) == 101
    assert sandbox.server.count(None, "/composite") == 0


def test_null_trend_clears_the_field_in_bulk(sandbox):
    sandbox.modify("Account", IDS[0], Health_Trend_30d__c=9.0, Health_Drivers__c="old")
    row = ScoreWrite(IDS[0], 40, "critical", None, "", AT)
    result = make_sink(sandbox, bulk_threshold=0).write([row])
    assert result.ok == [IDS[0]] and not result.errors
    rec = sandbox.record("Account", IDS[0])
    assert (rec["Health_Score__c"], rec["Health_Tier__c"]) == (40.0, "critical")
    assert rec["Health_Trend_30d__c"] is None and rec["Health_Drivers__c"] is None


def test_a_sync_after_the_bulk_write_reads_the_updated_accounts(engine, sandbox):
    source = SalesforceSource(make_client(sandbox), load_mapping(None))
    ingest(engine, source)
    result = make_sink(sandbox).write(score_rows(IDS[:2100] + UNKNOWN))
    assert len(result.ok) == 2100
    newest = max(sandbox.record("Account", rid)["SystemModstamp"] for rid in IDS[:2100])
    sandbox.server.reset_counts()

    report = ingest(engine, source)

    assert report.fetched == 2100  # exactly the accounts the job updated, nothing else
    # 2,100 Accounts + their 2,100 Contract child rows: 3 pages of 2,000 rows, 1 per other stream
    assert sandbox.server.count("GET", "/query") == 3 + 6
    with engine.connect() as conn:
        from sqlalchemy import text

        (wm,) = conn.execute(
            text("SELECT watermark FROM syncstate WHERE source = 'salesforce'")
        ).one()
    position = json.loads(wm)["Account"]
    assert position[0] == newest.replace("+0000", "Z")


def test_upload_5xx_is_retried_and_expired_token_is_an_auth_error(sandbox):
    sleeps: list[float] = []
    sandbox.server.inject(Fault("server_error", path_contains="/jobs/ingest/750", times=1))
    sink = SalesforceScoreSink(make_client(sandbox, sleeps), bulk_wait=0, bulk_threshold=0)
    assert len(sink.write(score_rows(IDS[:50])).ok) == 50
    # the fault hit the upload (the first request under the job), which was retried once
    assert len(sleeps) == 1 and sandbox.server.count("PUT", "/batches") == 2
    assert sandbox.server.count("POST", INGEST) == 1
    sandbox.expire_token()
    with pytest.raises(AuthConnectorError, match="SALESFORCE_ACCESS_TOKEN"):
        sink.write(score_rows(IDS[:50]))


def test_fake_job_lifecycle_results_and_error_bodies(sandbox):
    sf = _raw(sandbox)
    bulk = sf.bulk2.Account._client
    bulk_jobs(sandbox).in_progress_polls = 2
    job = bulk.create_job("update")
    assert (job["state"], job["object"], job["contentType"]) == ("Open", "Account", "CSV")
    assert job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    with pytest.raises(SalesforceMalformedRequest) as err:
        bulk.get_ingest_results(job["id"], "failedResults")
    assert err.value.content[0]["errorCode"] == "INVALIDJOBSTATE"
    data = (
        "Id,Health_Score__c,ARR__c,Health_Updated_At__c\n"
        f"{IDS[0]},12.5,,2026-11-02T06:00:00Z\n"
        f"{IDS[1]},abc,1,\n"
        f"{IDS[2]},#N/A,,\n"
    )
    arr = sandbox.record("Account", IDS[0])["ARR__c"]
    bulk.upload_job_data(job["id"], data)
    with pytest.raises(SalesforceMalformedRequest) as err:
        bulk.upload_job_data(job["id"], data)  # one upload per job
    assert err.value.content[0]["errorCode"] == "INVALIDJOBSTATE"
    assert bulk.close_job(job["id"])["state"] == "UploadComplete"
    states = [bulk.get_job(job["id"], False)["state"] for _ in range(4)]
    assert states == ["InProgress", "InProgress", "JobComplete", "JobComplete"]
    info = bulk.get_job(job["id"], False)
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 1)
    ok = list(csv.DictReader(io.StringIO(bulk.get_ingest_results(job["id"], "successfulResults"))))
    assert [(r["sf__Id"], r["sf__Created"]) for r in ok] == [(IDS[0], "false"), (IDS[2], "false")]
    assert ok[0]["Health_Score__c"] == "12.5"
    failed = list(csv.DictReader(io.StringIO(bulk.get_ingest_results(job["id"], "failedResults"))))
    assert [r["Id"] for r in failed] == [IDS[1]]
    assert failed[0]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:Health_Score__c")
    rec = sandbox.record("Account", IDS[0])
    assert (rec["Health_Score__c"], rec["ARR__c"]) == (12.5, arr)  # empty value: unchanged
    assert sandbox.record("Account", IDS[2])["Health_Score__c"] is None
    assert sandbox.record("Account", IDS[1])["ARR__c"] != 1.0
    with pytest.raises(SalesforceMalformedRequest) as err:
        bulk.abort_job(job["id"], False)
    assert err.value.content[0]["errorCode"] == "INVALIDJOBSTATE"
    url = f"{bulk.bulk2_url}ingest/{job['id']}"
    assert sf.session.delete(url, headers=bulk.headers).status_code == 204
    with pytest.raises(SalesforceResourceNotFound) as err:
        bulk.get_job(job["id"], False)
    assert err.value.content[0]["errorCode"] == "NOT_FOUND"

    # an aborted job keeps its rows as unprocessed and changes nothing
    job = bulk.create_job("update")
    bulk.upload_job_data(job["id"], f"Id,Health_Score__c\n{IDS[3]},77\n")
    assert bulk.abort_job(job["id"], False)["state"] == "Aborted"
    unprocessed = bulk.get_ingest_results(job["id"], "unprocessedrecords")
    assert unprocessed.splitlines() == ['"Id","Health_Score__c"', f'"{IDS[3]}","77"']
    assert sandbox.record("Account", IDS[3]).get("Health_Score__c") != 77.0

    # bad job requests: Salesforce's error bodies
    for payload, code in [
        ({"object": "Nope", "operation": "update"}, "INVALIDJOB"),
        ({"object": "Account", "operation": "merge"}, "JSON_PARSER_ERROR"),
        ({"object": "Account", "operation": "upsert"}, "INVALIDJOB"),
        ({"object": "Account", "operation": "upsert", "externalIdFieldName": "X"}, "INVALIDJOB"),
    ]:
        resp = sf.session.post(f"{bulk.bulk2_url}ingest", json=payload, headers=bulk.headers)
        assert resp.status_code == 400 and resp.json()[0]["errorCode"] == code


def test_fake_insert_upsert_and_a_failed_job(sandbox):
    sandbox_jobs = bulk_jobs(sandbox)
    sandbox_jobs.in_progress_polls = 0
    sf = _raw(sandbox)
    out = sf.bulk2.Account.insert(records=[{"Name": "New Co", "ARR__c": "1000"}], wait=0)
    assert out[0]["numberRecordsProcessed"] == 1 and out[0]["numberRecordsFailed"] == 0
    ok = list(
        csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(out[0]["job_id"])))
    )
    new_id = ok[0]["sf__Id"]
    assert ok[0]["sf__Created"] == "true"
    assert sandbox.record("Account", new_id)["ARR__c"] == 1000.0
    out = sf.bulk2.Account.upsert(
        records=[{"Name": "New Co", "ARR__c": "2000"}, {"Name": "Other Co", "ARR__c": "5"}],
        external_id_field="Name",
        wait=0,
    )
    ok = list(
        csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(out[0]["job_id"])))
    )
    assert [(r["sf__Id"] == new_id, r["sf__Created"]) for r in ok] == [
        (True, "false"),
        (False, "true"),
    ]
    assert sandbox.record("Account", new_id)["ARR__c"] == 2000.0
    # an unknown column fails the whole job: simple-salesforce raises, the client maps it
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        sf.bulk2.Account.update(records=[{"Id": IDS[0], "Nope__c": "1"}], wait=0)
    client = make_client(sandbox)
    with pytest.raises(PermanentConnectorError, match="Nope__c"):
        client.bulk2_update("Account", [{"Id": IDS[0], "Nope__c": "1"}], wait=0)
