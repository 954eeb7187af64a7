"""Benchmark the writeback: N changed scores to sandbox Salesforce and HubSpot, requests counted.

    python bench/writeback.py [--scores N] [--days D] [--bulk-threshold T] [--bulk-wait S]
                              [--sqlite] [--url PG_ADMIN_URL]

N accounts still customers on the portfolio's last day (generate_portfolio, D days; account i
in HubSpot when i % 4 == 3, else Salesforce, as the demo does) are served from the sandbox CRMs
(HubSpot's score properties created first), synced with workers.pipeline.sync_all (plus their
usage as a CSV, so every account has data) into a scratch PostgreSQL database on --url
(dropped afterwards) or SQLite (--sqlite), and scored with score_accounts, which queues N
changed scores. Then flush_outbox is timed per CRM. Salesforce sends collections of 200 up to
T rows, else one Bulk API 2.0 job per 10,000 (polls S s apart); HubSpot batch updates of 100.
Requests are counted by the fakes, per kind, against the minimum (VENDORS.md §2): Salesforce
ceil(n/200), or per job create + upload + close + 1 status read (+ 1 failedResults read if rows
failed); HubSpot ceil(n/100). `polls` = job status reads beyond that one.
Then a second flush (nothing changed) and a flush after rescoring the same accounts (same
values) must write nothing. Exit 1 when a score was not acknowledged or not shown in the CRM,
or a rerun wrote. Progress on stderr; the last stdout line is JSON (seconds: the first flushes).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cli.demo_sync import sandbox_settings, subset, write_usage_csv
from connectors.hubspot.sink import build_sink as hubspot_sink
from connectors.salesforce.sink import BULK_CHUNK, SalesforceScoreSink
from connectors.salesforce.source import build_client
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.portfolio import Portfolio, generate_portfolio
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.models import OutboxItem
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from workers.pipeline import score_accounts, sync_all
from workers.writeback import FlushReport, flush_outbox

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB = "healthbot_bench_writeback"
JOB = re.compile(r"/jobs/ingest(/[^/]+)?(/\w+)?/?$")  # "" | /{id} | /{id}/batches | ...
JOB_KIND = {("POST", ""): "create", ("PUT", "/batches"): "upload", ("PATCH", "/"): "close"}
JOB_KIND[("GET", "/")] = "status"  # other: a GET of result records (failedResults, ...)
WRITES = ("collections", "bulk create", "bulk upload", "bulk close", "batch/update")
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[writeback {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def fresh_database(admin_url: str | None, *, drop: bool = False) -> str:
    if admin_url is None:
        return f"sqlite:///{tempfile.mkdtemp(prefix='healthbot-bench-writeback-')}/bench.db"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB)))
        if not drop:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    return make_url(admin_url).set(database=DB).render_as_string(hide_password=False)


def live_portfolio(n: int, days: int) -> Portfolio:
    """n accounts still customers on the last day (a churned account gets no score)."""
    extra = n // 20 + 10
    while True:
        p = generate_portfolio(n + extra, days=days, seed=11)
        live = [a.external_id for a in p.accounts if not a.churned_on or a.churned_on > p.end]
        if len(live) >= n:
            return subset(p, set(live[:n]), tickets=False)
        extra *= 2


def sf_kinds(requests) -> Counter:
    out = Counter()
    for r in requests:
        if r.method == "PATCH" and r.path.endswith("/composite/sobjects"):
            out["collections"] += 1
        elif m := JOB.search(r.path):
            sub = "" if m[1] is None else m[2] or "/"
            out[f"bulk {JOB_KIND.get((r.method, sub), 'results ' + sub[1:])}"] += 1
        else:
            out["SOQL read-back" if r.arg("q") or "/query/" in r.path else r.method] += 1
    return out


def hs_kinds(requests) -> Counter:
    return Counter(r.path.rstrip("/").removeprefix("/crm/v3/objects/companies/") for r in requests)


def outbox(engine, target: str) -> int:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).where(OutboxItem.target == target)).scalar_one()


def progress(name: str, queued: int):
    shown = 0

    def on_chunk(rep: FlushReport) -> None:
        nonlocal shown
        if rep.sent >= shown + max(1, queued // 5):
            shown = rep.sent
            say(f"  {name}: {rep.sent:,}/{queued:,} sent, {rep.requests} requests")

    return on_chunk


def flush_all(engine, sinks) -> dict[str, tuple[FlushReport, Counter]]:
    """flush_outbox per CRM: its report, and the requests its fake saw, by kind."""
    out = {}
    for sink, sandbox, kinds in sinks:
        sandbox.server.reset_counts()
        on_chunk = progress(sink.name, outbox(engine, sink.name))
        rep = flush_outbox(engine, sink, on_chunk=on_chunk)
        out[sink.name] = rep, kinds(sandbox.server.requests)
        say(
            f"{sink.name}: {rep.sent:,} sent, {rep.acknowledged:,} acknowledged, "
            f"{rep.unchanged:,} unchanged, {rep.requests} requests, {rep.seconds:.2f}s"
        )
        if rep.requests != len(sandbox.server.requests):
            say(f"  warning: the fake saw {len(sandbox.server.requests)} requests")
    return out


def salesforce_min(rows: int, threshold: int) -> int:
    """The flush's chunks (10,000 above the threshold): a Bulk job each when over it (create,
    upload, close, 1 status read), else collections of 200."""
    size = BULK_CHUNK if rows > threshold else max(rows, 1)
    chunks = [min(size, rows - k) for k in range(0, rows, size)]
    return sum(4 if c > threshold else math.ceil(c / 200) for c in chunks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", type=int, default=10_000, help="accounts, each a changed score")
    ap.add_argument("--days", type=int, default=30, help="days of history per account")
    ap.add_argument("--bulk-threshold", type=int, default=2000, help="Salesforce: Bulk above")
    ap.add_argument("--bulk-wait", type=float, default=0.2, help="seconds between job polls")
    ap.add_argument("--sqlite", action="store_true", help="SQLite in a temp dir, not PostgreSQL")
    ap.add_argument("--url", default=ADMIN_URL, help="admin URL of the PostgreSQL server")
    args = ap.parse_args()
    admin, failed = None if args.sqlite else args.url, []

    say(f"generating {args.scores:,} accounts over {args.days} days")
    p = live_portfolio(args.scores, args.days)
    hs_ids = {a.external_id for a in p.accounts[3::4]}
    sf_ids = {a.external_id for a in p.accounts} - hs_ids
    sf = start_salesforce_sandbox(subset(p, sf_ids, tickets=False), api_limit=1_000_000)
    hs = start_hubspot_sandbox(subset(p, hs_ids, tickets=False))
    engine = make_engine(fresh_database(admin))
    try:
        upgrade(engine)
        usage = Path(tempfile.mkdtemp(prefix="healthbot-bench-writeback-")) / "usage.csv"
        write_usage_csv(p, usage)
        settings = sandbox_settings(
            sf, hs, usage_csv=usage, salesforce_bulk_threshold=args.bulk_threshold
        )
        hs_sink = hubspot_sink(settings)
        hs_sink.ensure_properties()
        sf_sink = SalesforceScoreSink(
            build_client(settings),
            fields=settings.salesforce_score_fields,
            bulk_threshold=args.bulk_threshold,
            bulk_wait=args.bulk_wait,
        )
        sinks = ((sf_sink, sf, sf_kinds), (hs_sink, hs, hs_kinds))
        say(f"syncing Salesforce ({len(sf_ids):,}), HubSpot ({len(hs_ids):,}) and usage")
        run = sync_all(engine, settings)
        if run.failed:
            sys.exit(f"sync failed: {run.failed}")
        for r in run.syncs:
            say(f"  {r.source}: {r.fetched:,} records in {r.seconds:.1f}s")
        model, ids = load_model(DEFAULT_MODEL_PATH), sorted(run.touched)
        scored = score_accounts(engine, settings, model, ids, day=p.end)
        queued = {t: outbox(engine, t) for t in ("salesforce", "hubspot")}
        build_seconds = round(time.perf_counter() - T0, 2)
        say(f"built in {build_seconds}s: {scored.scored:,} scored for {p.end}, queued {queued}")

        t = time.perf_counter()
        first = flush_all(engine, sinks)
        seconds = round(time.perf_counter() - t, 2)
        shown = {  # records that now show a score in the CRM
            "salesforce": sum(
                sf.db["Account"][i].get("Health_Score__c") is not None for i in sf_ids
            ),
            "hubspot": sum(
                c["properties"].get("health_score") not in (None, "")
                for c in hs.store.objects["companies"].values()
            ),
        }
        for name, (rep, _) in first.items():
            if not rep.acknowledged == shown[name] == queued[name] or outbox(engine, name):
                failed.append(
                    f"{name}: {queued[name]} queued, {rep.acknowledged} acknowledged, "
                    f"{shown[name]} shown in the CRM, {outbox(engine, name)} left in the outbox"
                )
        say("rerun: a second flush with nothing changed")
        rerun = flush_all(engine, sinks)
        again = score_accounts(engine, settings, model, ids, day=p.end)
        requeued = sum(outbox(engine, t) for t in first)
        say(f"rescored {again.scored:,} accounts (same values): {requeued:,} queued again")
        rescore = flush_all(engine, sinks)
    finally:
        engine.dispose()
        sf.stop()
        hs.stop()
        if admin:
            fresh_database(admin, drop=True)

    (sf_rep, sf_made), (_, hs_made) = first["salesforce"], first["hubspot"]
    n_sf, n_hs = queued["salesforce"], queued["hubspot"]
    sf_min, hs_min = salesforce_min(n_sf, args.bulk_threshold), math.ceil(n_hs / 100)
    if sf_rep.retrying or sf_rep.parked:  # a job with failed rows: + 1 failedResults read
        sf_min += sf_made["bulk create"]
    rerun_w, rescore_w = (
        sum(m[k] for _, m in f.values() for k in WRITES) for f in (rerun, rescore)
    )
    rerun_all = sum(m.total() for f in (rerun, rescore) for _, m in f.values())
    unchanged = sum(r.unchanged for r, _ in rescore.values())
    if rerun_w or rescore_w:
        failed.append(f"reruns wrote: {rerun_w} (nothing changed), {rescore_w} (rescored)")
    if unchanged != requeued:
        failed.append(f"rescore: {requeued} queued again, {unchanged} left the outbox unsent")

    print(f"\n{'CRM':<11}{'rows':>7}{'requests':>10}{'minimum':>9}  by kind", file=sys.stderr)
    table = (("salesforce", n_sf, sf_made, sf_min), ("hubspot", n_hs, hs_made, hs_min))
    for name, rows, made, low in table:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(made.items()))
        print(f"{name:<11}{rows:>7,}{made.total():>10}{low:>9}  {kinds}", file=sys.stderr)
    print(
        f"reruns: {rerun_w} writes with nothing changed, {rescore_w} after the rescore "
        f"({unchanged:,} rows left the outbox unsent)\n",
        file=sys.stderr,
    )
    result = {
        "scores": n_sf + n_hs,
        "salesforce_requests": sf_made.total(),
        "salesforce_min": sf_min,
        "hubspot_requests": hs_made.total(),
        "hubspot_min": hs_min,
        "rerun_requests": rerun_w,
        "seconds": seconds,
        "salesforce_mode": "bulk" if sf_made["bulk create"] else "collections",
        "salesforce_rows": n_sf,
        "hubspot_rows": n_hs,
        "salesforce_by_kind": dict(sf_made),
        "hubspot_by_kind": dict(hs_made),
        "polls": sf_made["bulk status"] - sf_made["bulk create"],  # beyond 1 status read a job
        "flush_seconds": {k: round(r.seconds, 2) for k, (r, _) in first.items()},
        "rescore_rerun_requests": rescore_w,
        "rerun_reads": rerun_all - rerun_w - rescore_w,
        "bulk_threshold": args.bulk_threshold,
        "database": "sqlite" if args.sqlite else "postgresql",
        "build_seconds": build_seconds,
        "wall_seconds": round(time.perf_counter() - T0, 2),
    }
    print(json.dumps(result | ({"failed": failed} if failed else {})))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
