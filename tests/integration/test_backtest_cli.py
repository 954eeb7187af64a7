"""A history from CSV alone (accounts, daily observations, outcomes; no CRM) imported, then
backfilled and backtested with the commands a user runs: real processes, real exit codes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from cli.main import main
from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.models import Observation, Outcome
from health.settings import get_settings
from tests.history import history
from tests.integration.test_cli import run as run_process


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def env(tmp_path) -> dict:
    url = f"sqlite:///{tmp_path / 'csv.db'}"
    upgrade(make_engine(url))
    return {"DATABASE_URL": url}


@pytest.fixture
def run(capsys, monkeypatch):
    """`healthbot ARGS` in this process (the same `main()`, exit code and output): for usage
    errors and quick refusals."""

    def invoke(*args: str, env: dict) -> Done:
        for key, value in env.items():  # what a process started with `env` would read
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(sys, "argv", ["healthbot", *args])
        get_settings.cache_clear()  # read `env`, not what an earlier test in this process set
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Done(code, captured.out, captured.err)

    yield invoke
    get_settings.cache_clear()  # later tests read their own environment


def test_csv_history_is_backfilled_and_backtested(env, tmp_path):
    """Real processes, as a user runs them (each reads its own environment)."""
    paths = history(24, days=200).write_csv(tmp_path)
    env = {**env, "HEALTHBOT_MIN_CONFIDENCE": "0"}  # usage alone: below the default floor
    with paths["observations"].open("a") as f:
        f.write("H001,active_users,31/02/2026,5\n")  # a malformed row: the rest lands
    with paths["outcomes"].open("a") as f:
        f.write("H002,lost,2026-09-01\n")
    said = {}
    for kind in ("accounts", "observations", "outcomes"):
        done = run_process("import", kind, str(paths[kind]), env=env)
        assert done.returncode == 0, done.stderr
        said[kind] = _flat(done.stdout)
    lines = sum(1 for _ in paths["observations"].open())
    assert f"line {lines}: unparsable date '31/02/2026' in observed_at" in said["observations"]
    assert "unknown kind 'lost'" in said["outcomes"]
    with session_scope(make_engine(env["DATABASE_URL"])) as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == lines - 2  # header
        assert s.scalar(select(func.count()).select_from(Outcome)) == 24

    too_early = run_process("backtest", "--lead-days", "30", env=env)
    assert too_early.returncode == 1
    assert "had no score 30 days before: run `healthbot score --backfill`" in too_early.stderr
    done = run_process("score", "--backfill", "--every", "7d", "--until", "2026-10-31", env=env)
    assert done.returncode == 0, done.stderr
    assert "Backfilled" in done.stdout and "24 accounts over 29 days" in done.stdout
    assert "without the renewal date" in _flat(done.stdout)

    html = tmp_path / "report.html"
    done = run_process("backtest", "--lead-days", "30", "--json", "--html", str(html), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("outcomes", "churned", "auc", "precision", "recall", "f1", "accuracy", "bands",
                "segments", "model_version"):  # fmt: skip
        assert key in report, key
    assert report["outcomes"] == 24 and report["churned"] == 12 and report["auc"] >= 0.8
    page = html.read_text()
    assert (
        "<svg" in page
        and "ROC curve" in page
        and "Calibration" in page
        and "http" not in (page.replace("http://www.w3.org/2000/svg", ""))
    )
    done = run_process("backtest", "--lead-days", "30", env=env)
    assert done.returncode == 0 and "Retention by score band" in done.stdout
    model = tmp_path / "fitted.yaml"
    done = run_process("backtest", "--fit", "--lead-days", "30", "--write", str(model), env=env)
    assert done.returncode == 0, done.stderr
    assert "Current" in done.stdout and "Proposed" in done.stdout
    shadow = run_process("backtest", "--shadow", str(model), "--lead-days", "30", "--json", env=env)
    assert shadow.returncode == 0, shadow.stderr
    assert json.loads(shadow.stdout)["candidate"]["model_version"].startswith(
        report["model_version"] + "-fit-"
    )


def test_usage_errors(env, run):
    assert run("backtest", "--write", "x.yaml", env=env).returncode == 1
    bad = run("score", "--backfill", "--every", "soon", env=env)
    assert bad.returncode == 1 and "--every 'soon'" in bad.stderr
    assert run("backtest", "--lead-days", "zero", env=env).returncode == 2
    both = run("backtest", "--fit", "--html", "r.html", env=env)  # one report at a time
    assert both.returncode == 1 and "one at a time" in both.stderr
    nowhere = run("backtest", "--html", "/no/such/dir/r.html", env=env)
    assert nowhere.returncode == 1 and "does not exist" in nowhere.stderr
    one = run("score", "acme", "--backfill", env=env)  # a backfill is every account's
    assert one.returncode == 1 and "drop ACCOUNT" in one.stderr
    alone = run("score", "--all", "--since", "2026-01-01", env=env)
    assert alone.returncode == 1 and "go with --backfill" in alone.stderr
    empty = run("score", "--backfill", env=env)  # a fresh database: say what to do first
    assert empty.returncode == 1 and "nothing to backfill" in empty.stderr
    assert "healthbot import" in _flat(empty.stderr)


def _flat(text: str) -> str:
    return " ".join(text.split())
