"""Write scores onto Salesforce Accounts: sObject Collections updates of up to 200 records.

Fields: Health_Score__c, Health_Tier__c, Health_Trend_30d__c, Health_Drivers__c (<= 255 chars
here, a Text Area field), Health_Updated_At__c. Each row's SaveResult decides ok / error; a
failed call (rate limit, 5xx after retries) raises, so the outbox keeps its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from connectors.salesforce.client import SalesforceClient
from health.records import ScoreWrite, WriteResult


def score_fields(row: ScoreWrite) -> dict:
    return {
        "attributes": {"type": "Account"},
        "id": row.account_external_id,
        "Health_Score__c": row.score,
        "Health_Tier__c": row.tier,
        "Health_Trend_30d__c": row.trend_30d,
        "Health_Drivers__c": row.drivers[:255],
        "Health_Updated_At__c": row.updated_at.isoformat(),
    }


class SalesforceScoreSink:
    name: ClassVar[str] = "salesforce"
    max_batch: ClassVar[int] = 200  # sObject Collections limit

    def __init__(self, client: SalesforceClient):
        self.client = client

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        result = WriteResult()
        for k in range(0, len(rows), self.max_batch):
            chunk = rows[k : k + self.max_batch]
            body = {"allOrNone": False, "records": [score_fields(r) for r in chunk]}
            saves = self.client.restful("composite/sobjects", method="PATCH", json=body) or []
            for row, save in zip(chunk, saves, strict=False):
                if save.get("success"):
                    result.ok.append(row.account_external_id)
                else:
                    errors = save.get("errors") or [{}]
                    result.errors[row.account_external_id] = "; ".join(
                        f"{e.get('statusCode', '?')}: {e.get('message', '')}" for e in errors
                    )
            for row in chunk[len(saves) :]:
                result.errors[row.account_external_id] = "no SaveResult returned"
        return result
