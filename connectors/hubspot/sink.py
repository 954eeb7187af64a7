"""HubSpot as a ScoreSink: scores onto company properties, 100 companies per batch update.

Properties (`PROPERTIES`, renamed with HUBSPOT_SCORE_PROPERTIES) live in the "Customer health"
group: health_score, health_tier, health_trend_30d, health_drivers, health_updated_at.
`ensure_properties()` creates the group and whichever properties are missing (1 GET; when
something is missing, 1 group POST + 1 batch create), and adds the tier options an existing
health_tier lacks (a portal set up before the "insufficient" tier: 1 PATCH with the whole
option list, the portal's own options kept first).
`write()` sends `POST /crm/v3/objects/companies/batch/update` per 100 rows and reports every
row: acknowledged, or the reason from the 207 `errors[]`. A request that fails as a whole
(429 or 5xx past the client's short retry) raises, so the outbox keeps its rows.
Our writes bump `hs_lastmodifieddate`, so the next pull re-reads those companies; that costs
a search page, never a duplicate (upserts are idempotent) and never a rescore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from connectors.base import UNKNOWN_TIER, AuthConnectorError, PermanentConnectorError, renamed
from connectors.hubspot.client import BATCH_LIMIT, HubSpotClient
from connectors.hubspot.source import build_client
from health.records import ScoreWrite, WriteError, WriteResult
from health.settings import Settings

GROUP, GROUP_LABEL = "customer_health", "Customer health"
TIERS = ("healthy", "monitor", "at_risk", "critical", "insufficient")  # last: no tier claimed
LABELS = {"insufficient": "Insufficient data"}
PROPERTIES = {
    "score": {"name": "health_score", "label": "Health Score", "type": "number",
              "fieldType": "number"},
    "tier": {"name": "health_tier", "label": "Health Tier", "type": "enumeration",
             "fieldType": "select", "options": [
                 {"label": LABELS.get(t, t.replace("_", " ").title()), "value": t,
                  "displayOrder": i, "hidden": False}
                 for i, t in enumerate(TIERS)]},
    "trend_30d": {"name": "health_trend_30d", "label": "Health 30-day trend", "type": "number",
                  "fieldType": "number"},
    "drivers": {"name": "health_drivers", "label": "Health drivers", "type": "string",
                "fieldType": "textarea"},
    "updated_at": {"name": "health_updated_at", "label": "Health updated at",
                   "type": "datetime", "fieldType": "date"},
}  # fmt: skip
INVALID_OPTION = "INVALID_OPTION"  # an enumeration value the property does not offer
TRANSIENT_CATEGORIES = frozenset({"RATE_LIMITS", "LOCKED", "TIMEOUT", "SERVICE_UNAVAILABLE"})
DRIVERS_MAX = 65_536


@dataclass
class PropertiesSetup:
    created: list[str] = field(default_factory=list)  # property names
    updated: dict[str, list[str]] = field(default_factory=dict)  # property -> option values added


def missing_options(definition: dict, existing: dict) -> list[dict]:
    """The options of our `definition` that the portal's enumeration property lacks."""
    if definition.get("type") != "enumeration" or existing.get("type") != "enumeration":
        return []
    have = {str(o.get("value")) for o in existing.get("options") or []}
    return [o for o in definition.get("options") or [] if o["value"] not in have]


def all_options(existing: dict, added: list[dict]) -> list[dict]:
    """The full option list for a PATCH (it replaces the list): the portal's options as they
    are, then ours, ordered after them."""
    kept = [
        {k: o[k] for k in ("label", "value", "displayOrder", "hidden", "description") if k in o}
        | {"hidden": bool(o.get("hidden", False))}
        for o in existing.get("options") or []
    ]
    start = max((int(o.get("displayOrder", -1)) for o in kept), default=-1) + 1
    return kept + [{**o, "displayOrder": start + i} for i, o in enumerate(added)]


