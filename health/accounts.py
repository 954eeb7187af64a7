"""Finding the one account a person means: by name, domain or CRM id, fuzzily. Shared by the
CLI, the Slack bot and anything else a person types an account into."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from health.identity import find_record, merge, unlink
from health.models import Account
from health.repo import find_accounts


class AccountLookupError(LookupError):
    """No account, or several, match what was asked; `candidates` holds the closest."""

    def __init__(self, message: str, candidates: list[Account]):
        super().__init__(message)
        self.candidates = candidates


def label(a: Account) -> str:
    return f"{a.name} ({a.domain})" if a.domain else a.name


def resolve_account(*, session: Session, query: str) -> Account:
    """The account `query` names: an exact name, domain or CRM id wins; a single fuzzy match
    will do; otherwise AccountLookupError lists the candidates."""
    found = find_accounts(session=session, query=query)
    if not found:
        raise AccountLookupError(f"no account matches {query!r}", [])
    q = query.strip().lower()
    exact = [a for a in found if q in (a.name.lower(), (a.domain or ""), a.external_id.lower())]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    names = ", ".join(label(a) for a in found[:5])
    raise AccountLookupError(
        f"{query!r} matches {len(found)} accounts: {names} — be more specific", found
    )


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
