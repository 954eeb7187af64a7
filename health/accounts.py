"""Finding the one account a person means: by name, domain or CRM id, fuzzily. Shared by the
CLI, the Slack bot and anything else a person types an account into."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select, union
from sqlmodel import Session

from health.identity import find_record, merge, unlink
from health.models import Account, CrmRecord


class AccountLookupError(LookupError):
    """No account, or several, match what was asked; `candidates` holds the closest."""

    def __init__(self, message: str, candidates: list[Account]):
        super().__init__(message)
        self.candidates = candidates


def label(a: Account) -> str:
    return f"{a.name} ({a.domain})" if a.domain else a.name


def _is_exact(a: Account, q: str) -> bool:
    return q in (a.name.lower(), (a.domain or ""), a.external_id.lower())


def resolve_account(*, session: Session, query: str) -> Account:
    """The account `query` names: an exact name, domain or CRM id wins; a single fuzzy match
    will do; otherwise AccountLookupError lists the candidates."""
    q = query.strip().lower()
    exact = [a for a in exact_accounts(session=session, query=query) if _is_exact(a, q)]
    if len(exact) == 1:  # the common case, read through equality indexes only
        return exact[0]
    found = find_accounts(session=session, query=query)
    if not found:
        raise AccountLookupError(f"no account matches {query!r}", [])
    exact = [a for a in found if _is_exact(a, q)]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    names = ", ".join(label(a) for a in found[:5])
    raise AccountLookupError(
        f"{query!r} matches {len(found)} accounts: {names} — be more specific", found
    )


# Built once: composing these per call costs more Python than running them. `q` is the
# lower-cased query, `raw` the query as typed (CRM ids are matched as typed), `pattern` %q%.
_EXACT_CAP = 20
_EXACT = (
    select(Account)
    .where(Account.deleted_at.is_(None))
    .where(
        Account.id.in_(
            union(  # each part an equality lookup on its own index (ix_account_name_lower …)
                select(Account.id).where(func.lower(Account.name) == bindparam("q")),
                select(Account.id).where(Account.domain == bindparam("q")),
                select(CrmRecord.account_id).where(CrmRecord.external_id == bindparam("raw")),
            )
        )
    )
    .limit(_EXACT_CAP)
)
_FUZZY = union(
    select(Account.id).where(func.lower(Account.name).like(bindparam("pattern"))),
    select(Account.id).where(func.lower(Account.domain).like(bindparam("pattern"))),
    select(CrmRecord.account_id).where(CrmRecord.external_id == bindparam("raw")),
    select(CrmRecord.account_id).where(func.lower(CrmRecord.name).like(bindparam("pattern"))),
    select(CrmRecord.account_id).where(func.lower(CrmRecord.domain).like(bindparam("pattern"))),
).subquery()
_MATCHING = (
    select(Account)
    .where(Account.deleted_at.is_(None))
    .where(Account.id.in_(select(_FUZZY.c.id)))
    .limit(200)
)


def exact_accounts(*, session: Session, query: str) -> list[Account]:
    """The accounts whose name (any case) or domain is `query`, or whose CRM record has it
    as id: a superset of the exact matches `find_accounts` would rank first. Empty when
    there are so many that the fuzzy ranking should decide (more than a page)."""
    q = query.strip()
    if not q:
        return []
    rows = session.execute(_EXACT, {"q": q.lower(), "raw": q}).scalars().all()
    return list(rows) if len(rows) < _EXACT_CAP else []


def find_accounts(*, session: Session, query: str, limit: int = 8) -> list[Account]:
    """Accounts whose name or domain, or any linked record's, matches `query`, best first
    (exact, prefix, substring). Each part is its own indexed lookup (trigram indexes on
    PostgreSQL), unioned, so no lookup scans every account."""
    q = query.strip().lower()
    if not q:
        return []
    params = {"pattern": f"%{q}%", "raw": query.strip()}
    rows = session.execute(_MATCHING, params).scalars().all()

    def rank(a: Account) -> tuple[int, str]:
        name, dom = a.name.lower(), (a.domain or "")
        if q in (name, dom, a.external_id.lower()) or dom.split(".")[0] == q:
            return 0, name
        if name.startswith(q) or dom.startswith(q):
            return 1, name
        return 2, name

    return sorted(rows, key=rank)[:limit]


def link_accounts(
    *, session: Session, first: str, second: str, now: datetime, primary: str
) -> tuple[Account, Account]:
    """A person says `first` and `second` are one customer: the account led by the primary
    CRM (else `first`) keeps the other's records, observations and outcomes; the other stays
    behind, merged, with its score history. Returns (kept, absorbed)."""
    a = resolve_account(session=session, query=first)
    b = resolve_account(session=session, query=second)
    keep, absorb = (b, a) if b.source == primary and a.source != primary else (a, b)
    merge(session=session, keep=keep.id, absorb=absorb.id, now=now, primary=primary)
    return keep, absorb


def unlink_record(
    *, session: Session, record: str, now: datetime, primary: str
) -> tuple[int, Account]:
    """A person says the record `record` (SOURCE:ID) is not this customer: it leaves for an
    account of its own (the one it came from, when a link absorbed it), taking the
    observations and outcomes that came in for it. Returns (the account it left, its new)."""
    found = find_record(session=session, query=record)
    left = found.account_id
    return left, unlink(session=session, record=found, now=now, primary=primary)
