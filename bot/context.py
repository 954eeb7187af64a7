"""What every listener needs, built once by `build_app`: the database, the scoring model and
how to link to an account in its CRM."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from health.briefs import Brief
from health.scoring.model import ScoringModel


@dataclass(frozen=True)
class BotContext:
    engine: Engine
    model: ScoringModel
    salesforce_url: str | None = None  # the org's instance URL, for "Open in CRM"
    # the CRMs a changed score is queued for (the writeback flushes the configured ones)
    crm_targets: tuple[str, ...] = ("salesforce", "hubspot")
    managers: tuple[str, ...] = ()  # CS managers' emails (SLACK_MANAGERS)
    stale_days: int = 30  # sentiment older than this is due again (SENTIMENT_STALE_DAYS)
    viewers: tuple[str, ...] = ()  # who may see briefs (SLACK_BRIEF_VIEWERS); empty: everyone

    def crm_url(self, brief: Brief) -> str | None:
        for r in brief.records:
            if r["source"] == "salesforce" and self.salesforce_url:
                return f"{self.salesforce_url.rstrip('/')}/lightning/r/Account/{r['id']}/view"
        return None
