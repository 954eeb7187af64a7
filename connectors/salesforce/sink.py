"""Write scores onto Salesforce Accounts.

Up to `bulk_threshold` rows (Salesforce's guidance: 2,000): sObject Collections updates of up
to 200 records, each row's SaveResult deciding ok / error. Bigger writes go through Bulk API 2.0
(`sf.bulk2.Account.update`): create job, PUT CSV, UploadComplete, status polls, then
`failedResults` (only when the job reports failures) and `successfulResults` (only when some rows
were left unprocessed); rows of a fully processed job that did not fail are ok.

Fields (`FIELDS`, renamed with SALESFORCE_SCORE_FIELDS): Health_Score__c, Health_Tier__c,
Health_Trend_30d__c, Health_Drivers__c (<= 255 chars, a Text Area field),
Health_Updated_At__c. A failed call (rate limit, 5xx after the client's short retry, a failed
bulk job) raises, so the outbox keeps its rows; a refused record is a per-row `WriteError` (a
tier the restricted tier picklist lacks says to run `healthbot crm setup`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import ClassVar

from connectors.base import UNKNOWN_TIER, renamed
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.source import build_client
from health.records import ScoreWrite, WriteError, WriteResult
from health.settings import Settings

BULK_THRESHOLD = 2000  # more rows than this -> Bulk API 2.0
BULK_CHUNK = 10_000  # rows per Bulk API 2.0 job (Salesforce processes 10,000 per batch)
NULL = "#N/A"  # Bulk CSV: an empty value leaves the field alone, #N/A clears it
DRIVERS_MAX = 255
FIELDS = {
    "score": "Health_Score__c",
    "tier": "Health_Tier__c",
    "trend_30d": "Health_Trend_30d__c",
    "drivers": "Health_Drivers__c",
    "updated_at": "Health_Updated_At__c",
}
# per-record status codes worth another try (Salesforce's StatusCode enum)
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"}
)
# a value outside a restricted picklist: the tier field lacks that tier
RESTRICTED_PICKLIST = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
READ_BACK_CHUNK = 200  # ids per verifying SOQL query (well inside the 100,000-char limit)


def field_names(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Account field for each score field: the defaults with the admin's renames."""
    return renamed(FIELDS, overrides, "SALESFORCE_SCORE_FIELDS")


def write_error(code: str, message: str) -> WriteError:
    if code == RESTRICTED_PICKLIST:  # the tier is the one picklist written
        message = f"{message}; {UNKNOWN_TIER}"
    return WriteError(code or "UNKNOWN", message, transient=code in TRANSIENT_CODES)


