"""Benchmark the playbooks: evaluate the default set for N score changes, statements counted.

    python bench/playbook_engine.py [--changes N] [--batch B] [--url PG_ADMIN_URL]

(Not bench/playbooks.py: a script's directory comes first on sys.path, so that name would hide
the `playbooks` package from every benchmark here.)

A scratch PostgreSQL database (dropped afterwards) gets N accounts, each with one score
change today (tiers spread as a real book: most healthy, some entering at risk or critical),
a score 30 days ago, eight weeks of usage (some accounts gone quiet), champion departures and
sev-1 tickets on a few, renewal dates over the next year. Then `run_playbooks` evaluates the
N changes in batches of B accounts (the workers' path after a scoring pass), a second run of
the same changes must open nothing, and the sweep runs once. Statements are counted on the
engine: they must not grow with N (a fixed number per batch). Progress on stderr; the last
stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from score import recreate_db, say
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.models import PlaybookTask
from playbooks.loader import load_playbooks
from playbooks.runner import run_playbooks, sweep_playbooks

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB = "healthbot_bench_playbooks"
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
TODAY = NOW.date()


def seed(url: str, n: int, rng: random.Random) -> None:
    """COPY the book into the scratch database: accounts, records, observations, scores."""
    stamp = NOW - timedelta(hours=2)
    tiers = rng.choices(
        [
            ("healthy", "healthy"),
            ("monitor", "healthy"),
            ("at_risk", "monitor"),
            ("critical", "at_risk"),
            ("monitor", "monitor"),
        ],
        weights=[60, 12, 10, 5, 13],
        k=n,
    )
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY account (id, source, external_id, name, domain, owner, segment, arr,"
            " renewal_date, updated_at) FROM STDIN"
        ) as cp:
            for i in range(1, n + 1):
                cp.write_row(
                    (
                        i,
                        "salesforce",
                        f"A{i}",
                        f"Account {i}",
                        f"a{i}.test",
                        f"csm{i % 50}@x.test",
                        rng.choice(["enterprise", "mid_market", "smb"]),
                        rng.randint(10, 500) * 1000,
                        TODAY + timedelta(days=rng.randint(5, 365)),
                        stamp,
                    )
                )
        with cur.copy(
            "COPY crmrecord (id, account_id, source, external_id, name, linked_by, pinned,"
            " updated_at) FROM STDIN"
        ) as cp:
            for i in range(1, n + 1):
                cp.write_row((i, i, "salesforce", f"A{i}", f"Account {i}", "new", False, stamp))
        say(f"{n:,} accounts")
        with cur.copy(
            "COPY observation (account_id, record_id, signal, observed_at, value, source)"
            " FROM STDIN"
        ) as cp:
            for i in range(1, n + 1):
                quiet = rng.random() < 0.05  # gone quiet three weeks ago
                for week in range(8):
                    at = NOW - timedelta(days=7 * week + 1)
                    users = 0 if quiet and week < 3 else rng.randint(1, 40)
                    cp.write_row((i, i, "active_users", at, users, "usage"))
                if rng.random() < 0.01:
                    cp.write_row((i, i, "champion_left", NOW - timedelta(days=3), 1, "crm"))
                if rng.random() < 0.02:
                    cp.write_row((i, i, "sev1_ticket", NOW - timedelta(days=1), 1, "zendesk"))
        say("observations")
        with cur.copy(
            "COPY score (id, account_id, score_date, computed_at, total, tier, announced_tier,"
            " confidence, drivers, hard_events, reason, model_version) FROM STDIN"
        ) as cp:
            for i, (tier, before) in enumerate(tiers, start=1):
                total = {"healthy": 88, "monitor": 68, "at_risk": 48, "critical": 30}[tier]
                old = {"healthy": 90, "monitor": 70, "at_risk": 60, "critical": 45}[before]
                drivers = orjson.dumps([{"label": "active users vs baseline"}]).decode()
                cp.write_row(
                    (
                        2 * i - 1,
                        i,
                        TODAY - timedelta(days=30),
                        stamp - timedelta(days=30),
                        old,
                        before,
                        before,
                        0.9,
                        drivers,
                        "[]",
                        "",
                        "bench",
                    )
                )
                cp.write_row(
                    (
                        2 * i,
                        i,
                        TODAY,
                        stamp,
                        total + rng.uniform(-3, 3),
                        tier,
                        tier,
                        0.9,
                        drivers,
                        "[]",
                        f"Account {i} is {tier}",
                        "bench",
                    )
                )
        with cur.copy(
            "COPY scorechange (id, account_id, score_id, changed_at, from_total, to_total, delta,"
            " from_tier, to_tier, tier_announced, reason) FROM STDIN"
        ) as cp:
            for i, (tier, before) in enumerate(tiers, start=1):
                cp.write_row(
                    (i, i, 2 * i, stamp, None, 50.0, -5.0, before, tier, tier != before, "")
                )
        for table in ("account", "crmrecord", "score", "scorechange"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        cur.execute("ANALYZE")
        conn.commit()
    say("scores and changes")


def counted(engine, fn):
    n = [0]

    def count(*_args) -> None:
        n[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        t = time.perf_counter()
        result = fn()
        return result, n[0], time.perf_counter() - t
    finally:
        event.remove(engine, "before_cursor_execute", count)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--url", default=ADMIN_URL)
    args = ap.parse_args()
    admin = make_url(args.url)
    url = admin.set(database=DB)
    recreate_db(args.url, DB)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        upgrade(engine)
        seed(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            args.changes,
            random.Random(5),
        )
        book = load_playbooks()
        ids = list(range(1, args.changes + 1))
        first, queries, seconds = counted(
            engine,
            lambda: run_playbooks(engine, book, change_ids=ids, now=NOW, batch_size=args.batch),
        )
        say(f"first run: {first.opened:,} tasks opened in {seconds:.1f}s, {queries} statements")
        again, rerun_queries, rerun_seconds = counted(
            engine,
            lambda: run_playbooks(engine, book, change_ids=ids, now=NOW, batch_size=args.batch),
        )
        say(f"rerun: {again.opened} opened, {rerun_queries} statements")
        swept, sweep_queries, _ = counted(
            engine, lambda: sweep_playbooks(engine, book, now=NOW + timedelta(days=3))
        )
        with session_scope(engine) as s:
            tasks = s.execute(select(func.count()).select_from(PlaybookTask)).scalar_one()
            accounts = s.execute(
                select(func.count(func.distinct(PlaybookTask.account_id)))
            ).scalar_one()
        batches = math.ceil(args.changes / args.batch)
        result = {
            "changes": args.changes,
            "batch": args.batch,
            "batches": batches,
            "seconds": round(seconds, 2),
            "changes_per_s": round(args.changes / seconds),
            "queries": queries,
            "queries_per_batch": round(queries / batches, 1),
            "tasks_opened": first.opened,
            "accounts_with_tasks": accounts,
            "rerun_opened": again.opened,
            "rerun_queries": rerun_queries,
            "rerun_seconds": round(rerun_seconds, 2),
            "sweep_escalated": swept.escalated,
            "sweep_queries": sweep_queries,
            "tasks": tasks,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        engine.dispose()  # no session may hold the database: it is dropped without FORCE
        recreate_db(args.url, DB, drop_only=True)
    print(json.dumps(result))
    return 0 if again.opened == 0 and tasks == first.opened else 1


if __name__ == "__main__":
    sys.exit(main())
