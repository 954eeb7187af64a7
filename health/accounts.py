"""Finding the one account a person means: by name, domain or CRM id, fuzzily. Shared by the
CLI, the Slack bot and anything else a person types an account into."""

from __future__ import annotations

from sqlmodel import Session

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
