"""The Salesforce Source: Accounts, Contracts, Opportunities, Cases, Tasks, Events, Contacts.

The design notes (what is read in which order, calls per run, the watermark, deletions)
are in docs/connectors.md, "Salesforce: the source"."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from simple_salesforce.format import format_soql

from connectors.base import PermanentConnectorError
from connectors.salesforce import champions
from connectors.salesforce import mapping as mp
from connectors.salesforce.client import ID_CHUNK, SalesforceClient
from connectors.salesforce.fields import degrade
from connectors.salesforce.mapping import FieldMapping, MappingError
from health.records import Batch, RecordError, SwitchedOff
from health.settings import Settings

DEFAULT_MAPPING = Path(__file__).with_name("default_mapping.yaml")
OBJECTS = ("Account", "Contract", "Opportunity", "Case", "Task", "Event", "Contact")
CONTRACTS = "(SELECT Id, StartDate, EndDate, Status, SystemModstamp FROM Contracts)"
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")
_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _unique(fields: list[str | None]) -> list[str]:
    out: list[str] = []
    for f in fields:
        if f and f.lower() not in (o.lower() for o in out):
            out.append(f)
    return out


def select_fields(m: FieldMapping) -> dict[str, list[str]]:
    mapped = m.mapped_fields()
    base = {
        "Account": ["Id", "IsDeleted", "SystemModstamp"],
        "Contract": ["Id", "AccountId", "SystemModstamp"],
        "Opportunity": [
            "Id",
            "AccountId",
            "Type",
            "IsClosed",
            "IsWon",
            "CloseDate",
            "SystemModstamp",
        ],
        "Case": [
            "Id",
            "AccountId",
            "CreatedDate",
            "ClosedDate",
            "IsClosed",
            "IsDeleted",
            "SystemModstamp",
        ],
        "Task": [
            "Id",
            "AccountId",
            "ActivityDate",
            "CompletedDateTime",
            "CreatedDate",
            "SystemModstamp",
        ],
        "Event": ["Id", "AccountId", "StartDateTime", "CreatedDate", "SystemModstamp"],
        "Contact": ["Id", "AccountId", "IsDeleted", "SystemModstamp"],
    }
    fields = {obj: _unique(base[obj] + mapped.get(obj, [])) for obj in OBJECTS}
    return {**fields, champions.ROLE: ["Id", "ContactId", "SystemModstamp"]}


class Watermark:
    def __init__(self, since: str | None):
        self.pos: dict[str, tuple[str, str]] = {}
        if since:
            try:
                data = json.loads(since)
                for obj, (ts, rid) in data.items():
                    known = obj in OBJECTS or obj == champions.ROLE
                    if not known or not _TS.match(ts) or not _ID.match(rid):
                        raise ValueError(obj)
                    self.pos[obj] = (ts, rid)
            except (ValueError, TypeError, AttributeError) as exc:
                raise PermanentConnectorError(f"unreadable Salesforce watermark {since!r}") from exc

    def dump(self) -> str:
        return json.dumps({k: list(v) for k, v in sorted(self.pos.items())}, separators=(",", ":"))


class SalesforceSource:
    name = "salesforce"

    def __init__(self, client: SalesforceClient, mapping: FieldMapping):
        self.client, self.mapping = client, mapping
        self.fields = select_fields(mapping)
        self.switched_off: list[SwitchedOff] = []
        self._validated = False

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    # --- start-up check -------------------------------------------------------------------

    def validate(self) -> None:
        """Describe every object read and check every field selected, before any data query.
        A field the default mapping names and the org lacks switches off what depends on it
        (`switched_off`); a missing standard field, or one the admin's own mapping names, stops
        the sync with every such field named."""
        if self._validated:
            return
        missing: list[tuple[str, str]] = []
        needed = dict(
            self.fields, Contract=self.fields["Contract"] + ["StartDate", "EndDate", "Status"]
        )
        for obj in OBJECTS:
            describe = self.client.describe(obj)
            names = {f["name"].lower() for f in describe.get("fields", [])}
            rels = {(f.get("relationshipName") or "").lower() for f in describe.get("fields", [])}
            for fld in needed[obj]:
                head = fld.split(".", 1)[0].lower()
                if not (_FIELD.match(fld) and (head in rels if "." in fld else head in names)):
                    missing.append((obj, fld))
        if champions.roles_needed(degrade(self.mapping, missing)[0]):  # the champions' fallback
            missing = champions.missing_role_fields(self.client) + missing
        mapping, self.switched_off, problems = degrade(self.mapping, missing)
        if problems:
            raise PermanentConnectorError(
                "Salesforce field check failed: "
                + "; ".join(problems)
                + ". Fix the mapping file (SALESFORCE_MAPPING) or the org's field permissions."
            )
        self.mapping, self.fields = mapping, select_fields(mapping)
        self._validated = True

    # --- streams --------------------------------------------------------------------------

    def _soql(
        self, obj: str, pos: tuple[str, str] | None, *, where: str = "", extra: str = ""
    ) -> str:
        clauses = [where] if where else []
        if pos:
            assert _TS.match(pos[0])
            clauses.append(format_soql("SystemModstamp >= {:literal}", pos[0][:19] + "Z"))
        text = f"SELECT {', '.join(self.fields[obj])}{extra} FROM {obj}"
        if clauses:
            text += " WHERE " + " AND ".join(clauses)
        return text + " ORDER BY SystemModstamp, Id"

    def _pages(
        self, obj: str, wm: Watermark, *, include_deleted: bool, where: str = "", extra: str = ""
    ) -> Iterator[tuple[list[dict], tuple[str, str] | None, int]]:
        """(records after the saved position, position after this page, their count) per page."""
        start = wm.pos.get(obj)
        soql = self._soql(obj, start, where=where, extra=extra)
        for page in self.client.query_pages(soql, include_deleted=include_deleted):
            fresh, last = [], start
            for rec in page:
                cur = mp.cursor_of(rec)
                if cur is not None and start is not None and cur <= start:
                    continue  # already handled in an earlier run (same second)
                fresh.append(rec)
                if cur is not None and (last is None or cur > last):
                    last = cur
            yield fresh, last, len(fresh)

    def pull(self, since: str | None) -> Iterator[Batch]:
        self.validate()
        wm = Watermark(since)
        seen: set[str] = set()
        # a first sync reads every Contract as an Account child row: no Contract query then
        first = "Account" not in wm.pos and "Contract" not in wm.pos
        yield from self._accounts(wm, seen, contracts_from_children=first)
        if not first:
            yield from self._contracts(wm, seen)
        yield from self._simple(wm, "Opportunity", mp.outcome_record, include_deleted=False)
        yield from self._cases(wm)
        closed = "IsClosed = true"
        yield from self._simple(
            wm, "Task", mp.activity_observations, include_deleted=False, where=closed
        )
        yield from self._simple(wm, "Event", mp.activity_observations, include_deleted=False)
        yield from champions.champion_batches(self, wm)

    def _account_batch(self, records: list[dict], batch: Batch, seen: set[str]) -> None:
        for rec in records:
            out = mp.account_record(rec, self.mapping)
            if isinstance(out, RecordError):
                batch.errors.append(out)
            else:
                batch.accounts.append(out)
                seen.add(out.external_id)

    def _accounts(
        self, wm: Watermark, seen: set[str], *, contracts_from_children: bool
    ) -> Iterator[Batch]:
        # queryAll: a deleted Account arrives with IsDeleted = true -> AccountRecord(deleted=True)
        for records, last, n in self._pages(
            "Account", wm, include_deleted=True, extra=f", {CONTRACTS}"
        ):
            batch = Batch(fetched=n)
            self._account_batch(records, batch, seen)
            if last:
                wm.pos["Account"] = last
            if contracts_from_children:
                for rec in records:
                    for child in (rec.get("Contracts") or {}).get("records") or []:
                        cur = mp.cursor_of(child)
                        if cur is not None and cur > wm.pos.get("Contract", ("", "")):
                            wm.pos["Contract"] = cur
            batch.watermark = wm.dump()
            yield batch

    def _contracts(self, wm: Watermark, seen: set[str]) -> Iterator[Batch]:
        """A changed Contract changes its Account's renewal date: re-read those Accounts."""
        for records, last, n in self._pages("Contract", wm, include_deleted=True):
            batch = Batch(fetched=n)
            ids = sorted({r["AccountId"] for r in records if r.get("AccountId")} - seen)
            for k in range(0, len(ids), ID_CHUNK):
                soql = format_soql(
                    f"SELECT {', '.join(self.fields['Account'])}, {CONTRACTS} FROM Account "
                    "WHERE Id IN {ids} ORDER BY Id",
                    ids=ids[k : k + ID_CHUNK],
                )
                accounts = self.client.query_all(soql, include_deleted=True)
                batch.fetched += len(accounts)
                self._account_batch(accounts, batch, seen)
            if last:
                wm.pos["Contract"] = last
            batch.watermark = wm.dump()
            yield batch

    def _simple(
        self, wm: Watermark, obj: str, fn, *, include_deleted: bool, where: str = ""
    ) -> Iterator[Batch]:
        for records, last, n in self._pages(obj, wm, include_deleted=include_deleted, where=where):
            batch = Batch(fetched=n)
            for rec in records:
                out = fn(rec, self.mapping)
                if isinstance(out, RecordError):
                    batch.errors.append(out)
                elif isinstance(out, list):
                    batch.observations.extend(out)
                elif out is not None:
                    batch.outcomes.append(out)
            if last:
                wm.pos[obj] = last
            batch.watermark = wm.dump()
            yield batch

    def _cases(self, wm: Watermark) -> Iterator[Batch]:
        newest: dict[str, datetime] = {}  # account -> newest SystemModstamp of its changed cases
        final = wm.pos.get("Case")
        # no saved position: every Case is read below, so tally the open ones from those pages
        tally: dict[object, tuple[str, bool]] | None = {} if final is None else None
        # queryAll: a deleted Case still changes its account's open count
        for records, last, n in self._pages("Case", wm, include_deleted=True):
            batch = Batch(fetched=n, watermark=wm.dump())  # the Case position waits for the end
            for rec in records:
                if tally is not None and isinstance(rec.get("AccountId"), str):
                    is_open = rec.get("IsClosed") is False and not rec.get("IsDeleted")
                    tally[rec.get("Id") or object()] = (rec["AccountId"], is_open)  # latest wins
                out = mp.case_observations(rec, self.mapping)
                if isinstance(out, RecordError):
                    batch.errors.append(out)
                    continue
                batch.observations.extend(out)
                cur = mp.cursor_of(rec)
                if rec.get("AccountId") and cur:
                    ts = mp.parse_datetime(rec["SystemModstamp"], "SystemModstamp")
                    if ts and (rec["AccountId"] not in newest or ts > newest[rec["AccountId"]]):
                        newest[rec["AccountId"]] = ts
            final = last or final
            yield batch
        if final is None or final == wm.pos.get("Case"):
            return
        batch = Batch(fetched=0)  # derived from pages already read: no new vendor records
        if tally is None:
            counts, batch.fetched = self._open_counts(sorted(newest))
        else:
            counts = Counter(account for account, is_open in tally.values() if is_open)
        batch.observations = [
            mp.open_ticket_observation(a, counts.get(a, 0), newest[a]) for a in sorted(newest)
        ]
        wm.pos["Case"] = final
        batch.watermark = wm.dump()
        yield batch

    def _open_counts(self, ids: list[str]) -> tuple[dict[str, int], int]:
        """({account: open cases} by aggregate COUNT queries, aggregate rows read)."""
        counts: dict[str, int] = {}
        for k in range(0, len(ids), ID_CHUNK):
            soql = format_soql(
                "SELECT AccountId, COUNT(Id) c FROM Case WHERE IsClosed = false "
                "AND AccountId IN {ids} GROUP BY AccountId",
                ids=ids[k : k + ID_CHUNK],
            )
            for row in self.client.query_all(soql):
                counts[row["AccountId"]] = int(row["c"])
        return counts, len(counts)


