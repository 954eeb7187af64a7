"""Benchmark the full rescore against the floor PostgreSQL itself sets.

    python bench/score.py [--accounts N] [--url ADMIN_URL] [--db NAME] [--batch-size B]
                          [--workers W] [--no-history] [--keep] [--reuse]

Creates N accounts with 90 days of observations in a fresh database (--db on the server of
--url, migrated with `upgrade()`, loaded with COPY by a child process), seeds the score history
a daily run finds (an untimed rescore of the day before, copied to 30 and 90 days back), then
times the floor (one aggregate pass over the same rows, one row out per account) and
`rescore(engine, model, day=LAST_DAY, workers=W)`, both on connections with the SESSION settings.
Progress goes to stderr; the last line on stdout is JSON. peak_rss_mb is this process's (it
loads nothing), peak_rss_total_mb adds each rescore worker process's peak; queries counts the
statements the rescore sent (an executemany page once; a COPY is not counted), the workers' too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from datetime import date, timedelta

import psycopg
from psycopg import sql
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from health.db import make_engine
from health.migrate import upgrade
from health.models import Score
from health.rescore import rescore
from health.score_writes import day_end
from health.scoring.model import load_model
from health.scoring.stats import LOOKBACK_DAYS
from health.settings import DEFAULT_MODEL_PATH

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB = "healthbot_bench"
DAYS = 90
LAST_DAY = date(2026, 11, 30)
# set on every connection, the rescore's and the floor's alike
SESSION = {"work_mem": "64MB", "jit": "off"}
DRIFTS = (0.0, 0.0, 0.0, 0.1, -0.2, -0.5, -0.8)  # usage change over the 90 days
# per 10,007 account-days: 50 sev-1 tickets, 30 escalations, 100 exec meetings, 5 departures
RARE = [("sev1_ticket", "zendesk")] * 50 + [("escalation", "zendesk")] * 30
RARE += [("exec_meeting", "salesforce")] * 100 + [("champion_left", "salesforce")] * 5
SOURCES = ("salesforce",) * 9 + ("hubspot",) * 7 + ("csv",) * 4
CRMS = ("salesforce", "hubspot")
SEGMENTS = ("enterprise", "mid_market", "mid_market", "smb", "smb", "smb")
FLOOR_SQL = text(
    "CREATE TABLE bench_floor AS SELECT account_id, count(*) AS n, avg(value) AS mean,"
    " max(observed_at) AS latest FROM observation"
    " WHERE observed_at >= :lo AND observed_at < :hi GROUP BY account_id"
)
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[bench {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def recreate_db(admin_url: str, db: str, *, drop_only: bool = False) -> None:
    # no FORCE: a bench still running on `db` makes this fail instead of losing its database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def fresh_database(admin_url: str, db: str, url: str):
    """(Re)create `db`, migrate it, and return its engine (SESSION settings on every
    connection; nothing pooled, so no connection crosses a fork)."""
    recreate_db(admin_url, db)
    engine = make_engine(url)
    event.listen(engine, "connect", set_session)
    upgrade(engine)
    engine.dispose()
    return engine


def in_child(target, *args) -> None:
    """Run `target(*args)` in a forked process (loading: its memory goes with it)."""
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join()
    if child.exitcode:
        sys.exit(f"loading failed (exit {child.exitcode})")


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
        util, drift, feats = rng.uniform(0.15, 0.95), rng.choice(DRIFTS), rng.uniform(0.5, 7)
        per_user, touch_every, late = rng.uniform(2, 20), rng.randint(5, 45), rng.random() < 0.1
        params.append((seats, util, drift, feats, per_user, touch_every, late))
    return lines, params


def day_lines(d: int, day: date, params: list[tuple], rng: random.Random) -> list[str]:
    """One day's observations of every account: 3 daily usage signals plus sparser ones."""
    ts = f"{day}T12:00:00+00"
    weekend = 0.3 if day.weekday() >= 5 else 1.0
    rnd, out = rng.random, []
    add = out.append
    for i, (seats, util, drift, feats, per_user, touch_every, late) in enumerate(params, 1):
        ids = f"{i}\t{i}\t"  # account id, record id: each account is one CRM record
        level = weekend * (1 + drift * d / DAYS) * (0.85 + 0.3 * rnd())
        users = int(seats * util * level)
        add(f"{ids}active_users\t{ts}\t{users}\tproduct\n")
        add(f"{ids}core_features_used\t{ts}\t{int(feats * level * (0.8 + 0.4 * rnd()))}\tproduct\n")
        add(f"{ids}key_events\t{ts}\t{int(users * per_user * (0.7 + 0.6 * rnd()))}\tproduct\n")
        k = d + i
        if k % 7 == 0:
            add(f"{ids}seats\t{ts}\t{seats}\tsalesforce\n")
        if k % 7 == 3:
            add(f"{ids}open_tickets\t{ts}\t{int(rnd() * (4 - 3 * util) ** 2)}\tzendesk\n")
        if k % 13 == 5:
            add(f"{ids}csat\t{ts}\t{100 if rnd() < 0.5 + util / 2 else 0}\tzendesk\n")
        if k % touch_every == 0:
            add(f"{ids}csm_touch\t{ts}\t1\tsalesforce\n")
        if k % 30 == 7:
            add(f"{ids}csm_sentiment\t{ts}\t{1 + int(rnd() * 5)}\tsalesforce\n")
        if k % 30 == 0:
            add(f"{ids}payment_days_late\t{ts}\t{int(rnd() * 60) if late else 0}\tbilling\n")
        if late and k % 60 == 11:
            add(f"{ids}payment_failed\t{ts}\t1\tbilling\n")
        if k % 90 == 45:
            add(f"{ids}nps\t{ts}\t{int(rnd() * 11)}\tsurvey\n")
        if (h := (d * 7919 + i * 104729) % 10007) < len(RARE):  # rare events, spread evenly
            add(f"{ids}{RARE[h][0]}\t{ts}\t1\t{RARE[h][1]}\n")
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
        copied = "source, external_id, name, domain, owner, segment, arr, customer_since, "
        copied += "renewal_date"
        conn.execute(  # each account is one CRM record, with the account's id
            f"INSERT INTO crmrecord (id, account_id, {copied}, linked_by, pinned, updated_at) "
            f"SELECT id, id, {copied}, 'new', false, updated_at FROM account"
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('crmrecord', 'id'), %s)", (n,))
        conn.execute(  # steady state: the CRMs were written to before, so only changes queue
            "INSERT INTO crmwrite (account_id, record_id, target, external_id, fingerprint, "
            "written_at) SELECT id, id, source, external_id, '', updated_at FROM account "
            "WHERE source IN ('salesforce', 'hubspot')"
        )
        # bulk-load practice: the natural-key index is built once afterwards, the FK trigger
        # skipped (ids are valid by construction), rows written frozen
        conn.execute("ALTER TABLE observation DROP CONSTRAINT uq_observation_natural")
        conn.execute("DROP INDEX ix_observation_series")
        conn.execute("TRUNCATE observation")
        conn.execute("SET session_replication_role = replica")
        copy = "COPY observation (account_id, record_id, signal, observed_at, value, source) "
        copy += "FROM STDIN"
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
            " UNIQUE (record_id, signal, observed_at, source)"
        )
        say("rebuilding ix_observation_series")
        conn.execute(
            "CREATE INDEX ix_observation_series ON observation"
            " (account_id, signal, observed_at) INCLUDE (value)"
        )
        conn.commit()


