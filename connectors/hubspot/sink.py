"""HubSpot as a ScoreSink: scores onto company properties, 100 companies per batch update.

Properties (`PROPERTIES`, renamed with HUBSPOT_SCORE_PROPERTIES) live in the "Customer health"
group: health_score, health_tier, health_trend_30d, health_drivers, health_updated_at.
`ensure_properties()` creates the group and whichever properties are missing (1 GET; when
something is missing, 1 group POST + 1 batch create).
`write()` sends `POST /crm/v3/objects/companies/batch/update` per 100 rows and reports every
row: acknowledged, or the reason from the 207 `errors[]`. A request that fails as a whole
(429 or 5xx past the client's short retry) raises, so the outbox keeps its rows.
Our writes bump `hs_lastmodifieddate`, so the next pull re-reads those companies; that costs
a search page, never a duplicate (upserts are idempotent) and never a rescore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from connectors.base import renamed
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
                  "displayOrder": i}
                 for i, t in enumerate(TIERS)]},
    "trend_30d": {"name": "health_trend_30d", "label": "Health 30-day trend", "type": "number",
                  "fieldType": "number"},
    "drivers": {"name": "health_drivers", "label": "Health drivers", "type": "string",
                "fieldType": "textarea"},
    "updated_at": {"name": "health_updated_at", "label": "Health updated at",
                   "type": "datetime", "fieldType": "date"},
}  # fmt: skip
TRANSIENT_CATEGORIES = frozenset({"RATE_LIMITS", "LOCKED", "TIMEOUT", "SERVICE_UNAVAILABLE"})
DRIVERS_MAX = 65_536


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

    def ensure_properties(self) -> list[str]:
        """Create the missing score properties (and their group); returns the names created."""
        have = {p.get("name") for p in self.client.properties("companies")}
        missing = [d for d in self.definitions() if d["name"] not in have]
        if not missing:
            return []
        self.client.create_group("companies", GROUP, GROUP_LABEL)
        return self.client.create_properties("companies", missing)

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
            chunk = {r.account_external_id: r for r in rows[i : i + self.max_batch]}
            inputs = [{"id": k, "properties": self.properties(r)} for k, r in chunk.items()]
            done, errors = self.client.batch_update("companies", inputs)
            for err in errors:
                category = str(err.get("category", "ERROR"))
                why = WriteError(
                    category, str(err.get("message", "")), category in TRANSIENT_CATEGORIES
                )
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
        return result

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
