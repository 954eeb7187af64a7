"""Keyword-only queries and upserts. They add and flush; the caller's unit of work commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Integer, bindparam, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, SQLModel

from health.identity import link_records, normalise_domain
from health.models import Account, CrmRecord, Observation, Outcome, SyncError, SyncState
from health.records import (
    AccountRecord,
    AccountRef,
    Batch,
    ObservationRecord,
    OutcomeRecord,
    RecordError,
)

CHUNK = 1000


def chunked(rows: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def upsert(
    session: Session,
    table: type[SQLModel],
    rows: Sequence[dict],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    only_if_changed: bool = True,
    returning: Sequence[str] = (),
    index_where: str | None = None,
) -> list[tuple]:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, executemany in batches (one compiled statement).
    `index_where` names the predicate of a partial unique index on `keys`.

    Returns one tuple (of `returning` columns, default the primary key) per row inserted or
    changed; rows left as they were return nothing."""
    if not rows:
        return []
    tbl = table.__table__  # type: ignore[attr-defined]
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[
        session.get_bind().dialect.name
    ]
    stmt = insert(tbl)
    partial = text(index_where) if index_where else None
    if update:
        changed = or_(*(tbl.c[c].is_distinct_from(stmt.excluded[c]) for c in update))
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            index_where=partial,
            set_={c: stmt.excluded[c] for c in update},
            where=changed if only_if_changed else None,
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys), index_where=partial)
    cols = [tbl.c[c] for c in returning] or list(tbl.primary_key.columns)
    # RETURNING counts reliably on every driver (rowcount is -1 on some)
    stmt = stmt.returning(*cols, sort_by_parameter_order=False)
    conn = session.connection()
    out: list[tuple] = []
    for part in chunked(rows, 5000):
        out.extend(tuple(r) for r in conn.execute(stmt, list(part)))
    return out


@dataclass
class StoreReport:
    """What one batch did to the database."""

    upserted: int = 0
    unchanged: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)  # account key -> records
    errors: int = 0
    touched_accounts: set[int] = field(default_factory=set)  # accounts whose data changed
    no_account: list[RecordError] = field(default_factory=list)  # attach_only, matching none

    def add(self, other: StoreReport) -> None:
        self.no_account += other.no_account
        self.upserted += other.upserted
        self.unchanged += other.unchanged
        self.errors += other.errors
        for k, n in other.unmatched.items():
            self.unmatched[k] = self.unmatched.get(k, 0) + n
        self.touched_accounts |= other.touched_accounts


Match = tuple[int, int]  # (account id, record id)


def resolve_refs(
    *, session: Session, refs: Iterable[AccountRef], primary: str = "salesforce"
) -> tuple[dict[AccountRef, Match], dict[AccountRef, str]]:
    """Map account references to (account, record) in two queries: by any CRM record's id,
    then by domain (to the leading record of the one account with that domain). Returns the
    matches and, for references left unmatched on purpose, why (a domain on two accounts)."""
    refs = set(refs)
    by_ext: dict[str, Match] = {}
    for part in chunked(sorted({r.crm_id for r in refs if r.crm_id})):
        q = select(CrmRecord.external_id, CrmRecord.account_id, CrmRecord.id).where(
            CrmRecord.external_id.in_(part)
        )
        for ext, acc, rec in session.execute(q.order_by(CrmRecord.id)):
            by_ext.setdefault(ext, (acc, rec))
    domains = {normalise_domain(r.domain) for r in refs if r.domain and r.crm_id not in by_ext}
    domains.discard(None)
    on_domain: dict[str, dict[int, tuple]] = {}
    for part in chunked(sorted(domains)):  # type: ignore[arg-type]
        q = select(CrmRecord.domain, CrmRecord.account_id, CrmRecord.id, CrmRecord.source).where(
            CrmRecord.domain.in_(part), CrmRecord.deleted_at.is_(None)
        )
        for dom, acc, rec, src in session.execute(q):
            best = on_domain.setdefault(dom, {}).get(acc)
            if best is None or (src != primary, rec) < (best[1] != primary, best[0]):
                on_domain[dom][acc] = (rec, src)
    out, why = {}, {}
    for r in refs:
        match = by_ext.get(r.crm_id) if r.crm_id else None
        if match is None and r.domain:
            accounts = on_domain.get(normalise_domain(r.domain), {})
            if len(accounts) == 1:
                ((acc, (rec, _src)),) = accounts.items()
                match = (acc, rec)
            elif accounts:
                why[r] = f"domain {r.domain} matches {len(accounts)} accounts"
        if match is not None:
            out[r] = match
    return out, why


