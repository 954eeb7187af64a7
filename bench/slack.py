"""Benchmark `/health` end to end: signed request -> HTTP 200 ack -> answer on the response_url.

    python bench/slack.py [--requests N] [--concurrency C] [--warmup W] [--url ADMIN_URL]
                          [--app-process [--workers P]] [--rate R]

Runs on the database `bench/score.py --keep` leaves (100,000 accounts; built first, and kept,
when missing). The fake Slack and the app (threaded HTTP server, Bolt) run in this process; C
threads post signed commands naming an account by name, domain or CRM id (the answer must be
its brief) or ambiguously (a picker). A request's time runs from sending it to its answer
reaching the fake's response_url. The product code is not changed: the functions `/health`
calls are wrapped to time its stages (exclusive): queue = sent -> listener started (Bolt holds
the HTTP ack until then), lookup = resolve_account, read = brief_message less Block Kit, blocks
= bot.views, other = the rest of answer(), post = answer returned -> arrival.
With --app-process the app runs as the product does, in its own process (`python -m bot`,
the Procfile's web; --workers P: P processes, WEB_CONCURRENCY), so it shares no interpreter
with the fake Slack and the callers; only ack and total are timed then. By default each caller
sends its next command as soon as the last is answered (a closed loop: it measures the app
saturated); --rate R sends R commands a second in all, on a fixed schedule (an open loop: the
latency people see at that rate).
Progress on stderr; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import queue
import random
import secrets
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

import requests
import score  # bench/score.py: its database and how its accounts are named
from sqlalchemy.engine import make_url

from bot import commands, views
from bot.app import build_app
from bot.server import PATH, make_server
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from health.db import make_engine
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH, Settings

SECRET = secrets.token_hex(16)
STAGES = ("ack", "queue", "lookup", "read", "blocks", "other", "post", "total")
T0 = time.perf_counter()
local = threading.local()  # the stage times of the command this listener thread answers
stage_log: dict[str, dict] = {}  # user id (one per request) -> its stage times
arrived: dict[str, tuple[float, int]] = {}  # response_url id -> (arrival, HTTP status)
waiting: dict[str, threading.Event] = {}
FORM = dict(token="x", team_id="T0", channel_id="C1", command="/health", trigger_id="1.2.b")
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


def say(msg: str) -> None:
    print(f"[slack {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def timed(module, name: str, stage: str) -> None:
    """Wrap module.name: its time, less that of wrapped calls inside it, adds to `stage`."""
    orig = getattr(module, name)

    def wrapper(*args, **kwargs):
        if (rec := getattr(local, "rec", None)) is None:
            return orig(*args, **kwargs)
        rec["_in"].append(0.0)
        t = time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            took = time.perf_counter() - t
            rec[stage] = rec.get(stage, 0.0) + took - rec["_in"].pop()
            rec["_in"][-1] += took

    setattr(module, name, wrapper)


def instrument(fake) -> None:
    timed(commands, "resolve_account", "lookup")
    timed(commands, "nearest_names", "lookup")
    timed(commands, "brief_message", "read")
    for name in ("brief_blocks", "picker_blocks", "not_found_blocks", "as_dicts"):
        timed(views, name, "blocks")
    answer, respond = commands.answer, fake._respond

    def timed_answer(ctx, text, user_id, client):
        local.rec = rec = {"_in": [0.0], "start": time.perf_counter()}
        try:
            return answer(ctx, text, user_id, client)
        finally:
            rec["end"] = time.perf_counter()
            rec["other"] = rec["end"] - rec["start"] - rec.pop("_in")[0]
            local.rec, stage_log[user_id] = None, rec

    def timed_respond(rid, req):
        resp = respond(rid, req)
        arrived[rid] = (time.perf_counter(), resp.status)
        if (event := waiting.pop(rid, None)) is not None:
            event.set()
        return resp

    commands.answer = timed_answer  # the listener looks it up by name at each call
    fake._respond = timed_respond


def queries(n: int, accounts: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """(text, the account whose brief must answer; None: a picker), named as in account_rows."""
    out = []
    for _ in range(n):
        i, kind = rng.randint(1, accounts), rng.random()
        if kind < 0.3:
            out.append((f"Account {i}" if kind < 0.15 else f"account {i}", f"Account {i}"))
        elif kind < 0.55:
            out.append((f"acct{i}.example.com", f"Account {i}"))
        elif kind < 0.8:
            out.append((f"acc-{i:07d}", f"Account {i}"))
        else:  # acctI matches acctI.example.com, acctI0.example.com, ...: ambiguous
            out.append((f"acct{rng.randint(1, accounts // 10)}", None))
    return out


def check(msg: dict, expect: str | None) -> str | None:
    if expect is None:
        return None if " matches " in msg.get("text", "") else f"no picker: {msg.get('text')!r}"
    head = (msg.get("blocks") or [{}])[0]
    if head.get("type") == "header" and head["text"]["text"] == expect:
        return None
    return f"not the brief of {expect}: {msg.get('text')!r}"


def command(fake, http, url: str, text: str, expect: str | None) -> dict | str:
    """One signed `/health text`: its stage times, or what went wrong."""
    rurl = fake.response_url()
    rid = rurl.rsplit("/", 1)[1]
    uid, event = f"UB{rid}", threading.Event()
    waiting[rid] = event
    fields = {**FORM, "user_id": uid, "text": text, "response_url": rurl}
    body, ts = urlencode(fields), str(int(time.time()))
    sig = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={sig}", **FORM_TYPE}
    sent = time.perf_counter()
    try:
        status = http.post(url, data=body, headers=headers, timeout=30).status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    acked = time.perf_counter()
    if status != 200:
        return f"ack {status}"
    if not event.wait(30) or arrived[rid][1] != 200:
        return f"answer {arrived.get(rid, (0, 'missing'))[1]}"
    if problem := check(fake.responses[rid][0], expect):
        return problem
    rec, at = stage_log.pop(uid, None), arrived[rid][0]
    if rec is None:  # the app in its own process: no stage times
        rec = {"start": sent, "end": at}
    rec.update(ack=acked - sent, queue=rec["start"] - sent, post=at - rec["end"], total=at - sent)
    return rec


def run(
    fake, url: str, jobs: list, concurrency: int, label: str, rate: float | None = None
) -> tuple[list, list]:
    todo, results, errors = queue.Queue(), [], []
    for k, job in enumerate(jobs):
        todo.put((k, job))
    start = time.perf_counter()

    def worker() -> None:
        http = requests.Session()
        while True:
            try:
                k, (text, expect) = todo.get_nowait()
            except queue.Empty:
                return
            if rate:  # the k-th command is due at start + k / rate
                time.sleep(max(0.0, start + k / rate - time.perf_counter()))
            out = command(fake, http, url, text, expect)
            if isinstance(out, dict):
                results.append(out)
            else:
                errors.append((text, out))
            if (done := len(results) + len(errors)) % max(1, len(jobs) // 10) == 0:
                say(f"  {label} {done}/{len(jobs)}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


class _Process:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def shutdown(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def app_process(settings: Settings, database_url: str, workers: int) -> tuple[_Process, str]:
    """`python -m bot` on a free port, configured like `settings`, answering in `workers`
    processes (WEB_CONCURRENCY); waits until it listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port)}
    env["WEB_CONCURRENCY"] = str(workers)
    env |= {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET}
    env |= {"SLACK_API_URL": settings.slack_api_url, "SALESFORCE_INSTANCE_URL": "https://x.test"}
    proc = subprocess.Popen([sys.executable, "-m", "bot"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return _Process(proc), f"http://127.0.0.1:{port}{PATH}"
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the app process did not start listening in 60 s")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--accounts", type=int, default=100_000, help="bench/score.py --accounts")
    ap.add_argument("--url", default=score.ADMIN_URL, help="admin URL of the server to use")
    ap.add_argument("--db", default=score.DB)
    ap.add_argument("--app-process", action="store_true", help="the app in its own process")
    ap.add_argument("--workers", type=int, default=1, help="--app-process: its processes")
    ap.add_argument("--rate", type=float, help="commands per second in all (an open loop)")
    args = ap.parse_args()
    url = make_url(args.url).set(database=args.db).render_as_string(hide_password=False)
    if not score.reusable(url, args.accounts):
        say(f"no {args.db} with {args.accounts} accounts: bench/score.py --keep builds it")
        cmd = [sys.executable, score.__file__, "--keep", "--url", args.url, "--db", args.db]
        subprocess.run([*cmd, "--accounts", str(args.accounts)], stdout=sys.stderr, check=True)
    engine, rng = make_engine(url), random.Random(20261130)
    with start_slack_sandbox() as fake:
        settings = Settings(
            _env_file=None,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=fake.url,
            salesforce_instance_url="https://x.test",
        )
        if args.app_process:
            server, target = app_process(settings, url, args.workers)
        else:
            app = build_app(settings, engine=engine, model=load_model(DEFAULT_MODEL_PATH))
            server = make_server(app, "127.0.0.1", 0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            target = f"http://127.0.0.1:{server.server_address[1]}{PATH}"
        instrument(fake)
        say(f"warm-up: {args.warmup} requests")
        warm = queries(args.warmup, args.accounts, rng)
        if failed := run(fake, target, warm, args.concurrency, "warm-up")[1]:
            say(f"warm-up: {len(failed)} errors, e.g. {failed[0]}")
        say(f"{args.requests} requests, {args.concurrency} callers, {args.accounts} accounts")
        load, jobs, t = os.getloadavg()[0], queries(args.requests, args.accounts, rng), time.time()
        results, errors = run(fake, target, jobs, args.concurrency, "answered", args.rate)
        wall = time.time() - t
        server.shutdown()
    engine.dispose()
    for text, problem in errors[:10]:
        say(f"error: /health {text}: {problem}")
    say(f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} (other work skews timings)")
    slow = sorted(results, key=lambda r: r["total"])[-max(1, len(results) // 100) :] or [{}]
    stages = {}
    say("stage    p50 ms   p99 ms | mean of the slowest 1% (stages_ms: these three)")
    for s in STAGES:
        xs = [r.get(s, 0.0) for r in results]
        slow_ms = round(1000 * sum(r.get(s, 0.0) for r in slow) / len(slow), 1)
        stages[s] = [pct(xs, 0.5), pct(xs, 0.99), slow_ms]  # the JSON's stages_ms
        say(f"{s:7} {pct(xs, 0.5):8.1f} {pct(xs, 0.99):8.1f} | {slow_ms:8.1f}")
    totals, acks = [r["total"] for r in results], [r["ack"] for r in results]
    result = {"accounts": args.accounts, "requests": len(jobs), "concurrency": args.concurrency}
    result["app"] = "this process (stages timed)"
    if args.app_process:
        result["app"] = f"own process{'es' if args.workers > 1 else ''} ({args.workers})"
    result["rate"] = args.rate or "closed loop"
    result |= {"p50_ms": pct(totals, 0.5), "p99_ms": pct(totals, 0.99), "max_ms": pct(totals, 1)}
    result |= {"ack_p99_ms": pct(acks, 0.99), "errors": len(errors)}
    result |= {"requests_per_s": round(len(jobs) / wall, 1), "stages_ms": stages}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
