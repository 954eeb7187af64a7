"""How well stored scores ranked what happened: the AUC of each outcome's score `--lead` days
before it (the newest stored score on or before that day), churned against renewed or
expanded, with the tiers those scores carried.

    python bench/lead_auc.py [--db healthbot-demo.db] [--lead 90] [--lead 30 ...]

Reads a scored database (`healthbot demo` leaves one); writes nothing. A stopgap measurement:
`healthbot backtest` (issue 10) is the command that reports this. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import timedelta

from sklearn.metrics import roc_auc_score
from sqlalchemy import select

from health.db import make_engine, session_scope
from health.models import Outcome, Score


def lead_auc(engine, lead: int) -> dict:
    with session_scope(engine) as s:
        outcomes = s.execute(select(Outcome.account_id, Outcome.kind, Outcome.occurred_on)).all()
        scores: dict[int, list] = {}
        rows = s.execute(
            select(Score.account_id, Score.score_date, Score.total, Score.announced_tier)
        )
        for acc, day, total, tier in rows:
            scores.setdefault(acc, []).append((day, total, tier))
    churned, risk, tiers = [], [], Counter()
    for acc, kind, on in outcomes:
        if kind not in ("renewed", "churned", "expanded"):
            continue
        cutoff = on - timedelta(days=lead)
        known = [x for x in scores.get(acc, []) if x[0] <= cutoff]
        if not known:
            continue
        _, total, tier = max(known)
        churned.append(kind == "churned")
        risk.append(-total)
        tiers[(kind == "churned", tier)] += 1
    both = 0 < sum(churned) < len(churned)
    return {
        "lead_days": lead,
        "outcomes": len(churned),
        "churned": sum(churned),
        "auc": round(roc_auc_score(churned, risk), 3) if both else None,
        "tiers_churned": {t: n for (c, t), n in tiers.items() if c},
        "tiers_kept": {t: n for (c, t), n in tiers.items() if not c},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="healthbot-demo.db", help="SQLite file (or a database URL)")
    ap.add_argument("--lead", type=int, action="append", help="days before each outcome")
    args = ap.parse_args()
    url = args.db if "://" in args.db else f"sqlite:///{args.db}"
    engine = make_engine(url)
    results = [lead_auc(engine, lead) for lead in args.lead or [90]]
    for r in results[:-1]:
        print(json.dumps(r))
    print(json.dumps(results[-1]))


if __name__ == "__main__":
    main()
