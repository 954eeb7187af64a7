"""Benchmark `score --backfill` and `backtest` on a large imported history.

    python bench/backtest.py [--accounts 25000] [--days 270] [--every 7] [--workers 2]
                             [--url ADMIN_URL] [--db NAME] [--keep]

Creates N accounts with DAYS days of history in a fresh PostgreSQL database named after the
branch (`healthbot_backtest`, dropped afterwards unless --keep): weekly product-usage rows
(as a product whose usage arrives weekly), seats, tickets, CSAT, NPS, CSM touches and ratings,
payments, and one renewal outcome per account whose anniversary falls in the window (about
one in eight churns, its usage fading for 2-5 months before). Loading (COPY, untimed) is
reported apart. Timed: the backfill (`backfill_scores`, every `--every` days, `--workers`
processes, changed newest scores queued for the CRMs) and the backtest at 90 days' lead.
Progress on stderr; the last line on stdout is JSON: accounts, days, backfill_seconds,
backtest_seconds, seconds (the two), load_seconds, cpu_seconds (this process and its workers,
whatever else the machine runs) and the load average at the start, peak_rss_mb (this
process, plus each worker's peak in peak_rss_total_mb), queries (statements sent, the
workers' too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import time
from datetime import date, timedelta

import psycopg
from score import WORKER_HWM, fresh_database, in_child, progress_line, recreate_db, say, vacuum
from sqlalchemy import event
from sqlalchemy.engine import make_url

from health.backfill import backfill_scores
from health.backtest_read import backtest_report
from health.db import session_scope
from health.scoring.model import load_model
from health.settings import get_settings

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB = "healthbot_backtest"  # the branch's scratch database
LAST_DAY = date(2026, 11, 30)
CRMS = ("salesforce", "hubspot")
SEGMENTS = ("enterprise", "mid_market", "mid_market", "smb", "smb", "smb")


def account(i: int, start: date, days: int, rng: random.Random) -> tuple[str, list, str]:
    """One account's COPY line, its weekly parameters, and its outcome line ('' for none)."""
    seats = min(5000, max(5, int(rng.lognormvariate(3.5, 1.0))))
    since = start - timedelta(days=rng.randint(30, 1500))
    renews = since + timedelta(days=365 * ((start - since).days // 365 + 1))
    churns = rng.random() < 0.12
    ends = renews if start < renews <= LAST_DAY - timedelta(days=1) else None
    line = (
        f"{i}\t{CRMS[i % 2]}\tacc-{i:07d}\tAccount {i}\tacct{i}.example.com\t"
        f"owner{i % 50}@example.com\t{rng.choice(SEGMENTS)}\t{seats * 1200}\t{since}\t"
        f"{renews + timedelta(days=365) if ends and not churns else renews}\t{LAST_DAY}T00:00+00\n"
    )
    kind = "churned" if churns else rng.choice(("renewed", "renewed", "renewed", "expanded"))
    outcome = f"{i}\t{i}\t{kind}\t{ends}\tsalesforce\n" if ends else ""
    fades = ends - timedelta(days=rng.randint(60, 150)) if ends and churns else None
    util, feats, per_user = rng.uniform(0.2, 0.95), rng.uniform(1, 7), rng.uniform(2, 20)
    return line, [seats, util, feats, per_user, fades, ends if churns else None], outcome


def week_lines(i: int, w: int, day: date, p: list, rng: random.Random) -> list[str]:
    seats, util, feats, per_user, fades, gone = p
    if gone and day > gone:
        return []
    level = 0.8 + 0.4 * rng.random()
    if fades and day > fades:
        level *= max(0.05, 1 - (day - fades).days / max(1, (gone - fades).days))
        util_now = util * level
    else:
        util_now = util
    ts, ids = f"{day}T12:00:00+00", f"{i}\t{i}\t"
    users = int(seats * util * level)
    out = [
        f"{ids}active_users\t{ts}\t{users}\tproduct\n",
        f"{ids}core_features_used\t{ts}\t{int(feats * level)}\tproduct\n",
        f"{ids}key_events\t{ts}\t{int(users * per_user)}\tproduct\n",
    ]
    k = w + i
    if k % 4 == 0:
        out.append(f"{ids}seats\t{ts}\t{seats}\tsalesforce\n")
        out.append(f"{ids}payment_days_late\t{ts}\t{0 if util_now > 0.3 else 20}\tbilling\n")
    if k % 2 == 0:
        out.append(f"{ids}open_tickets\t{ts}\t{int(rng.random() * (4 - 3 * util_now) ** 2)}\tzd\n")
    if k % 3 == 0:
        out.append(f"{ids}csm_touch\t{ts}\t1\tsalesforce\n")
    if k % 5 == 0:
        out.append(f"{ids}csat\t{ts}\t{100 if rng.random() < 0.5 + util_now / 2 else 0}\tzd\n")
    if k % 6 == 0:
        out.append(f"{ids}csm_sentiment\t{ts}\t{min(5, 1 + int(util_now * 5))}\tsalesforce\n")
    if k % 13 == 0:
        out.append(f"{ids}nps\t{ts}\t{min(10, int(util_now * 11))}\tsurvey\n")
    return out


def load(url: str, n: int, days: int) -> None:
    """Runs in a child process: COPY accounts, records, observations and outcomes."""
    rng = random.Random(20261130)
    start = LAST_DAY - timedelta(days=days - 1)
    made = [account(i, start, days, rng) for i in range(1, n + 1)]
    cols = "id, source, external_id, name, domain, owner, segment, arr, customer_since, "
    cols += "renewal_date, updated_at"
    copied = cols.removeprefix("id, ").removesuffix(", updated_at")
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY account ({cols}) FROM STDIN") as cp:
            cp.write("".join(line for line, _, _ in made))
        conn.execute("SELECT setval(pg_get_serial_sequence('account', 'id'), %s)", (n,))
        conn.execute(
            f"INSERT INTO crmrecord (id, account_id, {copied}, linked_by, pinned, updated_at) "
            f"SELECT id, id, {copied}, 'new', false, updated_at FROM account"
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('crmrecord', 'id'), %s)", (n,))
        with conn.cursor().copy(
            "COPY outcome (account_id, record_id, kind, occurred_on, source) FROM STDIN"
        ) as cp:
            cp.write("".join(o for _, _, o in made))
        conn.execute("ALTER TABLE observation DROP CONSTRAINT uq_observation_natural")
        conn.execute("DROP INDEX ix_observation_series")
        conn.execute("TRUNCATE observation")  # in this transaction: COPY FREEZE may follow
        conn.execute("SET session_replication_role = replica")
        copy = "COPY observation (account_id, record_id, signal, observed_at, value, source) "
        with conn.cursor().copy(copy + "FROM STDIN (FREEZE)") as cp:
            for w in range(days // 7 + 1):
                day = start + timedelta(days=7 * w)
                if day > LAST_DAY:
                    break
                rows = []
                for i, (_, p, _) in enumerate(made, 1):
                    rows += week_lines(i, w, day, p, rng)
                cp.write("".join(rows))
        conn.execute("RESET session_replication_role")
        conn.commit()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            "ALTER TABLE observation ADD CONSTRAINT uq_observation_natural"
            " UNIQUE (record_id, signal, observed_at, source)"
        )
        conn.execute(
            "CREATE INDEX ix_observation_series ON observation"
            " (account_id, signal, observed_at) INCLUDE (value)"
        )
        conn.commit()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the scoring workers): what the
    run costs whatever else the machine does (PostgreSQL's own time is not in it)."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=25_000)
    ap.add_argument("--days", type=int, default=270)
    ap.add_argument("--every", type=int, default=7)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--url", default=ADMIN_URL, help="admin URL of the server to use")
    ap.add_argument("--db", default=DB, help="database to (re)create for the run")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    n, days = args.accounts, args.days
    url = make_url(args.url).set(database=args.db).render_as_string(hide_password=False)
    model = load_model(get_settings().healthbot_model)
    say(f"creating {args.db} ({n} accounts x {days} days, weekly usage rows)")
    engine = fresh_database(args.url, args.db, url)
    t = time.perf_counter()
    in_child(load, url, n, days)
    obs = vacuum(url)
    load_seconds = time.perf_counter() - t
    say(f"loaded {obs:,} observations in {load_seconds:.1f}s (untimed)")
    counter = itertools.count()
    event.listen(engine, "before_cursor_execute", lambda *_: next(counter))
    load_avg = os.getloadavg()[0]
    cpu = cpu_seconds()
    t = time.perf_counter()
    report = backfill_scores(
        engine,
        model,
        start=LAST_DAY - timedelta(days=days - 1),
        end=LAST_DAY,
        every=args.every,
        workers=args.workers,
        progress=progress_line(n, "backfilled"),
        targets=CRMS,
    )
    backfill_seconds = time.perf_counter() - t
    say(f"backfill: {backfill_seconds:.1f}s, {report.scored:,} scores over {report.days} days")
    t = time.perf_counter()
    with session_scope(engine) as session:
        result = backtest_report(session=session, lead_days=90)
    backtest_seconds = time.perf_counter() - t
    say(
        f"backtest: {backtest_seconds:.1f}s, {result['outcomes']} outcomes "
        f"({result['churned']} churned), AUC {result['auc']}"
    )
    say(f"load average {load_avg:.1f} -> {os.getloadavg()[0]:.1f} (other work skews timings)")
    cpu = cpu_seconds() - cpu
    queries = next(counter) + report.worker_statements
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    if not args.keep:
        recreate_db(args.url, args.db, drop_only=True)
    print(
        json.dumps(
            {
                "accounts": n,
                "days": days,
                "every": args.every,
                "observations": obs,
                "scores": report.scored,
                "outcomes": result["outcomes"],
                "auc": result["auc"],
                "load_seconds": round(load_seconds, 1),
                "backfill_seconds": round(backfill_seconds, 1),
                "backtest_seconds": round(backtest_seconds, 1),
                "seconds": round(backfill_seconds + backtest_seconds, 1),
                "cpu_seconds": round(cpu, 1),
                "load_average": round(load_avg, 1),
                "peak_rss_mb": round(peak, 1),
                "peak_rss_total_mb": round(peak + sum(WORKER_HWM.values()), 1),
                "queries": queries,
                "workers": args.workers,
            }
        )
    )


if __name__ == "__main__":
    main()
