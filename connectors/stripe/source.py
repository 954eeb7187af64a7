"""The Stripe Source: customers (with their subscriptions' ARR), failed charges and overdue
invoices, read through the official library (connectors.stripe.client).

The design notes (what is read in which order, calls per run, the watermark, deletions)
are in docs/connectors.md, "Stripe: the source"."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from connectors.base import PermanentConnectorError
from connectors.stripe import mapping as mp
from connectors.stripe.client import StripeApi
from health.records import Batch, RecordError
from health.settings import Settings

EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.marked_uncollectible",
    "invoice.voided",
    "invoice.updated",
    "charge.failed",
)
EVENTS_KEPT = timedelta(days=29)  # Stripe keeps 30; a day's margin
# a mark no event of ours has moved for this long moves to the newest event of any type, so a
# quiet month does not age it past EVENTS_KEPT into a full re-read (one more request then)
STALE_MARK = timedelta(days=7)
FEW = 10  # changed customers read one subscriptions list each; more: one list of them all


def utcnow() -> datetime:
    return datetime.now(UTC)


def load_watermark(since: str | None) -> int | None:
    if not since:
        return None
    try:
        mark = json.loads(since)["events"]
        if isinstance(mark, bool) or not isinstance(mark, int):
            raise ValueError(mark)
        return mark
    except (ValueError, TypeError, KeyError) as exc:
        raise PermanentConnectorError(f"unreadable Stripe watermark {since!r}") from exc


def _dump(mark: int) -> str:
    return json.dumps({"events": mark})


class StripeSource:
    name: ClassVar[str] = mp.SOURCE

    def __init__(
        self,
        api: StripeApi,
        *,
        metadata_key: str = "crm_account_id",
        clock: Callable[[], datetime] = utcnow,
    ):
        self.api, self.metadata_key, self.clock = api, metadata_key, clock

    @property
    def api_calls(self) -> int:
        return self.api.api_calls

    def pull(self, since: str | None) -> Iterator[Batch]:
        mark, now = load_watermark(since), self.clock()
        if mark is None or datetime.fromtimestamp(mark, UTC) < now - EVENTS_KEPT:
            yield from self._everything(now)
        else:
            yield from self._changes(mark, now.date())

    # --- a first run ----------------------------------------------------------------------

    def _everything(self, now: datetime) -> Iterator[Batch]:
        newest = self.api.newest("events")
        mark = newest["created"] if newest else int(now.timestamp())
        arr: dict[str, float] = defaultdict(float)
        fetched = 0
        for page in self.api.pages("subscriptions", {"status": "all"}):
            fetched += len(page)
            for sub in page:
                if isinstance(sub.get("customer"), str):
                    arr[sub["customer"]] += mp.subscription_arr(sub)
        for page in self.api.pages("customers"):
            batch = Batch(fetched=len(page) + fetched, attach_only=True)
            fetched = 0
            for cus in page:
                self._add(batch, mp.customer_record(cus, arr.get(cus.get("id")), self.metadata_key))
            yield batch
        dues: dict[str, list[mp.Due]] = defaultdict(list)
        errors: list[RecordError] = []
        for page in self.api.pages("invoices"):
            fetched += len(page)
            for inv in page:
                due = mp.invoice_due(inv)
                if isinstance(due, RecordError):
                    errors.append(due)
                elif due is not None:
                    dues[due.customer].append(due)
        for page in self.api.pages("charges"):
            batch = Batch(fetched=len(page))
            for ch in page:
                self._add(batch, mp.failed_payment(ch))
            yield batch
        last = Batch(fetched=fetched, errors=errors, watermark=_dump(mark))
        for customer in sorted(dues):
            points = mp.days_late_series(dues[customer], now.date())
            last.observations += mp.days_late_observations(customer, points)
        yield last

    # --- later runs -----------------------------------------------------------------------

    def _changes(self, mark: int, today: date) -> Iterator[Batch]:
        customers: dict[str, tuple[dict, bool]] = {}  # id -> (newest object, deleted)
        subscribed: set[str] = set()  # customers whose subscriptions changed
        invoiced: set[str] = set()  # customers whose invoices changed
        batch, newest = Batch(fetched=0), mark
        params = {"created": {"gte": mark}, "types": list(EVENT_TYPES)}
        for page in self.api.pages("events", params):  # newest first
            batch.fetched = (batch.fetched or 0) + len(page)
            for evt in page:
                newest = max(newest, int(evt.get("created") or 0))
                obj, kind = (evt.get("data") or {}).get("object") or {}, evt.get("type", "")
                if kind.startswith("customer.subscription."):
                    if isinstance(obj.get("customer"), str):
                        subscribed.add(obj["customer"])
                elif kind.startswith("customer.") and isinstance(obj.get("id"), str):
                    customers.setdefault(obj["id"], (obj, kind == "customer.deleted"))
                elif kind.startswith("invoice.") and isinstance(obj.get("customer"), str):
                    invoiced.add(obj["customer"])
                elif kind == "charge.failed":
                    self._add(batch, mp.failed_payment(obj))
        quiet_since = datetime.combine(today, datetime.min.time(), tzinfo=UTC) - STALE_MARK
        if newest == mark and mark < quiet_since.timestamp():  # a quiet spell: move on
            latest = self.api.newest("events")  # what is listed now, of any type
            newest = max(mark, int(latest["created"])) if latest else mark
        if customers or subscribed:
            self._customers(batch, customers, subscribed)
        late: dict[str, list[mp.Due]] = defaultdict(list)
        for page in self.api.pages("invoices", {"status": "open"}):
            batch.fetched = (batch.fetched or 0) + len(page)
            for inv in page:
                due = mp.invoice_due(inv)
                if isinstance(due, mp.Due):
                    late[due.customer].append(due)
                elif isinstance(due, RecordError):  # recorded, as on a first run
                    batch.errors.append(due)
        for customer in sorted(set(late) | invoiced):
            days = mp.late_on(late.get(customer, ()), today)
            if days or customer in invoiced:
                batch.observations += mp.days_late_observations(customer, [(today, days)])
        batch.attach_only, batch.watermark = True, _dump(newest)
        yield batch

    def _customers(self, batch: Batch, changed: dict, subscribed: set[str]) -> None:
        """Changed customers, with the ARR of all their subscriptions (customers expanded: a
        subscription event names its customer by id only): for a few customers one list each
        (`customer=`), else one list of every subscription."""
        wanted = sorted(set(changed) | subscribed)
        params: dict[str, Any] = {"status": "all", "expand": ["data.customer"]}
        lists = [{**params, "customer": c} for c in wanted] if len(wanted) <= FEW else [params]
        arr: dict[str, float] = defaultdict(float)
        expanded: dict[str, dict] = {}
        for one in lists:
            for page in self.api.pages("subscriptions", one):
                batch.fetched = (batch.fetched or 0) + len(page)
                for sub in page:
                    cus = sub.get("customer")
                    cid = cus.get("id") if isinstance(cus, dict) else cus
                    if isinstance(cus, dict) and cid:
                        expanded[cid] = cus
                    if cid in changed or cid in subscribed:
                        arr[cid] += mp.subscription_arr(sub)
        for cid in wanted:
            cus, deleted = changed.get(cid) or (expanded.get(cid), False)
            if cus is not None:
                rec = mp.customer_record(cus, arr.get(cid), self.metadata_key, deleted=deleted)
                self._add(batch, rec)

    @staticmethod
    def _add(batch: Batch, out: Any) -> None:
        if isinstance(out, RecordError):
            batch.errors.append(out)
        elif isinstance(out, mp.AccountRecord):
            batch.accounts.append(out)
        elif out is not None:
            batch.observations.append(out)


def is_configured(settings: Settings) -> bool:
    return settings.stripe_api_key is not None


def build_client(settings: Settings, **http_opts: Any) -> StripeApi:
    """http_opts go to RetryingHttpClient (timeout, max_retries, sleep)."""
    if settings.stripe_api_key is None:
        raise PermanentConnectorError("Stripe is not configured: set STRIPE_API_KEY")
    return StripeApi(
        settings.stripe_api_key.get_secret_value(), settings.stripe_base_url, **http_opts
    )


def build_source(settings: Settings, *, clock: Callable[[], datetime] = utcnow, **http_opts):
    return StripeSource(
        build_client(settings, **http_opts),
        metadata_key=settings.stripe_account_metadata_key,
        clock=clock,
    )