def property_names(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The company property for each score field: the defaults with the admin's renames."""
    defaults = {key: p["name"] for key, p in PROPERTIES.items()}
    return renamed(defaults, overrides, "HUBSPOT_SCORE_PROPERTIES")


class HubSpotScoreSink:
    name: ClassVar[str] = "hubspot"
    max_batch: ClassVar[int] = BATCH_LIMIT

    def __init__(self, client: HubSpotClient, *, properties: Mapping[str, str] | None = None):
        self.client = client
        self.names = property_names(properties)

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def definitions(self) -> list[dict]:
        return [{**p, "name": self.names[k], "groupName": GROUP} for k, p in PROPERTIES.items()]

    def ensure_properties(self) -> PropertiesSetup:
        """Create the missing score properties (and their group), and add the options an
        existing tier property lacks."""
        have = {p.get("name"): p for p in self.client.properties("companies")}
        wanted = self.definitions()
        missing = [d for d in wanted if d["name"] not in have]
        result = PropertiesSetup()
        if missing:
            self.client.create_group("companies", GROUP, GROUP_LABEL)
            result.created = self.client.create_properties("companies", missing)
        for d in wanted:
            if d["name"] in have and (added := missing_options(d, have[d["name"]])):
                options = all_options(have[d["name"]], added)
                self.client.update_property("companies", d["name"], {"options": options})
                result.updated[d["name"]] = [o["value"] for o in added]
        return result

    def properties(self, row: ScoreWrite) -> dict[str, str]:
        n = self.names
        return {
            n["score"]: str(row.score),
            n["tier"]: row.tier,
            n["trend_30d"]: "" if row.trend_30d is None else f"{row.trend_30d:.1f}",
            n["drivers"]: row.drivers[:DRIVERS_MAX],
            n["updated_at"]: str(int(row.updated_at.timestamp() * 1000)),
        }

    def chunk_size(self, pending: int) -> int:
        return self.max_batch

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        result = WriteResult()
        for i in range(0, len(rows), self.max_batch):
            self._update({r.account_external_id: r for r in rows[i : i + self.max_batch]}, result)
        return result

    def _update(self, chunk: dict[str, ScoreWrite], result: WriteResult) -> None:
        """One batch update; per-company errors (a 207) are kept with HubSpot's words."""
        inputs = [{"id": k, "properties": self.properties(r)} for k, r in chunk.items()]
        try:
            done, errors = self.client.batch_update("companies", inputs)
        except PermanentConnectorError as exc:
            if isinstance(exc, AuthConnectorError) or INVALID_OPTION not in str(exc):
                raise  # anything else refusing the whole batch fails the flush: nothing parks
            self._refused(chunk, str(exc), result)
            return
        for err in errors:
            category, message = str(err.get("category", "ERROR")), str(err.get("message", ""))
            why = WriteError(category, self._hint(message), category in TRANSIENT_CATEGORIES)
            for oid in (err.get("context") or {}).get("ids") or []:
                if oid in chunk:
                    result.errors[oid] = why
        for obj in done:
            if (oid := str(obj.get("id"))) in chunk and oid not in result.errors:
                result.ok.append(oid)
        for oid in chunk:
            if oid not in result.errors and oid not in result.ok:
                result.errors[oid] = WriteError(
                    "NOT_ACKNOWLEDGED", "HubSpot returned no result", transient=True
                )

    def _refused(self, chunk: dict[str, ScoreWrite], message: str, result: WriteResult) -> None:
        """A batch refused whole (a 400 naming no company) for an option the portal lacks: the
        rows whose tier the message names park and the rest go again; when it names none of
        them, halves go again until the refused rows stand alone."""
        named = [k for k, r in chunk.items() if f"{r.tier} was not one of the" in message]
        if len(chunk) == 1:
            named = list(chunk)
        for k in named:
            result.errors[k] = WriteError("VALIDATION_ERROR", self._hint(message))
        rest = [(k, r) for k, r in chunk.items() if k not in named]
        if named:
            if rest:
                self._update(dict(rest), result)
            return
        self._update(dict(rest[: len(rest) // 2]), result)
        self._update(dict(rest[len(rest) // 2 :]), result)

    def _hint(self, message: str) -> str:
        """HubSpot's message, with what to do when the tier property lacks the option."""
        if INVALID_OPTION in message and f'"{self.names["tier"]}"' in message:
            return f"{message}; {UNKNOWN_TIER}"
        return message

    def read_fields(self, external_ids: Sequence[str]) -> dict[str, dict]:
        """What each company shows now: {id: {score field key: value (a string)}}, one batch
        read per 100 ids."""
        ids = list(dict.fromkeys(external_ids))
        objs = self.client.batch_read("companies", ids, list(self.names.values()))
        return {
            str(o.get("id")): {k: (o.get("properties") or {}).get(n) for k, n in self.names.items()}
            for o in objs
        }

    def already_written(self, rows: Sequence[ScoreWrite]) -> set[str]:
        """The ids whose company already shows exactly these values (checked after a crash
        between HubSpot's acknowledgement and ours)."""
        shown = self.read_fields([r.account_external_id for r in rows])
        return {
            r.account_external_id
            for r in rows
            if (v := shown.get(r.account_external_id)) is not None
            and v["score"] not in (None, "")
            and float(v["score"]) == r.score
            and v["tier"] == r.tier
            and (v["drivers"] or "") == r.drivers[:DRIVERS_MAX]
        }


def build_sink(settings: Settings, **client_opts) -> HubSpotScoreSink:
    return HubSpotScoreSink(
        build_client(settings, **client_opts), properties=settings.hubspot_score_properties
    )
