"""Write scores onto Salesforce Accounts.

Up to `bulk_threshold` rows (Salesforce's guidance: 2,000): sObject Collections updates of up
to 200 records, each row's SaveResult deciding ok / error. Bigger writes go through Bulk API 2.0
(`sf.bulk2.Account.update`): create job, PUT CSV, UploadComplete, status polls, then
`failedResults` (only when the job reports failures) and `successfulResults` (only when some rows
were left unprocessed); rows of a fully processed job that did not fail are ok.

Fields: Health_Score__c, Health_Tier__c, Health_Trend_30d__c, Health_Drivers__c (<= 255 chars
here, a Text Area field), Health_Updated_At__c. A failed call (rate limit, 5xx after retries, a
failed bulk job) raises, so the outbox keeps its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import ClassVar

from connectors.salesforce.client import SalesforceClient
from health.records import ScoreWrite, WriteResult

BULK_THRESHOLD = 2000  # more rows than this -> Bulk API 2.0
NULL = "#N/A"  # Bulk CSV: an empty value leaves the field alone, #N/A clears it


def score_fields(row: ScoreWrite) -> dict:
    return {
        "attributes": {"type": "Account"},
        "id": row.account_external_id,
        "Health_Score__c": row.score,
        "Health_Tier__c": row.tier,
        "Health_Trend_30d__c": row.trend_30d,
        "Health_Drivers__c": row.drivers[:255],
        "Health_Updated_At__c": row.updated_at.isoformat(),
    }


def bulk_row(row: ScoreWrite) -> dict[str, str]:
    """The Bulk API 2.0 CSV row (strings; #N/A for null) for one score."""
    at = row.updated_at.astimezone(UTC)
    return {
        "Id": row.account_external_id,
        "Health_Score__c": str(row.score),
        "Health_Tier__c": row.tier or NULL,
        "Health_Trend_30d__c": NULL if row.trend_30d is None else repr(float(row.trend_30d)),
        "Health_Drivers__c": row.drivers[:255] or NULL,
        "Health_Updated_At__c": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
    }


class SalesforceScoreSink:
    name: ClassVar[str] = "salesforce"
    max_batch: ClassVar[int] = 200  # sObject Collections limit

    def __init__(
        self,
        client: SalesforceClient,
        *,
        bulk_threshold: int = BULK_THRESHOLD,
        bulk_wait: float = 2.0,
    ):
        self.client = client
        self.bulk_threshold = bulk_threshold
        self.bulk_wait = bulk_wait  # seconds before the first job status poll, and between

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        if len(rows) > self.bulk_threshold:
            return self.write_bulk(rows)
        result = WriteResult()
        for k in range(0, len(rows), self.max_batch):
            chunk = rows[k : k + self.max_batch]
            body = {"allOrNone": False, "records": [score_fields(r) for r in chunk]}
            saves = self.client.restful("composite/sobjects", method="PATCH", json=body) or []
            for row, save in zip(chunk, saves, strict=False):
                if save.get("success"):
                    result.ok.append(row.account_external_id)
                else:
                    errors = save.get("errors") or [{}]
                    result.errors[row.account_external_id] = "; ".join(
                        f"{e.get('statusCode', '?')}: {e.get('message', '')}" for e in errors
                    )
            for row in chunk[len(saves) :]:
                result.errors[row.account_external_id] = "no SaveResult returned"
        return result

    def write_bulk(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        result = WriteResult()
        jobs = self.client.bulk2_update("Account", [bulk_row(r) for r in rows], wait=self.bulk_wait)
        offset = 0
        for job in jobs:  # simple-salesforce splits the CSV in order, one job per part
            total = int(job["numberRecordsTotal"])
            chunk, offset = rows[offset : offset + total], offset + total
            failed: dict[str, str] = {}
            if int(job["numberRecordsFailed"]):
                for r in self.client.bulk2_results("Account", job["job_id"], "failed"):
                    failed[r.get("Id", "")] = r.get("sf__Error", "") or "failed"
            done: set[str] | None = None  # None: every row was processed
            if int(job["numberRecordsProcessed"]) < total:
                done = {
                    r.get("Id", "")
                    for r in self.client.bulk2_results("Account", job["job_id"], "successful")
                }
            for row in chunk:
                key = row.account_external_id
                if key in failed:
                    result.errors[key] = failed[key]
                elif done is None or key in done:
                    result.ok.append(key)
                else:
                    result.errors[key] = "not processed by the Bulk API 2.0 job"
        for row in rows[offset:]:
            result.errors[row.account_external_id] = "no Bulk API 2.0 job result"
        return result
