"""`healthbot doctor` against real parts: the sandbox vendor APIs over HTTP(S), PostgreSQL and
Redis. Nothing is mocked: a broken part is really broken (a wrong token, a closed port, a
database without the schema, a CRM without the score fields)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from pydantic import SecretStr

from cli.demo_sync import sandbox_settings
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.sink import HubSpotScoreSink
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from connectors.sandbox.zendesk_api import start_zendesk_sandbox
from health.db import make_engine
from health.migrate import upgrade
from health.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL
from workers.doctor import UPGRADE, Check, failed, run_checks

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CRM_SETUP = "run `healthbot crm setup`"


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=12, days=60)


@pytest.fixture
def sandboxes(portfolio) -> Iterator[tuple]:
    with (
        start_salesforce_sandbox(portfolio) as sf,
        start_hubspot_sandbox(portfolio) as hs,
        start_zendesk_sandbox(portfolio) as zd,
    ):
        yield sf, hs, zd


@pytest.fixture
def hubspot_ready(sandboxes) -> None:
    """The score properties created on the HubSpot sandbox, as `healthbot crm setup` would."""
    _, hs, _ = sandboxes
    HubSpotScoreSink(HubSpotClient(access_token=hs.token, base_url=hs.url)).ensure_properties()


@pytest.fixture
def usage_csv(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("account,day,active_users,seats\nA-1,2026-10-01,12,20\n")
    return path


@pytest.fixture
def good(sandboxes, hubspot_ready, postgres_url, pg_engine, usage_csv) -> Settings:
    """Every part configured and working."""
    return sandbox_settings(
        *sandboxes, database_url=postgres_url, redis_url=REDIS_URL, usage_csv=usage_csv
    )


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A PostgreSQL database nobody has migrated."""
    name = f"healthbot_doctor_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_part(checks: list[Check]) -> dict[str, Check]:
    parts = [c.part for c in checks]
    assert len(parts) == len(set(parts)), parts  # one line per part
    return {c.part: c for c in checks}


def test_all_good_every_line_ok(good):
    checks = by_part(run_checks(good))
    assert set(checks) == {
        "database",
        "redis",
        "salesforce",
        "hubspot",
        "zendesk",
        "usage",
        "salesforce score fields",
        "hubspot score fields",
        "playbooks",
    }
    assert all(c.ok is True for c in checks.values()), [c for c in checks.values() if not c.ok]
    assert "schema at head" in checks["database"].detail
    assert "daily API requests left" in checks["salesforce"].detail
    assert checks["hubspot score fields"].detail == "all 5 company properties present"
    assert checks["salesforce score fields"].detail == "all 5 Account fields present"
    assert "active_users, seats" in checks["usage"].detail
    assert checks["playbooks"].detail.startswith("8 playbooks from the shipped defaults")


def test_a_broken_playbook_set_fails_and_says_how_to_see_every_problem(good, tmp_path):
    (tmp_path / "a.yaml").write_text("name: A\nwhen: {tier_entred: critical}\ntask: {title: A}\n")
    (tmp_path / "b.yaml").write_text(
        "name: B\nwhen: {score_below: 40}\ntask: {title: B, due: soon}\n"
    )
    checks = by_part(run_checks(good.model_copy(update={"healthbot_playbooks": tmp_path})))
    line = checks["playbooks"]
    assert line.ok is False and "unknown trigger 'tier_entred'" in line.detail
    assert "(+1 more)" in line.detail and "no tasks are opened" in line.detail
    assert line.fix == "run `healthbot playbooks check` and fix every line it prints"


@pytest.mark.parametrize(
    ("source", "setting", "variable"),
    [
        ("salesforce", "salesforce_access_token", "SALESFORCE_ACCESS_TOKEN"),
        ("hubspot", "hubspot_access_token", "HUBSPOT_ACCESS_TOKEN"),
        ("zendesk", "zendesk_api_token", "ZENDESK_API_TOKEN"),
    ],
)
def test_a_wrong_token_fails_its_source_naming_the_variable(good, source, setting, variable):
    checks = by_part(run_checks(good.model_copy(update={setting: SecretStr("not-the-token")})))
    line = checks[source]
    assert line.ok is False and variable in line.detail, line
    assert "credentials" in line.fix
    assert [c.part for c in failed(list(checks.values()))] == [source]
    if f"{source} score fields" in checks:  # not probed again behind a failing login
        assert checks[f"{source} score fields"].ok is None


def test_an_unmigrated_database_says_run_db_upgrade(good, empty_database):
    settings = good.model_copy(update={"database_url": empty_database})
    line = by_part(run_checks(settings))["database"]
    assert line.ok is False and "no schema yet" in line.detail and line.fix == UPGRADE

    engine = make_engine(empty_database)
    try:
        upgrade(engine, "0002")  # an older release's schema
        line = by_part(run_checks(settings))["database"]
        assert line.ok is False and "schema at 0002, head is" in line.detail, line
        assert line.fix == UPGRADE
        upgrade(engine)
    finally:
        engine.dispose()
    assert by_part(run_checks(settings))["database"].ok is True


