"""The `healthbot` command as a user runs it: a real process, real exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.fixture
def db(tmp_path) -> dict:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    at = datetime(2026, 10, 30, tzinfo=UTC)
    names = [
        ("Acme Logistics", "acme.com"),
        ("Acme Health", "acmehealth.com"),
        ("Northwind", "northwind.test"),
    ]
    with session_scope(engine) as s:
        store_batch(
            session=s,
            source="hubspot",
            now=at,
            batch=Batch(
                accounts=[AccountRecord("hubspot", str(i), n, d) for i, (n, d) in enumerate(names)],
                observations=[
                    ObservationRecord(AccountRef(crm_id=str(i)), "nps", at, 3 + 3 * i, "x")
                    for i in range(3)
                ],
            ),
        )
    return {"DATABASE_URL": url}


def test_score_then_brief(db):
    done = run("score", "--all", "--day", "2026-11-01", env=db)
    assert done.returncode == 0, done.stderr
    assert "Scored 3 of 3 accounts for 2026-11-01" in done.stdout
    brief = run("brief", "northwind", "--json", env=db)
    assert brief.returncode == 0, brief.stderr
    data = json.loads(brief.stdout)
    assert data["line"]["name"] == "Northwind" and data["score_date"] == "2026-11-01"
    # an NPS answer alone is no ground for a tier: the brief says so and what would fill it
    assert data["line"]["tier"] == data["announced_tier"] == "insufficient"
    reason = data["line"]["reason"]
    assert reason.startswith("Northwind has too little data for a tier (10% confidence")
    assert "no fresh Product usage or Adoption depth" in reason and "USAGE_CSV" in reason
    assert run("brief", "acme.com", env=db).returncode == 0  # a domain picks one account


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("brief", "acme"),
            "'acme' matches 2 accounts: Acme Logistics (acme.com), Acme Health (acmehealth.com)",
        ),
        (("brief", "zzz"), "no account matches 'zzz'"),
        (("score",), "say which account to score, or --all"),
        (("score", "--all", "--day", "31/02"), "--day '31/02' is not a date"),
    ],
)
def test_bad_input_is_one_clear_line(db, args, message):
    done = run(*args, env=db)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_unscored_account_and_bad_model_and_missing_schema(db, tmp_path):
    done = run("brief", "northwind", env=db)
    assert done.returncode == 1 and "has no score yet: run `healthbot score --all`" in done.stderr
    bad = tmp_path / "model.yaml"
    bad.write_text("version: 1\n")
    done = run("brief", "northwind", env={**db, "HEALTHBOT_MODEL": str(bad)})
    assert done.returncode == 1 and f"{bad}: signals: Field required" in done.stderr
    empty = {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    done = run("score", "--all", env=empty)
    assert done.returncode == 1 and "has `healthbot db upgrade` run?" in done.stderr
    assert run("db", "upgrade", env=empty).returncode == 0
    assert run("score", "--all", "--day", str(date(2026, 11, 1)), env=empty).returncode == 0


def test_sync_runs_every_source_and_a_failing_one_stops_only_itself(db, tmp_path):
    from connectors.sandbox.portfolio import generate_portfolio
    from connectors.sandbox.zendesk_api import start_zendesk_sandbox

    usage = tmp_path / "usage.csv"
    usage.write_text("domain,day,active_users,seats\nacme.com,2026-10-30,40,50\n")
    zendesk = start_zendesk_sandbox(generate_portfolio(3, 30))
    try:
        env = {
            **db,
            "USAGE_CSV": str(usage),
            "ZENDESK_BASE_URL": zendesk.url,
            "ZENDESK_EMAIL": zendesk.email,
            "ZENDESK_API_TOKEN": "wrong-token",
        }
        done = run("sync", env=env)
    finally:
        zendesk.stop()
    assert done.returncode == 1
    assert "sync failed for zendesk:" in done.stderr and "ZENDESK_API_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert "usage" in done.stdout and "Scored 1 changed accounts" in done.stdout
    again = run("sync", "--source", "usage", env=env)
    assert again.returncode == 0 and "Scored" not in again.stdout  # nothing changed the 2nd time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nonexistent",), "No such command 'nonexistent'"),
        (("score", "--bogus"), "No such option: --bogus"),
        (("brief",), "Missing argument"),
        (("writeback", "--status", "extra"), "Got unexpected extra argument"),
    ],
)
def test_usage_errors_show_the_usage_line_and_exit_2(db, args, message):
    done = run(*args, env=db)
    assert done.returncode == 2, done.stderr
    assert "Usage: " in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr


def test_run_and_writeback_without_configuration_say_what_to_set(db):
    done = run("run", env=db)
    assert done.returncode == 1 and "No source is configured" in done.stderr
    done = run("writeback", env=db)
    assert done.returncode == 1 and "no CRM is configured to receive scores" in done.stderr
    status = run("writeback", "--status", env=db)
    assert status.returncode == 0 and "The outbox is empty" in status.stdout


def crm_env(db: dict, settings) -> dict:
    return {
        **db,
        "SALESFORCE_INSTANCE_URL": settings.salesforce_instance_url,
        "SALESFORCE_ACCESS_TOKEN": settings.salesforce_access_token.get_secret_value(),
        "REQUESTS_CA_BUNDLE": settings.requests_ca_bundle,
        "HUBSPOT_BASE_URL": settings.hubspot_base_url,
        "HUBSPOT_ACCESS_TOKEN": settings.hubspot_access_token.get_secret_value(),
    }


def table_row(out: str, first: str) -> list[str]:
    """The last table row of `out` that starts with `first` (the writeback table comes last)."""
    return [line.split() for line in out.splitlines() if line.split()[:1] == [first]][-1]


def test_run_twice_writes_once_then_nothing(tmp_path):
    from connectors.sandbox.portfolio import generate_portfolio
    from tests.contract.helpers import crm_sandboxes, written_ids

    url = f"sqlite:///{tmp_path / 'run.db'}"
    upgrade(make_engine(url))
    with crm_sandboxes(generate_portfolio(24, 60, seed=3)) as (sf, hs, settings):
        env = crm_env({"DATABASE_URL": url}, settings)
        first = run("run", env=env)
        assert first.returncode == 0, first.stderr
        sent = written_ids(sf, hs)
        assert len(sent) >= 20 and set(sent.values()) == {1}
        assert table_row(first.stdout, "salesforce")[1] == str(sum(sf.applied.values()))
        second = run("run", env=env)
        assert second.returncode == 0, second.stderr
        assert "Nothing changed in any source" in second.stdout
        assert written_ids(sf, hs) == sent  # no further write
        assert table_row(second.stdout, "hubspot")[1] == "0"


def test_writeback_status_lists_parked_rows_with_the_crm_error(tmp_path):
    from connectors.sandbox.portfolio import generate_portfolio
    from tests.contract.helpers import crm_sandboxes

    url = f"sqlite:///{tmp_path / 'parked.db'}"
    upgrade(make_engine(url))
    with crm_sandboxes(generate_portfolio(12, 60, seed=4)) as (sf, hs, settings):
        env = crm_env({"DATABASE_URL": url}, settings)
        env.update(
            SALESFORCE_SCORE_FIELDS='{"score": "Health_Scor__c"}', WRITEBACK_MAX_ATTEMPTS="1"
        )
        done = run("run", env=env)
        assert done.returncode == 0, done.stderr
        assert "see `healthbot writeback --status`" in done.stdout
        status = run("writeback", "--status", env=env)
        assert status.returncode == 0, status.stderr
        parked = next(  # the summary row: CRM, pending, retrying, in flight, parked
            line.split() for line in status.stdout.splitlines() if line.startswith(" salesforce")
        )
        assert len(parked) == 5
        assert parked[-1] != "0"  # the Parked column
        assert "parked · 1 try" in status.stdout
        assert not getattr(sf, "applied", {})  # no Account was updated
        assert "INVALID_FIELD: No such column 'Health_Scor__c' on sobject" in status.stdout
        env.pop("SALESFORCE_SCORE_FIELDS")  # the mapping fixed: the parked rows go out
        retried = run("writeback", "--retry-parked", env=env)
        assert retried.returncode == 0, retried.stderr
        assert f"{parked[-1]} parked rows will be sent again" in retried.stdout
        assert sum(sf.applied.values()) == int(parked[-1])
        assert "The outbox is empty" in run("writeback", "--status", env=env).stdout


def test_accounts_link_and_unlink_as_a_person_does(db):
    assert "Nothing to review" in run("accounts", "review", env=db).stdout
    linked = run("accounts", "link", "Acme Logistics", "northwind", env=db)
    assert linked.returncode == 0, linked.stderr
    assert "Linked Northwind into Acme Logistics: one account now" in linked.stdout
    brief = json.loads(run("brief", "Acme Logistics", "--json", env=db).stdout)
    assert [(r["source"], r["id"], r["linked_by"]) for r in brief["records"]] == [
        ("hubspot", "0", "new"),
        ("hubspot", "2", "manual"),
    ]
    assert run("brief", "northwind.test", "--json", env=db).returncode == 0  # a linked domain
    unlinked = run("accounts", "unlink", "hubspot:2", env=db)
    assert unlinked.returncode == 0 and "hubspot:2 is now its own account: Northwind" in (
        unlinked.stdout
    )
    for args, message in (
        (("accounts", "unlink", "hubspot:0"), "is the account's only record"),
        (("accounts", "unlink", "hubspot:99"), "no record with id 'hubspot:99'"),
        (("accounts", "link", "acme", "northwind"), "'acme' matches 2 accounts"),
    ):
        done = run(*args, env=db)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_playbooks_check_report_and_tasks_as_a_user_runs_them(db, tmp_path):
    ok = run("playbooks", "check", env=db)
    assert ok.returncode == 0 and "ok 8 playbooks" in ok.stdout and "renewal_risk" in ok.stdout
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "a.yaml").write_text("name: A\nwhen: {tier_entred: critical}\ntask: {}\n")
    (tmp_path / "pb" / "b.yaml").write_text(
        "name: B\nwhen: {score_below: 40}\ntask:\n  title: x\n  due: soon\n"
    )
    bad = run("playbooks", "check", str(tmp_path / "pb"), env=db)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    lines = bad.stderr.splitlines()
    unknown = "a.yaml:2: unknown trigger 'tier_entred' (did you mean 'tier_entered'?)"
    assert any(unknown in line for line in lines)
    assert any("a.yaml:3: task needs a `title`" in line for line in lines)
    assert any("b.yaml:5: due: not a duration: 'soon'" in line for line in lines)
    assert lines[-1].startswith("3 problem(s) in ")
    # scoring today opens tasks through the default playbooks; the report counts them
    (tmp_path / "mine").mkdir()  # a set of one playbook that fires for every scored account
    (tmp_path / "mine" / "all.yaml").write_text(
        "name: Everyone\nwhen: {score_at_least: 0}\ntask: {title: 'Look at {account.name}'}\n"
    )
    mine = {**db, "HEALTHBOT_PLAYBOOKS": str(tmp_path / "mine")}
    scored = run("score", "--all", env=mine)
    assert scored.returncode == 0 and "Playbooks: 3 tasks opened" in scored.stdout
    tasks = run("playbooks", "tasks", env=mine)
    assert tasks.stdout.count("Look at") == 3 and "Acme Health" in tasks.stdout
    report = run("playbooks", "report", "--json", env=mine)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["accounts"] == 3 and data["overall"]["tasks"] == 3
    assert [(p["playbook"], p["open"]) for p in data["playbooks"]] == [("Everyone", 3)]
    table = run("playbooks", "report", env=mine)
    assert "saved" in table.stdout and "All playbooks" in table.stdout and "…" not in table.stdout
    assert run("playbooks", "report", "--since", "yesterday", env=db).returncode == 1
    broken = run("score", "--all", env={**db, "HEALTHBOT_PLAYBOOKS": str(tmp_path / "pb")})
    assert broken.returncode == 0  # the scores stand; the playbooks say why they did not run
    assert "playbooks not run: " in broken.stdout and "healthbot playbooks check" in broken.stdout
