"""Zendesk Source: tickets via the cursor-based incremental export, one Batch per page.

The design notes (what is read in which order, calls per run, the watermark, deletions)
are in docs/connectors.md, "Zendesk: the source"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from connectors.base import PermanentConnectorError, TransientConnectorError
from connectors.zendesk.client import EXPORT_PAGE_MAX, ZendeskClient
from connectors.zendesk.mapping import (
    SOURCE,
    TicketState,
    oldest_open,
    open_tickets,
    org_ref,
    parse_ticket,
    ticket_observations,
)
from health.records import Batch, ObservationRecord, RecordError
from health.settings import Settings

REQUIRED = {
    "ZENDESK_BASE_URL": "zendesk_base_url",
    "ZENDESK_EMAIL": "zendesk_email",
    "ZENDESK_API_TOKEN": "zendesk_api_token",
}


class _State:
    """The export cursor plus the open ticket ids per organization."""

    def __init__(self, since: str | None):
        self.cursor: str | None = None
        self.open: dict[int, dict[int, float | None]] = {}  # org -> ticket -> created (unix)
        if since:
            try:
                data = json.loads(since)
                self.cursor = data.get("cursor")
                self.open = {
                    int(k): {int(t): v.get(t) if isinstance(v, dict) else None for t in v}
                    for k, v in data["open"].items()
                }
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise PermanentConnectorError(
                    f"stored zendesk watermark is unreadable ({exc}); reset it to resync"
                ) from exc
        self.org_of = {t: org for org, ids in self.open.items() for t in ids}

    def apply(self, t: TicketState, touched: dict[int, datetime]) -> None:
        old = self.org_of.pop(t.ticket_id, None)
        if old is not None:
            self.open[old].pop(t.ticket_id, None)
            if not self.open[old]:
                del self.open[old]
            touched[old] = max(touched.get(old, t.updated_at), t.updated_at)
        if t.org_id is None:
            return
        if t.is_open:
            self.open.setdefault(t.org_id, {})[t.ticket_id] = t.created_at.timestamp()
            self.org_of[t.ticket_id] = t.org_id
        touched[t.org_id] = max(touched.get(t.org_id, t.updated_at), t.updated_at)

    def oldest_days(self, org_id: int, at: datetime) -> float:
        tickets = self.open.get(org_id, {})
        for t, c in tickets.items():  # an older watermark's ticket: its age counts from now
            if c is None:
                tickets[t] = at.timestamp()
        created = list(tickets.values())
        if not created:
            return 0.0
        return round(max(0.0, (at.timestamp() - min(created)) / 86400), 2)

    def dumps(self) -> str:
        open_ = {
            str(k): {str(t): c for t, c in sorted(v.items())} for k, v in sorted(self.open.items())
        }
        return json.dumps({"cursor": self.cursor, "open": open_}, separators=(",", ":"))


class ZendeskSource:
    name: ClassVar[str] = SOURCE

    def __init__(
        self, client: ZendeskClient, *, start_time: int = 0, per_page: int = EXPORT_PAGE_MAX
    ):
        self.client = client
        self.start_time = start_time  # unix seconds for the very first export
        self.per_page = per_page

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def pull(self, since: str | None) -> Iterator[Batch]:
        state = _State(since)
        while True:
            page = self.client.export_tickets(
                cursor=state.cursor, start_time=self.start_time, per_page=self.per_page
            )
            previous = state.cursor
            batch = self._batch(page, state)
            state.cursor = page.get("after_cursor") or state.cursor
            batch.watermark = state.dumps()
            yield batch
            if page.get("end_of_stream"):
                return
            if not page.get("after_cursor") or page.get("after_cursor") == previous:
                raise TransientConnectorError("Zendesk export page without a new after_cursor")

    def _batch(self, page: dict[str, Any], state: _State) -> Batch:
        tickets = page["tickets"]
        metrics = _by_key(page.get("metric_sets"), "ticket_id")
        orgs = _by_key(page.get("organizations"), "id")
        parsed: list[TicketState] = []
        errors: list[RecordError] = []
        touched: dict[int, datetime] = {}
        for raw in tickets:
            ticket_id = raw.get("id") if isinstance(raw, dict) else None
            t = parse_ticket(raw, metrics.get(ticket_id))
            if isinstance(t, RecordError):
                errors.append(t)
                continue
            parsed.append(t)
            state.apply(t, touched)
        needed = {t.org_id for t in parsed if t.org_id is not None} | set(touched)
        if missing := needed - set(orgs):
            orgs.update(_by_key(self.client.show_organizations(missing), "id"))
        refs = {org_id: org_ref(orgs.get(org_id), org_id) for org_id in needed}
        observations: list[ObservationRecord] = [
            obs
            for t in parsed
            if t.org_id is not None
            for obs in ticket_observations(t, refs[t.org_id])
        ]
        for org_id, at in sorted(touched.items()):
            observations.append(open_tickets(refs[org_id], len(state.open.get(org_id, ())), at))
            observations.append(oldest_open(refs[org_id], state.oldest_days(org_id, at), at))
        return Batch(observations=observations, errors=errors, fetched=len(tickets))


def _by_key(items: Any, key: str) -> dict[Any, dict]:
    if not isinstance(items, list):
        return {}
    return {i[key]: i for i in items if isinstance(i, dict) and i.get(key) is not None}


def is_configured(settings: Settings) -> bool:
    return all(getattr(settings, attr) for attr in REQUIRED.values())


def build_source(settings: Settings, **client_options: Any) -> ZendeskSource:
    """A ZendeskSource from settings; `client_options` go to ZendeskClient (timeouts, sleep)."""
    missing = [var for var, attr in REQUIRED.items() if not getattr(settings, attr)]
    if missing:
        raise PermanentConnectorError(f"Zendesk is not configured: set {', '.join(missing)}")
    token = settings.zendesk_api_token.get_secret_value()  # type: ignore[union-attr]
    client = ZendeskClient(
        settings.zendesk_base_url,  # type: ignore[arg-type]
        settings.zendesk_email,  # type: ignore[arg-type]
        token,
        **client_options,
    )
    return ZendeskSource(client)
