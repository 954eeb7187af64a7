"""Benchmark the full rescore against the floor PostgreSQL itself sets.

    python bench/score.py [--accounts N] [--url ADMIN_URL] [--batch-size B] [--keep]

Builds N accounts with 90 days of observations in a dedicated database (`healthbot_bench`,
dropped and recreated on the server of --url, migrated with `upgrade()`), loaded with COPY in a
child process so the numbers below belong to this process. Then times
  floor    one SQL aggregate pass over the same observation rows, one row out per account;
  rescore  `rescore(engine, model, day=LAST_DAY)`: read observations, score, write Score,
           ScoreChange and OutboxItem rows (the score tables start empty).
Both run on connections with the same SESSION settings. Progress goes to stderr; the last
line on stdout is JSON: accounts, observations, seconds (rescore), limit_seconds (floor),
ratio, accounts_per_s, peak_rss_mb (of this process, which does no loading), queries (SQL
statements the rescore sent; an executemany page counts once).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from health.db import make_engine
from health.migrate import upgrade
from health.scoring.model import load_model
from health.scoring_service import day_end, rescore
from health.settings import DEFAULT_MODEL_PATH

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB = "healthbot_bench"
DAYS = 90
LAST_DAY = date(2026, 11, 30)
SESSION = {
    "work_mem": "64MB",
    "jit": "off",
}  # applied to the rescore's and the floor's connections alike
SOURCES = ("salesforce",) * 9 + ("hubspot",) * 7 + ("csv",) * 4
SEGMENTS = ("enterprise", "mid_market", "mid_market", "smb", "smb", "smb")
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[bench {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def recreate_db(admin_url: str, db: str, *, drop_only: bool = False) -> None:
    # no FORCE: a bench still running on `db` makes this fail instead of losing its database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def account_rows(n: int, rng: random.Random) -> tuple[list[str], list[tuple]]:
    """COPY lines for the account table, and per account the parameters its series follow."""
    lines, params = [], []
    for i in range(1, n + 1):
        seats = min(5000, max(5, int(rng.lognormvariate(3.5, 1.0))))
        since = LAST_DAY - timedelta(days=rng.randint(20, 2500))
        renews = LAST_DAY + timedelta(days=rng.randint(1, 365))
        lines.append(
            f"{i}\t{rng.choice(SOURCES)}\tacc-{i:07d}\tAccount {i}\tacct{i}.example.com\t"
            f"owner{i % 50}@example.com\t{rng.choice(SEGMENTS)}\t{seats * 1200}\t{since}\t"
            f"{renews}\t{LAST_DAY}T00:00:00+00\n"
        )
        # seats, utilisation, drift over the 90 days, core features, key events per user,
        # days between CSM touches, a late payer
        params.append(
            (
                seats,
                rng.uniform(0.15, 0.95),
                rng.choice((0.0, 0.0, 0.0, 0.1, -0.2, -0.5, -0.8)),
                rng.uniform(0.5, 7.0),
                rng.uniform(2.0, 20.0),
                rng.randint(5, 45),
                rng.random() < 0.1,
            )
        )
    return lines, params


def day_lines(d: int, day: date, params: list[tuple], rng: random.Random) -> list[str]:
    """One day's observations of every account: 3 daily usage signals plus sparser ones."""
    ts = f"{day}T12:00:00+00"
    weekend = 0.3 if day.weekday() >= 5 else 1.0
    rnd, out = rng.random, []
    add = out.append
    for i, (seats, util, drift, feats, per_user, touch_every, late) in enumerate(params, 1):
        level = weekend * (1 + drift * d / DAYS) * (0.85 + 0.3 * rnd())
        users = int(seats * util * level)
        add(f"{i}\tactive_users\t{ts}\t{users}\tproduct\n")
        add(f"{i}\tcore_features_used\t{ts}\t{int(feats * level * (0.8 + 0.4 * rnd()))}\tproduct\n")
        add(f"{i}\tkey_events\t{ts}\t{int(users * per_user * (0.7 + 0.6 * rnd()))}\tproduct\n")
        k = d + i
        if k % 7 == 0:
            add(f"{i}\tseats\t{ts}\t{seats}\tsalesforce\n")
        if k % 7 == 3:
            add(f"{i}\topen_tickets\t{ts}\t{int(rnd() * (4 - 3 * util) ** 2)}\tzendesk\n")
        if k % 13 == 5:
            add(f"{i}\tcsat\t{ts}\t{100 if rnd() < 0.5 + util / 2 else 0}\tzendesk\n")
        if k % touch_every == 0:
            add(f"{i}\tcsm_touch\t{ts}\t1\tsalesforce\n")
        if k % 30 == 7:
            add(f"{i}\tcsm_sentiment\t{ts}\t{1 + int(rnd() * 5)}\tsalesforce\n")
        if k % 30 == 0:
            add(f"{i}\tpayment_days_late\t{ts}\t{int(rnd() * 60) if late else 0}\tbilling\n")
        if late and k % 60 == 11:
            add(f"{i}\tpayment_failed\t{ts}\t1\tbilling\n")
        if k % 90 == 45:
            add(f"{i}\tnps\t{ts}\t{int(rnd() * 11)}\tsurvey\n")
        h = (d * 7919 + i * 104729) % 10007
        if h < 50:
            add(f"{i}\tsev1_ticket\t{ts}\t1\tzendesk\n")
        elif h < 80:
            add(f"{i}\tescalation\t{ts}\t1\tzendesk\n")
        elif h < 180:
            add(f"{i}\texec_meeting\t{ts}\t1\tsalesforce\n")
        elif h < 185:
            add(f"{i}\tchampion_left\t{ts}\t1\tsalesforce\n")
    return out