def test_an_unreachable_database_says_check_database_url(good):
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    line = by_part(run_checks(good.model_copy(update={"database_url": url})))["database"]
    assert line.ok is False and line.fix == "check DATABASE_URL", line
    assert "refused" in line.detail.lower()


def test_an_unreachable_redis_fails(good):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    line = by_part(run_checks(good.model_copy(update={"redis_url": url})))["redis"]
    assert line.ok is False and line.fix == "check REDIS_URL"
    assert url in line.detail


def test_no_redis_is_embedded_mode_not_a_failure(good):
    checks = run_checks(good.model_copy(update={"redis_url": None}))
    line = by_part(checks)["redis"]
    assert line.ok is None and "embedded mode" in line.detail
    assert failed(checks) == []


def test_hubspot_without_the_score_properties_says_run_crm_setup(sandboxes, postgres_url):
    _, hs, _ = sandboxes  # a fresh portal: nobody has run `healthbot crm setup`
    settings = sandbox_settings(*sandboxes, database_url=postgres_url)
    line = by_part(run_checks(settings))["hubspot score fields"]
    assert line.ok is False and line.fix == CRM_SETUP
    assert "health_score" in line.detail and "health_updated_at" in line.detail

    HubSpotScoreSink(HubSpotClient(access_token=hs.token, base_url=hs.url)).ensure_properties()
    assert by_part(run_checks(settings))["hubspot score fields"].ok is True


def test_a_renamed_salesforce_field_missing_from_the_org_says_run_crm_setup(good):
    settings = good.model_copy(update={"salesforce_score_fields": {"tier": "Acme_Tier__c"}})
    line = by_part(run_checks(settings))["salesforce score fields"]
    assert line.ok is False and line.fix == CRM_SETUP
    assert line.detail == "missing Account fields: Acme_Tier__c"


def test_no_source_at_all_names_the_variables(postgres_url, pg_engine):
    checks = by_part(run_checks(Settings(_env_file=None, database_url=postgres_url)))
    line = checks["sources"]
    assert line.ok is False
    for variable in ("SALESFORCE_ACCESS_TOKEN", "HUBSPOT_ACCESS_TOKEN", "USAGE_CSV"):
        assert variable in line.fix


def test_a_partly_configured_source_names_what_is_missing(good):
    settings = good.model_copy(update={"zendesk_api_token": None})
    line = by_part(run_checks(settings))["zendesk"]
    assert line.ok is False and "ZENDESK_API_TOKEN" in line.detail, line


@pytest.mark.parametrize(
    ("query", "ok", "says"),
    [
        ("SELECT 'A-1' AS account, DATE '2026-10-01' AS day, 3 AS seats", True, "signals seats"),
        ("SELECT 1 AS x", False, "no 'day' column"),
        ("SELECT * FROM no_such_table", False, "no_such_table"),
    ],
)
def test_usage_from_a_database_reads_the_columns_only(good, postgres_url, query, ok, says):
    update = {"usage_csv": None, "usage_database_url": postgres_url, "usage_query": query}
    line = by_part(run_checks(good.model_copy(update=update)))["usage"]
    assert line.ok is ok and says in line.detail, line


def test_slack_token_is_checked_against_slack(good):
    from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox

    with start_slack_sandbox() as fake:
        slack = {"slack_api_url": fake.url, "slack_signing_secret": SecretStr("s")}
        ok = run_checks(good.model_copy(update={**slack, "slack_bot_token": SecretStr(TOKEN)}))
        assert by_part(ok)["slack"].ok is True and "T0SANDBOX" in by_part(ok)["slack"].detail
        bad = run_checks(good.model_copy(update={**slack, "slack_bot_token": SecretStr("xoxb-1")}))
        assert by_part(bad)["slack"].ok is False and "invalid_auth" in by_part(bad)["slack"].detail
        assert "SLACK_BOT_TOKEN" in by_part(bad)["slack"].fix
    assert "slack" not in by_part(run_checks(good))


def run_doctor(settings: Settings, cwd) -> subprocess.CompletedProcess:
    """`doctor` as the command runs it: a real process reading its environment."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env["PYTHONIOENCODING"] = "utf-8"
    for name, value in settings.model_dump(exclude_none=True, exclude_defaults=True).items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = json.dumps(value) if isinstance(value, dict) else str(value)
    code = "import typer; from cli.doctor import doctor; typer.run(doctor)"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_the_command_prints_one_line_per_part_and_exits_by_what_failed(good, tmp_path):
    done = run_doctor(good, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("✓ ") for line in lines) == 9, done.stdout
    assert lines[-1] == "healthbot is ready"

    broken = good.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    done = run_doctor(broken, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (redis_line,) = [line for line in done.stdout.splitlines() if line.startswith("✗ ")]
    assert redis_line.startswith("✗ redis") and redis_line.endswith("→ check REDIS_URL")
    assert done.stdout.splitlines()[-1] == "1 problem to fix"