def is_configured(settings: Settings) -> bool:
    return bool(
        settings.salesforce_instance_url
        and (
            settings.salesforce_access_token
            or (settings.salesforce_username and settings.salesforce_password)
        )
    )


def load_mapping(path: Path | None) -> FieldMapping:
    """The admin's mapping file (every field it names must exist), or the default one."""
    where = path or DEFAULT_MAPPING
    try:
        text = Path(where).read_text()
    except OSError as exc:
        raise PermanentConnectorError(f"SALESFORCE_MAPPING: cannot read {where}: {exc}") from exc
    try:
        return mp.mapping_from_yaml(text, str(where), explicit=path is not None)
    except MappingError as exc:
        raise PermanentConnectorError(f"SALESFORCE_MAPPING: {exc}") from exc


def build_client(settings: Settings, **client_opts) -> SalesforceClient:
    """client_opts go to SalesforceClient (e.g. session=RetryingSession(sleep=...), batch_size)."""
    if not settings.salesforce_instance_url:
        raise PermanentConnectorError("SALESFORCE_INSTANCE_URL is not set")
    token = settings.salesforce_access_token
    password = settings.salesforce_password
    security = settings.salesforce_security_token
    return SalesforceClient(
        settings.salesforce_instance_url,
        token.get_secret_value() if token else None,
        username=settings.salesforce_username,
        password=password.get_secret_value() if password else None,
        security_token=security.get_secret_value() if security else None,
        domain=settings.salesforce_domain,
        ca_bundle=settings.requests_ca_bundle,
        **client_opts,
    )


def build_source(settings: Settings, **client_opts) -> SalesforceSource:
    return SalesforceSource(
        build_client(settings, **client_opts), load_mapping(settings.salesforce_mapping)
    )