def store_batch(
    *, session: Session, source: str, batch: Batch, now: datetime, primary: str = "salesforce"
) -> StoreReport:
    """Persist one batch and, in the same transaction, its watermark. CRM records are linked
    to their accounts (health.identity; `primary` is the CRM whose record leads)."""
    report = StoreReport(errors=len(batch.errors))
    errors = list(batch.errors)
    if batch.accounts:
        distinct = len({(r.source, r.external_id) for r in batch.accounts})
        unplaced: list = []
        n_changed, touched = link_records(
            session=session,
            records=batch.accounts,
            now=now,
            primary=primary,
            attach_only=batch.attach_only,
            unplaced=unplaced,
        )
        report.no_account = [no_account(r, why) for r, why in unplaced]
        errors += report.no_account
        report.errors += len(unplaced)
        report.upserted += n_changed
        report.unchanged += distinct - n_changed - len(unplaced)
        report.touched_accounts |= touched
    refs, ambiguous = resolve_refs(
        session=session,
        refs=[o.account for o in batch.observations] + [o.account for o in batch.outcomes],
        primary=primary,
    )

    def matched(rec: ObservationRecord | OutcomeRecord) -> Match | None:
        acc = refs.get(rec.account)
        if acc is None:
            key = ambiguous.get(rec.account) or rec.account.key()
            report.unmatched[key] = report.unmatched.get(key, 0) + 1
        return acc

    obs_rows = {}
    for o in batch.observations:
        if (m := matched(o)) is not None:
            acc, rec = m
            key = (rec, o.signal, o.observed_at, o.source)
            obs_rows[key] = {
                "account_id": acc,
                "record_id": rec,
                "signal": o.signal,
                "observed_at": o.observed_at,
                "value": float(o.value),
                "source": o.source,
            }
    written = upsert(
        session,
        Observation,
        list(obs_rows.values()),
        keys=("record_id", "signal", "observed_at", "source"),
        update=("value",),
        returning=("account_id",),
    )
    report.upserted += len(written)
    report.unchanged += len(obs_rows) - len(written)
    report.touched_accounts |= {acc for (acc,) in written}  # only accounts whose data changed

    out_rows = {}
    for o in batch.outcomes:
        if (m := matched(o)) is not None:
            acc, rec = m
            out_rows[(rec, o.kind, o.occurred_on)] = {
                "account_id": acc,
                "record_id": rec,
                "kind": o.kind,
                "occurred_on": o.occurred_on,
                "arr_change": o.arr_change,
                "source": o.source,
                "external_id": o.external_id,
            }
    written = len(
        upsert(
            session,
            Outcome,
            list(out_rows.values()),
            keys=("record_id", "kind", "occurred_on"),
            update=("arr_change", "external_id"),
        )
    )
    report.upserted += written
    report.unchanged += len(out_rows) - written

    if errors:  # one row per distinct problem: a rerun refreshes seen_at, adds nothing
        distinct_errors = {(e.source, e.key[:128], e.reason): e for e in errors}
        upsert(
            session,
            SyncError,
            [
                {"source": s, "record_key": k, "reason": r, "seen_at": now}
                for s, k, r in distinct_errors
            ],
            keys=("source", "record_key", "reason"),
            update=("seen_at",),
        )
    if batch.watermark is not None:
        set_watermark(session=session, source=source, watermark=batch.watermark, now=now)
    session.flush()
    return report


