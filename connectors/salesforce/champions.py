"""The Contact stream of the Salesforce source: the champions, read by a champion checkbox or,
in an org without one, as the contacts that are the primary contact role on an opportunity.

The queries, the incremental reads of changed roles and the one gap left are in
docs/connectors.md, "Salesforce: champions and their departures"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from simple_salesforce.format import format_soql

from connectors.base import PermanentConnectorError
from connectors.salesforce import mapping as mp
from connectors.salesforce.client import ID_CHUNK, SalesforceClient
from connectors.salesforce.fields import ROLE_FIELDS
from connectors.salesforce.mapping import PRIMARY_ROLE, FieldMapping
from health.records import Batch, RecordError

if TYPE_CHECKING:
    from connectors.salesforce.source import SalesforceSource, Watermark

ROLE = "OpportunityContactRole"
SEMI_JOIN = f"Id IN (SELECT ContactId FROM {ROLE} WHERE IsPrimary = true)"
PRIMARY = "IsPrimary = true"
_START_ID = "0" * 18  # the role position's Id when it starts: before every record of its second


def roles_needed(m: FieldMapping) -> bool:
    """The roles are described when they mark the champions, or when the admin's own mapping
    names them (every field it names must exist)."""
    return m.champion == PRIMARY_ROLE or (m.explicit and PRIMARY_ROLE in m.contact_champion)


def missing_role_fields(client: SalesforceClient) -> list[tuple[str, str]]:
    """(OpportunityContactRole, field) for each field the fallback reads that the org lacks
    (all of them when the user may not describe the object)."""
    try:
        describe = client.describe(ROLE)
    except PermanentConnectorError:
        return [(ROLE, f) for f in ROLE_FIELDS]
    names = {f["name"].lower() for f in describe.get("fields", [])}
    return [(ROLE, f) for f in ROLE_FIELDS if f.lower() not in names]


def champion_batches(source: SalesforceSource, wm: Watermark) -> Iterator[Batch]:
    flag = source.mapping.champion
    if flag is None:  # nothing marks a champion: no Contact is read
        return
    if flag != PRIMARY_ROLE:
        champ = format_soql("{:literal} = true", flag)
        yield from source._simple(
            wm, "Contact", mp.contact_observations, include_deleted=True, where=champ
        )
        return
    read: set[str] = set()

    def observe(rec: dict, m: FieldMapping) -> list | RecordError:
        if isinstance(rec.get("Id"), str):
            read.add(rec["Id"])
        return mp.contact_observations(rec, m)

    since = wm.pos.get(ROLE)
    if since is None and (newest := max((ts for ts, _ in wm.pos.values()), default=None)):
        wm.pos[ROLE] = (newest, _START_ID)  # saved with the first Contact page
    yield from source._simple(wm, "Contact", observe, include_deleted=True, where=SEMI_JOIN)
    if since is not None:
        yield from _changed_roles(source, wm, read)


def _changed_roles(source: SalesforceSource, wm: Watermark, read: set[str]) -> Iterator[Batch]:
    """Contacts whose primary role changed since the role position, not read in this run."""
    select = ", ".join(source.fields["Contact"])
    for roles, last, n in source._pages(ROLE, wm, include_deleted=True, where=PRIMARY):
        batch = Batch(fetched=n)
        ids = sorted({r["ContactId"] for r in roles if isinstance(r.get("ContactId"), str)} - read)
        for k in range(0, len(ids), ID_CHUNK):
            soql = format_soql(
                f"SELECT {select} FROM Contact WHERE Id IN {{ids}} ORDER BY Id",
                ids=ids[k : k + ID_CHUNK],
            )
            contacts = source.client.query_all(soql, include_deleted=True)
            batch.fetched += len(contacts)
            for rec in contacts:
                out = mp.contact_observations(rec, source.mapping)
                if isinstance(out, RecordError):
                    batch.errors.append(out)
                else:
                    batch.observations.extend(out)
        read.update(ids)
        if last:
            wm.pos[ROLE] = last
        batch.watermark = wm.dump()
        yield batch
