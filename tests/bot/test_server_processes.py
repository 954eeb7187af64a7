"""`python -m bot` as the Procfile runs it, with WEB_CONCURRENCY=2: two worker processes
answer signed commands on one port, SIGTERM stops them all; a bad WEB_CONCURRENCY is a
one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bot.server import PATH
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from tests.bot.test_health_command import SECRET, answer, command, seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            out.append(int(d.name))
    return out


def start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_two_worker_processes_answer_and_stop_together(pg_engine):
    seed(pg_engine)
    port = free_port()
    with start_slack_sandbox({"U1": {"email": "dana@x.test"}}) as fake:
        env = {
            **os.environ,
            "DATABASE_URL": pg_engine.url.render_as_string(hide_password=False),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.url,
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
        }
        env.pop("SLACK_APP_TOKEN", None)
        proc = start(env)
        url = f"http://127.0.0.1:{port}{PATH}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "the app did not listen in 30 s"
                try:
                    requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            workers = children(proc.pid)
            assert len(workers) == 2
            for _ in range(4):  # new connections each: whichever worker accepts answers
                resp, _took, rid = command(fake, url, "acme corp")
                assert resp.status_code == 200
                assert answer(fake, rid)[0]["blocks"][0]["text"]["text"] == "Acme Corp"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert not [w for w in workers if Path(f"/proc/{w}").exists()]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_bad_web_concurrency_is_a_one_line_error():
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET}
    env |= {"WEB_CONCURRENCY": "two", "PORT": str(free_port())}
    env.pop("SLACK_APP_TOKEN", None)
    proc = start(env)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert err.decode().strip() == (
        "healthbot: WEB_CONCURRENCY='two': set it to a whole number of processes, >= 1"
    )
