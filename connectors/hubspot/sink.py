"""HubSpot as a ScoreSink: scores onto company properties, 100 companies per batch update.

`ensure_properties()` creates the `healthbot` property group and whichever of the five
properties are missing (1 GET; when something is missing, 1 group POST + 1 batch create).
`write()` sends `POST /crm/v3/objects/companies/batch/update` per 100 rows and reports every
row: acknowledged, or the reason from the 207 `errors[]` (or the whole request's failure).
Our writes bump `hs_lastmodifieddate`, so the next pull re-reads those companies; that costs
a search page, never a duplicate (upserts are idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from connectors.base import AuthConnectorError, ConnectorError
from connectors.hubspot.client import BATCH_LIMIT, HubSpotClient
from connectors.hubspot.source import build_client
from health.records import ScoreWrite, WriteResult
from health.settings import Settings

GROUP = "healthbot"
PROPERTIES = [
    {"name": "healthbot_score", "label": "Health Score", "type": "number",
     "fieldType": "number"},
    {"name": "healthbot_tier", "label": "Health Tier", "type": "enumeration",
     "fieldType": "select", "options": [
         {"label": t.replace("_", " ").title(), "value": t, "displayOrder": i}
         for i, t in enumerate(("healthy", "monitor", "at_risk", "critical"))]},
    {"name": "healthbot_trend_30d", "label": "Health 30-day trend", "type": "number",
     "fieldType": "number"},
    {"name": "healthbot_drivers", "label": "Health drivers", "type": "string",
     "fieldType": "textarea"},
    {"name": "healthbot_updated_at", "label": "Health updated at", "type": "datetime",
     "fieldType": "date"},
]  # fmt: skip


def score_properties(row: ScoreWrite) -> dict[str, str]:
    return {
        "healthbot_score": str(row.score),
        "healthbot_tier": row.tier,
        "healthbot_trend_30d": "" if row.trend_30d is None else f"{row.trend_30d:.1f}",
        "healthbot_drivers": row.drivers[:65_536],
        "healthbot_updated_at": str(int(row.updated_at.timestamp() * 1000)),
    }


class HubSpotScoreSink:
    name: ClassVar[str] = "hubspot"
    max_batch: ClassVar[int] = BATCH_LIMIT

    def __init__(self, client: HubSpotClient):
        self.client = client

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def ensure_properties(self) -> list[str]:
        """Create the missing score properties; returns the names created."""
        have = {p.get("name") for p in self.client.properties("companies")}
        missing = [{**p, "groupName": GROUP} for p in PROPERTIES if p["name"] not in have]
        if not missing:
            return []
        self.client.create_group("companies", GROUP, "Healthbot")
        return self.client.create_properties("companies", missing)

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        result = WriteResult()
        for i in range(0, len(rows), self.max_batch):
            chunk = {r.account_external_id: r for r in rows[i : i + self.max_batch]}
            inputs = [{"id": k, "properties": score_properties(r)} for k, r in chunk.items()]
            try:
                done, errors = self.client.batch_update("companies", inputs)
            except AuthConnectorError:
                raise
            except ConnectorError as exc:
                result.errors.update({k: str(exc) for k in chunk})
                continue
            for err in errors:
                for oid in (err.get("context") or {}).get("ids") or []:
                    if oid in chunk:
                        reason = f"{err.get('category', 'error')}: {err.get('message', '')}"
                        result.errors[oid] = reason
            for obj in done:
                if (oid := str(obj.get("id"))) in chunk and oid not in result.errors:
                    result.ok.append(oid)
            for oid in chunk:
                if oid not in result.errors and oid not in result.ok:
                    result.errors[oid] = "not acknowledged by HubSpot"
        return result


def build_sink(settings: Settings, **client_opts) -> HubSpotScoreSink:
    return HubSpotScoreSink(build_client(settings, **client_opts))