class SalesforceScoreSink:
    name: ClassVar[str] = "salesforce"
    max_batch: ClassVar[int] = 200  # sObject Collections limit

    def __init__(
        self,
        client: SalesforceClient,
        *,
        fields: Mapping[str, str] | None = None,
        bulk_threshold: int = BULK_THRESHOLD,
        bulk_wait: float = 2.0,
    ):
        self.client = client
        self.fields = field_names(fields)
        self.bulk_threshold = bulk_threshold
        self.bulk_wait = bulk_wait  # seconds before the first job status poll, and between

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def record(self, row: ScoreWrite) -> dict:
        f = self.fields
        return {
            "attributes": {"type": "Account"},
            "id": row.account_external_id,
            f["score"]: row.score,
            f["tier"]: row.tier,
            f["trend_30d"]: row.trend_30d,
            f["drivers"]: row.drivers[:DRIVERS_MAX],
            f["updated_at"]: row.updated_at.isoformat(),
        }

    def bulk_row(self, row: ScoreWrite) -> dict[str, str]:
        """The Bulk API 2.0 CSV row (strings; #N/A for null) for one score."""
        f, at = self.fields, row.updated_at.astimezone(UTC)
        return {
            "Id": row.account_external_id,
            f["score"]: str(row.score),
            f["tier"]: row.tier or NULL,
            f["trend_30d"]: NULL if row.trend_30d is None else repr(float(row.trend_30d)),
            f["drivers"]: row.drivers[:DRIVERS_MAX] or NULL,
            f["updated_at"]: f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
        }

    def chunk_size(self, pending: int) -> int:
        return BULK_CHUNK if pending > self.bulk_threshold else self.max_batch

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        if len(rows) > self.bulk_threshold:
            return self.write_bulk(rows)
        result = WriteResult()
        for k in range(0, len(rows), self.max_batch):
            chunk = rows[k : k + self.max_batch]
            body = {"allOrNone": False, "records": [self.record(r) for r in chunk]}
            saves = self.client.restful("composite/sobjects", method="PATCH", json=body) or []
            for row, save in zip(chunk, saves, strict=False):
                if save.get("success"):
                    result.ok.append(row.account_external_id)
                else:
                    errors = save.get("errors") or [{}]
                    code = str(errors[0].get("statusCode", ""))
                    result.errors[row.account_external_id] = write_error(
                        code, "; ".join(str(e.get("message", "")) for e in errors)
                    )
            for row in chunk[len(saves) :]:
                result.errors[row.account_external_id] = WriteError(
                    "NO_SAVE_RESULT", "Salesforce returned no SaveResult", transient=True
                )
        return result

    def write_bulk(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        result = WriteResult()
        jobs = self.client.bulk2_update(
            "Account", [self.bulk_row(r) for r in rows], wait=self.bulk_wait
        )
        offset = 0
        for job in jobs:  # simple-salesforce splits the CSV in order, one job per part
            total = int(job["numberRecordsTotal"])
            chunk, offset = rows[offset : offset + total], offset + total
            failed: dict[str, WriteError] = {}
            if int(job["numberRecordsFailed"]):
                for r in self.client.bulk2_results("Account", job["job_id"], "failed"):
                    code, _, message = (r.get("sf__Error", "") or "FAILED").partition(":")
                    failed[r.get("Id", "")] = write_error(code, message.strip(":- ") or code)
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
                    result.errors[key] = WriteError(
                        "NOT_PROCESSED", "not processed by the Bulk API 2.0 job", transient=True
                    )
        for row in rows[offset:]:
            result.errors[row.account_external_id] = WriteError(
                "NO_JOB_RESULT", "no Bulk API 2.0 job result", transient=True
            )
        return result

    def read_fields(self, external_ids: Sequence[str]) -> dict[str, dict]:
        """What each Account shows now: {id: {score field key: value}}, one SOQL query per
        200 ids (Salesforce returns numbers as numbers, text as text)."""
        f, ids, shown = self.fields, list(dict.fromkeys(external_ids)), {}
        cols = ", ".join(f.values())
        for k in range(0, len(ids), READ_BACK_CHUNK):
            quoted = ", ".join("'" + i.replace("'", "") + "'" for i in ids[k : k + READ_BACK_CHUNK])
            soql = f"SELECT Id, {cols} FROM Account WHERE Id IN ({quoted})"
            for rec in self.client.query_all(soql):
                shown[rec["Id"]] = {key: rec.get(name) for key, name in f.items()}
        return shown

    def already_written(self, rows: Sequence[ScoreWrite]) -> set[str]:
        """The external ids whose Account already shows exactly these values: after a crash
        between the CRM's acknowledgement and ours, a row is checked here, not sent twice."""
        shown = self.read_fields([r.account_external_id for r in rows])
        return {
            r.account_external_id
            for r in rows
            if (v := shown.get(r.account_external_id)) is not None
            and v["score"] is not None
            and float(v["score"]) == r.score
            and v["tier"] == r.tier
            and (v["drivers"] or "") == r.drivers[:DRIVERS_MAX]
        }


def build_sink(settings: Settings, **client_opts) -> SalesforceScoreSink:
    return SalesforceScoreSink(
        build_client(settings, **client_opts),
        fields=settings.salesforce_score_fields,
        bulk_threshold=settings.salesforce_bulk_threshold,
    )