def no_account(rec: AccountRecord, ambiguous: str | None = None) -> RecordError:
    """The sync error of a customer (attach_only) that matches no account (or, by its domain,
    several: `ambiguous` says so)."""
    how = [f"no account has the CRM id {rec.cross_ref}"] if rec.cross_ref else []
    if ambiguous:
        how.append(ambiguous)
    else:
        how.append(f"no account has the domain {rec.domain}" if rec.domain else "no email domain")
    return RecordError(rec.source, rec.external_id, "matches no account: " + ", ".join(how))


def get_watermark(*, session: Session, source: str) -> str | None:
    state = session.get(SyncState, source)
    return state.watermark if state else None


def set_watermark(
    *, session: Session, source: str, watermark: str, now: datetime, report: dict | None = None
) -> None:
    state = session.get(SyncState, source) or SyncState(source=source, updated_at=now)
    state.watermark = watermark
    state.updated_at = now
    if report is not None:
        state.last_report = report
    session.add(state)


def utcnow() -> datetime:
    return datetime.now(UTC)


def accounts_by_id(*, session: Session, ids: Sequence[int], columns: Sequence[str]) -> list[Any]:
    """The given columns (and id) of the accounts `ids`, as plain rows ordered by id."""
    cols = [Account.id] + [getattr(Account, c) for c in columns]
    if session.get_bind().dialect.name == "postgresql":
        where = Account.id == func.any(bindparam("ids", list(ids), type_=ARRAY(Integer)))
    else:
        where = Account.id.in_(list(ids))
    return list(session.execute(select(*cols).where(where).order_by(Account.id)))


def bulk_upsert(
    session: Session,
    table: type[SQLModel],
    rows: Sequence[dict],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    returning: Sequence[str] = (),
    index_where: str | None = None,
) -> list[tuple]:
    """`upsert` (always updating) for many rows at once. On PostgreSQL: COPY into a temporary
    table, then one INSERT ... SELECT ... ON CONFLICT; elsewhere `upsert` itself."""
    if not rows or session.get_bind().dialect.name != "postgresql":
        return upsert(
            session,
            table,
            rows,
            keys=keys,
            update=update,
            only_if_changed=False,
            returning=returning,
            index_where=index_where,
        )
    from psycopg.types.json import Json

    tbl = table.__table__  # type: ignore[attr-defined]
    cols = list(rows[0])
    jsons = {c for c in cols if isinstance(tbl.c[c].type, JSON)}
    tmp = f"_bulk_{tbl.name}_{len(cols)}"
    names = ", ".join(cols)
    conn = session.connection()
    conn.exec_driver_sql(  # emptied at commit; the DELETE is for an earlier call in this one
        f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ON COMMIT DELETE ROWS AS"
        f" SELECT {names} FROM {tbl.name} WITH NO DATA; DELETE FROM {tmp}"
    )
    raw = conn.connection.driver_connection  # COPY: a statement SQLAlchemy does not see
    with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({names}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([Json(row[c], dumps=orjson.dumps) if c in jsons else row[c] for c in cols])
    sets = ", ".join(f"{c} = excluded.{c}" for c in update)
    ret = ", ".join(returning or [c.name for c in tbl.primary_key.columns])
    action = f"UPDATE SET {sets}" if update else "NOTHING"
    result = conn.exec_driver_sql(
        f"INSERT INTO {tbl.name} ({names}) SELECT {names} FROM {tmp}"
        f" ON CONFLICT ({', '.join(keys)}){f' WHERE {index_where}' if index_where else ''}"
        f" DO {action} RETURNING {ret}"
    )
    return result.cursor.fetchall()  # plain tuples, fetched at once