def set_session(dbapi_conn, _record) -> None:
    with dbapi_conn.cursor() as cur:
        for k, v in SESSION.items():
            cur.execute(f"SET {k} = '{v}'")
    dbapi_conn.commit()


def vacuum(url: str, tables: str = "") -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {tables}")
        return conn.execute("SELECT count(*) FROM observation").fetchone()[0]


def children_hwm_mb() -> dict[int, float]:
    """Peak resident memory (VmHWM) of this process's live children, by pid (Linux)."""
    out = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            out[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
    return out


WORKER_HWM: dict[int, float] = {}


def progress_line(n: int, label: str):
    done, step = 0, max(1, n // 10)

    def progress(k: int) -> None:
        nonlocal done
        for pid, mb in children_hwm_mb().items():  # worker processes, while they live
            WORKER_HWM[pid] = max(mb, WORKER_HWM.get(pid, 0.0))
        done += k
        if done // step != (done - k) // step:
            say(f"  {label} {done}/{n}")

    return progress


def seed_history(engine, model, n: int, batch_size: int, workers: int) -> None:
    say("history: rescoring the day before (untimed)")
    day = LAST_DAY - timedelta(days=1)
    progress = progress_line(n, "seeded")
    rescore(
        engine,
        model,
        day=day,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        targets=CRMS,
    )
    cols = [c.name for c in Score.__table__.c if c.name != "id"]
    shifted = ", ".join("score_date - v.d" if c == "score_date" else c for c in cols)
    copy = f"INSERT INTO score ({', '.join(cols)}) SELECT {shifted} FROM score"
    with engine.begin() as conn:  # the same scores 30 and 90 days before LAST_DAY
        conn.execute(text(copy + ", (VALUES (29), (89)) AS v(d)"))


def reusable(url: str, n: int) -> bool:
    """A database an earlier `--keep` run left, with the same number of accounts."""
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM account").fetchone()[0] == n
    except psycopg.Error:
        return False


def forget_last_day(engine) -> None:
    with engine.begin() as conn:
        # the rows referring to these scores go first; the per-row foreign-key checks (a scan
        # of the unindexed outboxitem.score_id each) are skipped, as in `load`
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        day = {"d": LAST_DAY}
        ids = "(SELECT id FROM score WHERE score_date = :d)"
        conn.execute(text(f"DELETE FROM scorechange WHERE score_id IN {ids}"), day)
        conn.execute(text(f"DELETE FROM outboxitem WHERE score_id IN {ids}"), day)
        conn.execute(text("DELETE FROM score WHERE score_date = :d"), day)


def floor_seconds(engine) -> float:
    """The faster of two runs of one aggregate pass: what PostgreSQL itself needs."""
    now, runs = day_end(LAST_DAY), []
    for _ in range(2):
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_floor"))
            t = time.perf_counter()
            conn.execute(FLOOR_SQL, {"lo": now - timedelta(days=LOOKBACK_DAYS), "hi": now})
            runs.append(time.perf_counter() - t)
    say(f"floor: {' / '.join(f'{s:.2f}s' for s in runs)}")
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--url", default=ADMIN_URL, help="admin URL of the server to use")
    ap.add_argument("--db", default=DB, help="database to (re)create for the run")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="scoring processes (rescore)"
    )
    ap.add_argument("--no-history", action="store_true", help="rescore with empty score tables")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="time again on the database a --keep run left (same --accounts)",
    )
    args = ap.parse_args()
    n = args.accounts
    url = make_url(args.url).set(database=args.db).render_as_string(hide_password=False)
    model = load_model(DEFAULT_MODEL_PATH)
    if args.reuse and reusable(url, n):
        say(f"reusing {args.db}: removing the scores of {LAST_DAY} a run left")
        engine = make_engine(url)
        event.listen(engine, "connect", set_session)
        upgrade(engine)  # a database kept by an older checkout gets the newer migrations
        forget_last_day(engine)
        obs = vacuum(url, "score, scorechange, outboxitem")
    else:
        say(f"creating {args.db} ({n} accounts x {DAYS} days)")
        engine = fresh_database(args.url, args.db, url)
        say("loading with COPY (child process)")
        in_child(load, url, n)
        say("VACUUM ANALYZE")
        obs = vacuum(url)
        if not args.no_history:
            seed_history(engine, model, n, args.batch_size, args.workers)
            vacuum(url)
    say(f"{obs} observations ({obs / n / DAYS:.2f} per account-day)")
    limit = floor_seconds(engine)
    say(f"rescore, batch size {args.batch_size}, {args.workers} worker(s)")
    engine.dispose()
    counter, progress = itertools.count(), progress_line(n, "rescored")
    load_avg = os.getloadavg()[0]
    WORKER_HWM.clear()
    event.listen(engine, "before_cursor_execute", lambda *_: next(counter))
    t = time.perf_counter()
    report = rescore(
        engine,
        model,
        day=LAST_DAY,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=progress,
        targets=CRMS,  # changed scores of CRM accounts queued for writeback, as in production
    )
    seconds = time.perf_counter() - t
    queries = next(counter) + report.worker_statements
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"rescore: {seconds:.2f}s, {report}")
    say(f"load average {load_avg:.1f} -> {os.getloadavg()[0]:.1f} (other work skews timings)")
    engine.dispose()
    if not args.keep:
        recreate_db(args.url, args.db, drop_only=True)
    if args.keep:
        say(f"kept {args.db}: --reuse times again on it")
    say("done")
    result = {
        "accounts": n,
        "observations": obs,
        "seconds": round(seconds, 2),
        "limit_seconds": round(limit, 2),
        "ratio": round(seconds / limit, 2),
        "accounts_per_s": round(n / seconds, 1),
        "peak_rss_mb": round(peak, 1),
        # each worker's peak counts the pages it shares with this process: an upper bound
        "peak_rss_total_mb": round(peak + sum(WORKER_HWM.values()), 1),
        "queries": queries,
        "workers": args.workers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
