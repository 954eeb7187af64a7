"""Bulk API 2.0 ingest for the Salesforce fake (what simple-salesforce's `sf.bulk2` sends).

Under /services/data/vXX.X/jobs/ingest:
  POST   ""                       create {object, operation insert|update|upsert|delete,
                                  contentType CSV, columnDelimiter, lineEnding,
                                  externalIdFieldName (upsert)} -> job info, state Open
  GET    ""                       all jobs {done, records, nextRecordsUrl}
  PUT    {id}/batches             the CSV (text/csv), once per job, while Open -> 201. Salesforce
                                  caps an upload at 150 MB (base64); the fake answers a bigger
                                  body with 400 InvalidBatch too (simple-salesforce splits at 100)
  PATCH  {id} {state}             UploadComplete (Open -> UploadComplete) or Aborted
  GET    {id}                     job info; after UploadComplete the job shows InProgress for
                                  `in_progress_polls` polls (default 1; 0 = process on close),
                                  then it is processed at once -> JobComplete (or Failed with
                                  errorMessage, e.g. an unknown column) with
                                  numberRecordsProcessed / numberRecordsFailed
  GET    {id}/successfulResults   CSV "sf__Id","sf__Created",<uploaded columns>
  GET    {id}/failedResults       CSV "sf__Id","sf__Error",<uploaded columns>
  GET    {id}/unprocessedrecords  CSV <uploaded columns> (rows of an aborted job)
  DELETE {id}                     204 (UploadComplete, JobComplete, Aborted or Failed only)
Row semantics as Salesforce documents for CSV: an empty value leaves the field alone, `#N/A`
sets null; numbers, booleans (true/false), dates and datetimes are parsed; a bad value (one
outside a restricted picklist too) or an unknown / deleted Id fails that row only
("CODE:message:fields --" in sf__Error; salesforce_picklists). Every change
bumps SystemModstamp like the REST updates, so a later sync sees it. Bad requests get
Salesforce's `[{"errorCode", "message"}]` bodies (INVALIDJOB, INVALIDJOBSTATE, InvalidBatch,
JSON_PARSER_ERROR, NOT_FOUND).
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from connectors.sandbox.salesforce_picklists import refusal
from connectors.sandbox.salesforce_seed import SCHEMA, sf_ts
from connectors.sandbox.server import Request, Response

if TYPE_CHECKING:
    from connectors.sandbox.salesforce_api import SalesforceSandbox

MAX_UPLOAD = 150 * 1024 * 1024
OPERATIONS = ("insert", "update", "upsert", "delete")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^"}
DELIMITERS["BACKQUOTE"] = "`"
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
READ_ONLY = {"IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
USER_ID = "005FK0000000001AAA"


def _err(status: int, code: str, message: str) -> Response:
    return Response(status, [{"errorCode": code, "message": message}])


class RowError(Exception):
    def __init__(self, code: str, message: str, fields: tuple[str, ...] = ()):
        super().__init__(f"{code}:{message}:{','.join(fields)} --")


@dataclass
class Job:
    id: str
    obj: str
    operation: str
    external_id: str | None
    delimiter: str
    line_ending: str
    created: str
    version: str
    state: str = "Open"
    data: str | None = None
    polls_left: int = 0
    error: str | None = None
    header: list[str] = field(default_factory=list)
    ok: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    modstamp: str = ""

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.obj,
            "createdById": USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.version),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{self.version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter,
            "numberRecordsProcessed": len(self.ok) + len(self.failed),
            "numberRecordsFailed": len(self.failed),
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        if self.external_id:
            out["externalIdFieldName"] = self.external_id
        if self.error:
            out["errorMessage"] = self.error
        return out


class BulkJobs:
    """The fake's ingest jobs; `in_progress_polls` status polls show InProgress first."""

    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb
        self.jobs: dict[str, Job] = {}
        self.in_progress_polls = 1
        self._ids = itertools.count(1)

    # --- requests --------------------------------------------------------------------------

    def handle(self, req: Request, parts: list[str]) -> Response:
        if not parts or parts[0] != "ingest":
            return _err(404, "NOT_FOUND", "The requested resource does not exist")
        rest, method = parts[1:], req.method
        if not rest:
            if method == "POST":
                return self.create(req)
            if method == "GET":
                records = [j.info() for j in self.jobs.values()]
                return Response(200, {"done": True, "records": records, "nextRecordsUrl": None})
            return _method(method, "GET, POST")
        job = self.jobs.get(rest[0])
        if job is None:
            return _err(404, "NOT_FOUND", "The requested resource does not exist")
        if len(rest) == 1:
            if method == "GET":
                return Response(200, self.poll(job).info())
            if method == "PATCH":
                return self.set_state(job, req)
            if method == "DELETE":
                if job.state in ("Open", "InProgress"):
                    return _err(
                        400, "INVALIDJOBSTATE", f"Unable to delete a job in state {job.state}"
                    )
                del self.jobs[job.id]
                return Response(204, b"")
            return _method(method, "GET, PATCH, DELETE")
        if len(rest) == 2 and rest[1] == "batches":
            return self.upload(job, req) if method == "PUT" else _method(method, "PUT")
        kind = rest[1].lower() if len(rest) == 2 else ""
        if kind in ("successfulresults", "failedresults", "unprocessedrecords"):
            return self.results(job, kind) if method == "GET" else _method(method, "GET")
        return _err(404, "NOT_FOUND", "The requested resource does not exist")

    def create(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return _err(400, "JSON_PARSER_ERROR", "Unexpected character in the request body")
        if not isinstance(body, dict):
            return _err(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        obj, op = body.get("object"), body.get("operation")
        delim, ending = body.get("columnDelimiter", "COMMA"), body.get("lineEnding", "LF")
        if op not in OPERATIONS:
            return _err(
                400,
                "JSON_PARSER_ERROR",
                f'Cannot deserialize value of type `OperationEnum` from String "{op}"',
            )
        if delim not in DELIMITERS or ending not in LINE_ENDINGS:
            return _err(400, "JSON_PARSER_ERROR", "Invalid columnDelimiter or lineEnding")
        if body.get("contentType", "CSV") != "CSV":
            return _err(400, "INVALIDJOB", "Only the CSV contentType is supported")
        if obj not in SCHEMA:
            return _err(400, "INVALIDJOB", f"Unable to find object: {obj}")
        ext = body.get("externalIdFieldName")
        if op == "upsert":
            if not ext:
                return _err(400, "INVALIDJOB", "External ID was blank for upsert")
            if _field(obj, ext) is None:
                return _err(400, "INVALIDJOB", f"Invalid external ID field: {ext}")
            ext = _field(obj, ext)
        job = Job(
            id=f"750FK{next(self._ids):010d}AAA",
            obj=obj,
            operation=op,
            external_id=ext if op == "upsert" else None,
            delimiter=delim,
            line_ending=ending,
            created=sf_ts(self.sb.now),
            version=self.sb.version,
        )
        self.jobs[job.id] = job
        return Response(200, job.info())

    def upload(self, job: Job, req: Request) -> Response:
        if job.state != "Open" or job.data is not None:
            return _err(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} is not open for data upload (state {job.state}); "
                "upload data once per job, before UploadComplete",
            )
        if not req.headers.get("content-type", "").lower().startswith("text/csv"):
            return _err(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
        if len(req.body) > MAX_UPLOAD:
            return _err(400, "InvalidBatch", "Upload exceeds the 150 MB limit for one job")
        try:
            job.data = req.body.decode("utf-8")
        except UnicodeDecodeError:
            return _err(400, "InvalidBatch", "Data is not valid UTF-8")
        return Response(201, b"")

    def set_state(self, job: Job, req: Request) -> Response:
        try:
            state = (req.json() or {}).get("state")
        except (ValueError, AttributeError):
            return _err(400, "JSON_PARSER_ERROR", 'Expected {"state": ...}')
        if state == "UploadComplete" and job.state == "Open":
            if job.data is None:
                return _err(400, "INVALIDJOBSTATE", "No data was uploaded for this job")
            job.state, job.polls_left = "UploadComplete", self.in_progress_polls
            if not job.polls_left:
                self.process(job)
                info = job.info()
                info.update(state="UploadComplete")  # the close itself still says so
                return Response(200, info)
        elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.state = "Aborted"
            job.header, job.unprocessed = self._rows(job)
        else:
            return _err(
                400,
                "INVALIDJOBSTATE",
                f"Invalid job state transition from {job.state} to {state}",
            )
        job.modstamp = sf_ts(self.sb.now)
        return Response(200, job.info())

    def poll(self, job: Job) -> Job:
        if job.state in ("UploadComplete", "InProgress"):
            if job.polls_left > 0:
                job.polls_left -= 1
                job.state = "InProgress"
            else:
                self.process(job)
        return job

    def results(self, job: Job, kind: str) -> Response:
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            return _err(400, "INVALIDJOBSTATE", f"Results are not available in state {job.state}")
        if kind == "successfulresults":
            head = ["sf__Id", "sf__Created", *job.header]
            rows = [[rid, "true" if new else "false", *r] for rid, new, r in job.ok]
        elif kind == "failedresults":
            head = ["sf__Id", "sf__Error", *job.header]
            rows = [["", msg, *r] for msg, r in job.failed]
        else:
            head, rows = list(job.header), job.unprocessed
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if head:
            writer.writerow(head)
        writer.writerows(rows)
        return Response(200, out.getvalue(), {"Content-Type": "text/csv"})

    # --- processing ------------------------------------------------------------------------

    def _rows(self, job: Job) -> tuple[list[str], list[list[str]]]:
        text = (job.data or "").replace("\r\n", "\n")
        reader = csv.reader(io.StringIO(text), delimiter=DELIMITERS[job.delimiter])
        rows = [r for r in reader if r]
        return (rows[0], rows[1:]) if rows else ([], [])

    def process(self, job: Job) -> None:
        job.header, rows = self._rows(job)
        job.modstamp = sf_ts(self.sb.now)
        unknown = [h for h in job.header if _field(job.obj, h) is None]
        if not job.header or unknown:
            job.state = "Failed"
            job.error = f"InvalidBatch : Field name not found : {(unknown or [''])[0]}"
            job.unprocessed = rows
            return
        if job.operation in ("update", "delete") and "id" not in {h.lower() for h in job.header}:
            job.state, job.unprocessed = "Failed", rows
            job.error = "InvalidBatch : Field name not found : Id"
            return
        names = [_field(job.obj, h) or h for h in job.header]
        for row in rows:
            values = dict(zip(names, row + [""] * (len(names) - len(row)), strict=False))
            try:
                rid, created = self._apply(job, values)
            except RowError as exc:
                job.failed.append((str(exc), row))
            else:
                job.ok.append((rid, created, row))
        job.state = "JobComplete"

    def _apply(self, job: Job, values: dict[str, str]) -> tuple[str, bool]:
        db, obj, op = self.sb.db[job.obj], job.obj, job.operation
        rid = values.pop("Id", "").strip()
        if op == "upsert" and job.external_id != "Id":
            key = values.get(job.external_id or "", "")
            if not key:
                raise RowError("MISSING_ARGUMENT", f"{job.external_id} not specified")
            hits = [
                r["Id"]
                for r in db.values()
                if not r["IsDeleted"] and str(r.get(job.external_id)) == key
            ]
            if len(hits) > 1:
                raise RowError("DUPLICATE_EXTERNAL_ID", f"{job.external_id}: more than one record")
            rid = hits[0] if hits else ""
        if op == "insert" or (op == "upsert" and not rid):
            if rid:
                raise RowError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id", ("Id",))
            fields = _coerce_all(obj, values)
            return self.sb.add(obj, **fields)["Id"], True
        if len(rid) not in (15, 18) or not rid.isalnum():
            raise RowError("MALFORMED_ID", f"{obj} ID: id value of incorrect type: {rid}", ("Id",))
        rec = db.get(rid)
        if rec is None:
            raise RowError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if rec["IsDeleted"]:
            raise RowError("ENTITY_IS_DELETED", "entity is deleted")
        fields = {} if op == "delete" else _coerce_all(obj, values)
        for name, value in fields.items():
            if bad := refusal(self.sb.picklists, obj, name, value):
                raise RowError(bad[0], bad[1], tuple(bad[2]))
        self.sb.modify(obj, rid, **fields, **({"IsDeleted": True} if op == "delete" else {}))
        return rid, False


def _method(method: str, allowed: str) -> Response:
    return _err(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


def _field(obj: str, name: str) -> str | None:
    for f in SCHEMA[obj]:
        if f.lower() == name.strip().lower():
            return f
    return None


def _coerce_all(obj: str, values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if raw == "":
            continue  # an empty CSV value leaves the field as it is
        if name in READ_ONLY:
            raise RowError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {name}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission "
                "set.",
                (name,),
            )
        try:
            out[name] = None if raw == "#N/A" else _coerce(raw, SCHEMA[obj][name])
        except (ValueError, TypeError):
            raise RowError(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{name}: value not of required type: {raw}",
                (name,),
            ) from None
    return out


def _coerce(raw: str, ftype: object) -> Any:
    if ftype in ("double", "currency"):
        return float(raw)
    if ftype == "int":
        return int(raw)
    if ftype == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1")
    if ftype == "datetime":
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return sf_ts(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    if ftype == "date":
        return date.fromisoformat(raw).isoformat()
    return raw


def bulk_jobs(sb: SalesforceSandbox) -> BulkJobs:
    """The sandbox's job store, created on first use."""
    jobs = getattr(sb, "_bulk_jobs", None)
    if jobs is None:
        jobs = sb._bulk_jobs = BulkJobs(sb)  # type: ignore[attr-defined]
    return jobs


def handle(sb: SalesforceSandbox, req: Request, parts: list[str]) -> Response:
    """Route `jobs/...` (the path after /services/data/vXX.X/jobs/)."""
    return bulk_jobs(sb).handle(req, parts)
