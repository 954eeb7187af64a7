"""One customer, one account: CRM records linked to the account they belong to.

Rules, in order, for a record seen for the first time: an explicit cross-reference (its id in
another CRM, e.g. the Salesforce account id a HubSpot company carries; either side may name
the other), then the normalised domain. Ambiguity is left for a person, never guessed: a
domain two records of one CRM claim, or one that matches two accounts, keeps the record on an
account of its own with the reason in `review`. A person's link or unlink pins the record;
syncs never move a pinned record. Accounts take their fields from their records: the primary
CRM's record leads, the others fill its gaps.

Linking a batch costs a fixed handful of queries (records by key, cross-references, domains,
the accounts' records), whatever its size. `merge` and `unlink` move records with their
observations and outcomes; an absorbed account stays behind (`merged_into`) with its score
history, and comes back when its record is unlinked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, tuple_, update
from sqlmodel import Session

from health.models import Account, CrmRecord, CrmWrite, Observation, OutboxItem, Outcome
from health.records import AccountRecord

CHUNK = 1000
FIELDS = ("name", "domain", "owner", "segment", "arr", "customer_since", "renewal_date")
Key = tuple[str, str]  # (source, external_id)


class LinkError(ValueError):
    """A link or unlink a person asked for that cannot be done, and why."""


def normalise_domain(domain: str | None) -> str | None:
    if not domain:
        return None
    d = domain.strip().lower().removeprefix("https://").removeprefix("http://")
    d = d.split("/", 1)[0].removeprefix("www.")
    return d or None


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _values(rec: AccountRecord, now: datetime, row: CrmRecord | None) -> dict:
    values = {f: getattr(rec, f) for f in FIELDS}
    values["domain"] = normalise_domain(rec.domain)
    values["cross_ref"] = rec.cross_ref or None
    values["deleted_at"] = ((row and row.deleted_at) or now) if rec.deleted else None
    return values


def link_records(
    *,
    session: Session,
    records: Sequence[AccountRecord],
    now: datetime,
    primary: str,
    attach_only: bool = False,
    unplaced: list[tuple[AccountRecord, str | None]] | None = None,
) -> tuple[int, set[int]]:
    """Store a batch of CRM records and link each to its account. Returns how many records
    were new or changed, and the accounts whose fields or records changed.

    `attach_only`: the records describe customers of accounts the CRMs hold (a billing
    system's customers): a new one that matches no account by cross-reference or domain gets no
    account of its own; it is left out and appended to `unplaced` with why when it was
    ambiguous (a domain on several accounts), for the caller to record.
    Several of them may share a domain, and a changed cross-reference never merges accounts."""
    by_key = {(r.source, r.external_id): r for r in records}  # the last word on a key wins
    stored = _records_by_key(session, list(by_key))
    touched: set[int] = set()
    fresh: list[CrmRecord] = []
    moved: list[tuple[CrmRecord, str]] = []  # existing records whose cross-reference changed
    updated = 0
    for key, rec in by_key.items():
        row = stored.get(key)
        values = _values(rec, now, row)
        if row is None:
            row = CrmRecord(source=key[0], external_id=key[1], account_id=0, updated_at=now)
            row.sqlmodel_update(values)
            stored[key] = row
            fresh.append(row)
            continue
        if any(getattr(row, f) != v for f, v in values.items()):
            changed_ref = values["cross_ref"] != row.cross_ref and values["cross_ref"]
            if changed_ref and not row.pinned and not attach_only:
                moved.append((row, values["cross_ref"]))
            row.sqlmodel_update(values)
            row.updated_at = now
            touched.add(row.account_id)
            updated += 1
    if fresh:
        touched |= _place(session, fresh, primary=primary, now=now, attach_only=attach_only)
        left_out = [r for r in fresh if not r.account_id]
        if unplaced is not None:
            unplaced.extend((by_key[(r.source, r.external_id)], r.review) for r in left_out)
        fresh = [r for r in fresh if r.account_id]
    if moved:  # a cross-reference that joins two existing accounts merges them
        targets = _records_by_external_id(session, [ref for _, ref in moved])
        pairs: dict[int, int] = {}  # absorbed account -> kept account
        for row, ref in moved:
            target = targets.get(ref)
            if target and target.account_id != row.account_id:
                keep, gone = sorted((target, row), key=lambda r: _rank(r, primary))
                pairs[gone.account_id] = keep.account_id
                row.linked_by = "cross_ref"
        session.flush()
        touched |= merge_accounts(session=session, pairs=pairs, now=now, primary=primary)
    session.flush()
    touched |= refresh_accounts(session=session, ids=touched, now=now, primary=primary)
    return len(fresh) + updated, touched


def _records_by_key(session: Session, keys: list[Key]) -> dict[Key, CrmRecord]:
    out = {}
    for part in _chunks(keys):
        q = select(CrmRecord).where(tuple_(CrmRecord.source, CrmRecord.external_id).in_(part))
        out.update({(r.source, r.external_id): r for r in session.exec(q).scalars()})
    return out


def _records_by_external_id(session: Session, ids: Iterable[str]) -> dict[str, CrmRecord]:
    out = {}
    for part in _chunks(sorted(set(ids))):
        q = select(CrmRecord).where(CrmRecord.external_id.in_(part)).order_by(CrmRecord.id)
        for r in session.exec(q).scalars():
            out.setdefault(r.external_id, r)
    return out


def _rank(r: CrmRecord, primary: str) -> tuple[int, int]:
    """Which record leads an account: the primary CRM's first, then the oldest."""
    return (r.source != primary, r.id or 0)


def _place(
    session: Session,
    fresh: list[CrmRecord],
    *,
    primary: str,
    now: datetime,
    attach_only: bool = False,
) -> set[int]:
    """Give each new record an account: by cross-reference (either direction), else by
    domain, else a new one; ambiguous cases get their own account and a `review` note.
    `attach_only`: never a new account; a record matching none keeps account_id 0 and is not
    stored."""
    ext_ids = {r.external_id for r in fresh}
    refs = {r.cross_ref for r in fresh if r.cross_ref}
    by_ext = _records_by_external_id(session, refs)
    naming: dict[str, CrmRecord] = {}  # external id -> a stored record whose cross_ref names it
    for part in _chunks(sorted(ext_ids)):
        for r in session.exec(select(CrmRecord).where(CrmRecord.cross_ref.in_(part))).scalars():
            naming.setdefault(r.cross_ref, r)
    domains = sorted({r.domain for r in fresh if r.domain})
    on_domain: dict[str, list[CrmRecord]] = defaultdict(list)
    for part in _chunks(domains):
        live = select(CrmRecord).where(CrmRecord.domain.in_(part), CrmRecord.deleted_at.is_(None))
        for r in session.exec(live).scalars():
            on_domain[r.domain].append(r)
    for r in fresh:  # new records join the domain's claimants, for duplicates in one batch
        if r.domain and r.deleted_at is None:
            on_domain[r.domain].append(r)
    # records with a cross-reference last: what they name may be placed in this batch
    in_batch = {r.external_id: r for r in fresh}
    owner: dict[int, Account | int] = {}  # id(record) -> its account (new ones not yet stored)

    def account_of(r: CrmRecord) -> Account | int | None:
        return r.account_id or owner.get(id(r))

    for r in sorted(fresh, key=lambda r: (r.cross_ref is not None, _rank(r, primary))):
        named = by_ext.get(r.cross_ref) or in_batch.get(r.cross_ref) if r.cross_ref else None
        target = named or naming.get(r.external_id)
        if target is not None and account_of(target):
            owner[id(r)], r.linked_by = account_of(target), "cross_ref"
        elif r.domain:
            claimants = on_domain[r.domain]
            if attach_only:  # a customer's siblings in its own system do not make it ambiguous
                claimants = [c for c in claimants if c.source != r.source]
            found = _by_domain(r, claimants, account_of)
            if found is not None:
                owner[id(r)], r.linked_by = found, "domain"
        if id(r) not in owner and not attach_only:
            owner[id(r)] = _new_account(r, now)
    fresh = [r for r in fresh if id(r) in owner]
    made = list({id(a): a for a in owner.values() if isinstance(a, Account)}.values())
    if made:  # multi-row INSERTs (each new account comes from one record: its key maps back)
        table = Account.__table__  # type: ignore[attr-defined]
        back = table.insert().returning(table.c.id, table.c.source, table.c.external_id)
        rows = session.execute(back, [a.model_dump(exclude={"id"}) for a in made]).all()
        ids = {(src, ext): new_id for new_id, src, ext in rows}
        for a in made:
            a.id = ids[(a.source, a.external_id)]
    for r in fresh:
        acc = owner[id(r)]
        r.account_id = acc.id if isinstance(acc, Account) else acc
        if r.linked_by == "new":
            r.home_account_id = r.account_id
    table = CrmRecord.__table__  # type: ignore[attr-defined]
    if fresh:
        session.execute(table.insert(), [r.model_dump(exclude={"id"}) for r in fresh])
    return {r.account_id for r in fresh}


def _by_domain(r: CrmRecord, claimants: list[CrmRecord], account_of) -> Account | int | None:
    """The one account `r`'s domain points to, or None (with the reason in `r.review` when
    the domain is ambiguous)."""
    others = [c for c in claimants if c is not r]
    same_crm = [c for c in others if c.source == r.source]
    accounts = {a if isinstance(a, int) else id(a): a for c in others if (a := account_of(c))}
    if same_crm:  # every claimant is listed, the ones stored before (and linked) too
        ids = sorted({r.external_id, *(c.external_id for c in same_crm)})
        r.review = (
            f"domain {r.domain} is claimed by {len(ids)} {r.source} records ({', '.join(ids)})"
        )
        for c in same_crm:
            if not c.pinned:
                c.review = r.review
    elif len(accounts) > 1:
        r.review = f"domain {r.domain} matches {len(accounts)} accounts"
    elif accounts:
        return next(iter(accounts.values()))
    return None


def _new_account(r: CrmRecord, now: datetime) -> Account:
    return Account(
        source=r.source,
        external_id=r.external_id,
        updated_at=now,
        deleted_at=r.deleted_at,
        **{f: getattr(r, f) for f in FIELDS},
    )


def refresh_accounts(*, session: Session, ids: Iterable[int], now: datetime, primary: str):
    """Derive each account's fields from its records (the primary CRM's leads, the others fill
    its gaps; gone when every record is). Returns the accounts that changed."""
    ids = sorted(set(ids))
    records: dict[int, list[CrmRecord]] = defaultdict(list)
    accounts: dict[int, Account] = {}
    for part in _chunks(ids):
        q = select(CrmRecord).where(CrmRecord.account_id.in_(part))
        for r in session.exec(q.execution_options(populate_existing=True)).scalars():
            records[r.account_id].append(r)  # afresh: a merge may have moved them in SQL
        q = select(Account).where(Account.id.in_(part)).execution_options(populate_existing=True)
        accounts.update({a.id: a for a in session.exec(q).scalars()})
    changed = set()
    for acc_id, account in accounts.items():
        recs = sorted(records.get(acc_id, []), key=lambda r: _rank(r, primary))
        live = [r for r in recs if r.deleted_at is None] or recs
        if not live or account.merged_into is not None:
            continue
        values = {f: next((getattr(r, f) for r in live if getattr(r, f) is not None), None)
                  for f in FIELDS}  # fmt: skip
        values["name"] = values["name"] or live[0].name
        values["source"], values["external_id"] = live[0].source, live[0].external_id
        gone = all(r.deleted_at is not None for r in recs)
        values["deleted_at"] = (account.deleted_at or now) if gone else None
        if any(getattr(account, f) != v for f, v in values.items()):
            account.sqlmodel_update(values)
            account.updated_at = now
            changed.add(acc_id)
    session.flush()
    return changed


def _move_data(session: Session, *, record_ids: Sequence[int] | None, src: int, dst: int):
    """Observations, outcomes and writeback rows of `src` (or of just these records) move to
    `dst`. Natural keys are per record, so nothing collides."""
    for table in (Observation, Outcome, OutboxItem, CrmWrite):
        q = update(table).where(table.account_id == src)
        if record_ids is not None:
            q = q.where(table.record_id.in_(record_ids))
        session.execute(q.values(account_id=dst))


def _each(session: Session, model, params: list[dict], where, **values) -> None:
    """One executemany UPDATE of `model`'s table: `where` and `values` use :src / :dst."""
    if params:
        table = model.__table__
        session.connection().execute(table.update().where(where(table)).values(**values), params)


def merge_accounts(
    *,
    session: Session,
    pairs: dict[int, int],
    now: datetime,
    primary: str,
    pinned: bool = False,
) -> set[int]:
    """Join each absorbed account to the account it maps to (`pairs`: absorbed -> kept), all
    at once: records, observations, outcomes and writeback rows move in one statement per
    table; the absorbed accounts stay behind, merged, each with its own score history."""
    final = {}
    for gone, keep in pairs.items():  # a kept account absorbed in the same batch: follow it
        seen = {gone}
        while keep in pairs and keep not in seen:
            seen.add(keep)
            keep = pairs[keep]
        if keep != gone:
            final[gone] = keep
    params = [{"src": gone, "dst": keep} for gone, keep in final.items()]
    src, dst = bindparam("src"), bindparam("dst")
    _each(session, CrmRecord, params,
          lambda t: (t.c.account_id == src) & t.c.home_account_id.is_(None),
          home_account_id=src)  # fmt: skip
    moving = {"account_id": dst, "review": None}
    if pinned:
        moving.update(pinned=True, linked_by="manual")
    _each(session, CrmRecord, params, lambda t: t.c.account_id == src, **moving)
    if pinned:  # a person decided: the kept account's own records are settled too
        _each(session, CrmRecord, params, lambda t: t.c.account_id == dst, review=None,
              pinned=True)  # fmt: skip
    for model in (Observation, Outcome, OutboxItem, CrmWrite):
        _each(session, model, params, lambda t: t.c.account_id == src, account_id=dst)
    _each(session, Account, params, lambda t: t.c.id == src,
          merged_into=dst, deleted_at=now, updated_at=now)  # fmt: skip
    kept = set(final.values())
    return kept | refresh_accounts(session=session, ids=kept, now=now, primary=primary)


def merge(
    *,
    session: Session,
    keep: int,
    absorb: int,
    now: datetime,
    primary: str,
    pinned: bool = True,
) -> set[int]:
    """Join account `absorb` to `keep` (a person's link: pinned). Returns the accounts that
    changed."""
    if keep == absorb:
        raise LinkError("both name the same account")
    gone = session.get(Account, absorb)
    if gone is None or gone.merged_into is not None or session.get(Account, keep) is None:
        raise LinkError("one of the accounts no longer exists (merged already?)")
    session.flush()
    return merge_accounts(
        session=session, pairs={absorb: keep}, now=now, primary=primary, pinned=pinned
    )


def unlink(*, session: Session, record: CrmRecord, now: datetime, primary: str) -> Account:
    """Take `record` off its account onto one of its own (the account it came from, when a
    link absorbed it), with the observations and outcomes that came in for it. Pinned: syncs
    leave it there."""
    current = record.account_id
    others = session.exec(
        select(CrmRecord.id).where(CrmRecord.account_id == current, CrmRecord.id != record.id)
    ).first()
    if others is None:
        raise LinkError(f"{record.source} {record.external_id} is the account's only record")
    home = session.get(Account, record.home_account_id) if record.home_account_id else None
    if home is not None and home.merged_into in (current, None) and home.id != current:
        home.merged_into, home.deleted_at, home.updated_at = None, None, now
    else:
        home = _new_account(record, now)
        session.add(home)
        session.flush()
    record.account_id, record.pinned, record.linked_by = home.id, True, "manual"
    record.home_account_id = None
    session.add(record)
    session.flush()
    _move_data(session, record_ids=[record.id], src=current, dst=home.id)
    refresh_accounts(session=session, ids=[current, home.id], now=now, primary=primary)
    return home


def records_of(*, session: Session, account_ids: Sequence[int]) -> dict[int, list[CrmRecord]]:
    out: dict[int, list[CrmRecord]] = defaultdict(list)
    for part in _chunks(sorted(set(account_ids))):
        q = select(CrmRecord).where(CrmRecord.account_id.in_(part)).order_by(CrmRecord.id)
        for r in session.exec(q).scalars():
            out[r.account_id].append(r)
    return out


def to_review(*, session: Session) -> list[CrmRecord]:
    """Records left on their own account because linking them was ambiguous."""
    q = select(CrmRecord).where(CrmRecord.review.is_not(None), CrmRecord.pinned.is_(False))
    return list(session.exec(q.order_by(CrmRecord.domain, CrmRecord.id)).scalars())


def find_record(*, session: Session, query: str) -> CrmRecord:
    """A record by `source:external_id` or by an external id only one record has."""
    source, sep, ext = query.strip().partition(":")
    q = select(CrmRecord).where(
        (CrmRecord.source == source) & (CrmRecord.external_id == ext)
        if sep
        else CrmRecord.external_id == query.strip()
    )
    found = list(session.exec(q).scalars())
    if len(found) != 1:
        what = "no record" if not found else f"{len(found)} records"
        raise LinkError(f"{what} with id {query!r}: use SOURCE:ID, e.g. salesforce:001...")
    return found[0]