def load(url: str, n: int) -> None:
    """Runs in a child process: COPY accounts and observations, rebuild the natural key."""
    rng = random.Random(20261130)
    lines, params = account_rows(n, rng)
    first = LAST_DAY - timedelta(days=DAYS - 1)
    cols = "id, source, external_id, name, domain, owner, segment, arr, customer_since, "
    cols += "renewal_date, updated_at"
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY account ({cols}) FROM STDIN") as cp:
            cp.write("".join(lines))
        conn.execute("SELECT setval(pg_get_serial_sequence('account', 'id'), %s)", (n,))
        # bulk-load practice: the natural-key index is built once afterwards, the FK trigger
        # skipped (ids are valid by construction), rows written frozen
        conn.execute("ALTER TABLE observation DROP CONSTRAINT uq_observation_natural")
        conn.execute("TRUNCATE observation")
        conn.execute("SET session_replication_role = replica")
        copy = "COPY observation (account_id, signal, observed_at, value, source) FROM STDIN"
        with conn.cursor().copy(copy + " (FREEZE)") as cp:
            for d in range(DAYS):
                cp.write("".join(day_lines(d, first + timedelta(days=d), params, rng)))
                if d % 10 == 9:
                    say(f"  copied day {d + 1}/{DAYS}")
        conn.execute("RESET session_replication_role")
        conn.commit()
        say("rebuilding uq_observation_natural")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            "ALTER TABLE observation ADD CONSTRAINT uq_observation_natural"
            " UNIQUE (account_id, signal, observed_at, source)"
        )
        conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--url", default=ADMIN_URL, help="admin URL of the server to use")
    ap.add_argument("--db", default=DB, help="database to (re)create for the run")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    n = args.accounts
    url = make_url(args.url).set(database=args.db).render_as_string(hide_password=False)
    say(f"creating {args.db} ({n} accounts x {DAYS} days)")
    recreate_db(args.url, args.db)
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _session(dbapi_conn, _record) -> None:
        with dbapi_conn.cursor() as cur:
            for k, v in SESSION.items():
                cur.execute(f"SET {k} = '{v}'")
        dbapi_conn.commit()

    upgrade(engine)
    engine.dispose()
    say("loading with COPY (child process)")
    child = multiprocessing.get_context("fork").Process(target=load, args=(url, n))
    child.start()
    child.join()
    if child.exitcode:
        sys.exit(f"loading failed (exit {child.exitcode})")
    say("VACUUM ANALYZE")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        obs = conn.execute("SELECT count(*) FROM observation").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_table_size('observation'))").fetchone()[0]
    say(f"{obs} observations ({obs / n / DAYS:.2f} per account-day, {size})")
    model = load_model(DEFAULT_MODEL_PATH)
    now = day_end(LAST_DAY)
    floor_sql = text(
        "CREATE TABLE bench_floor AS SELECT account_id, count(*) AS n, avg(value) AS mean,"
        " max(observed_at) AS latest FROM observation"
        " WHERE observed_at >= :lo AND observed_at < :hi GROUP BY account_id"
    )
    limits = []
    for _ in range(2):  # the faster of two runs: the floor is what PostgreSQL can do
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_floor"))
            t = time.perf_counter()
            conn.execute(floor_sql, {"lo": now - timedelta(days=365), "hi": now})
            limits.append(time.perf_counter() - t)
    limit = min(limits)
    say(f"floor: {' / '.join(f'{s:.2f}s' for s in limits)}")
    load_avg = os.getloadavg()[0]

    queries = 0

    def _count(*_a) -> None:
        nonlocal queries
        queries += 1

    done, step = 0, max(1, n // 10)

    def progress(k: int) -> None:
        nonlocal done
        done += k
        if done // step != (done - k) // step or done == n:
            say(f"  rescored {done}/{n}")

    say(f"rescore, batch size {args.batch_size}")
    engine.dispose()
    event.listen(engine, "before_cursor_execute", _count)
    t = time.perf_counter()
    report = rescore(engine, model, day=LAST_DAY, batch_size=args.batch_size, progress=progress)
    seconds = time.perf_counter() - t
    event.remove(engine, "before_cursor_execute", _count)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"rescore: {seconds:.2f}s, {report}")
    say(f"load average {load_avg:.1f} -> {os.getloadavg()[0]:.1f} (other work skews timings)")
    engine.dispose()
    if not args.keep:
        recreate_db(args.url, args.db, drop_only=True)
    say(f"done at {datetime.now(UTC):%H:%M:%S} UTC")
    result = {
        "accounts": n,
        "observations": obs,
        "seconds": round(seconds, 2),
        "limit_seconds": round(limit, 2),
        "ratio": round(seconds / limit, 2),
        "accounts_per_s": round(n / seconds, 1),
        "peak_rss_mb": round(peak, 1),
        "queries": queries,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
