"""`healthbot doctor`: is every part this deployment needs reachable and set up?

Each check is a plain function returning one `Check` line: ok (True), broken (False) or
information only (None), with what to do when it is broken. Every probe is one cheap read-only
call with short timeouts and at most one quick retry, so the doctor never hangs on a dead host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.delivery import SlackApiError, whoami
from connectors import registry
from connectors.base import (
    AuthConnectorError,
    ConnectorError,
    PermanentConnectorError,
    TransientConnectorError,
)
from connectors.hubspot import fields as hubspot_fields
from connectors.salesforce.client import RetryingSession
from health.db import make_engine
from health.migrate import alembic_config
from health.records import SwitchedOff
from health.settings import Settings
from playbooks.loader import check_playbooks as load_playbook_set
from workers import doctor_fields as score_fields
from workers.doctor_fields import MissingFields

TIMEOUT = 8.0  # seconds per request or connection attempt
RETRIES = 1  # one quick retry of a blip; never a long wait
UPGRADE = "run `healthbot db upgrade`"
WHERE = {  # the variable that says where each source lives
    "salesforce": "SALESFORCE_INSTANCE_URL",
    "hubspot": "HUBSPOT_BASE_URL",
    "zendesk": "ZENDESK_BASE_URL",
    "usage": "USAGE_CSV or USAGE_DATABASE_URL / USAGE_QUERY",
    "stripe": "STRIPE_BASE_URL",
}
SOURCE_VARS = (
    "SALESFORCE_INSTANCE_URL + SALESFORCE_ACCESS_TOKEN, HUBSPOT_ACCESS_TOKEN, "
    "ZENDESK_BASE_URL + ZENDESK_EMAIL + ZENDESK_API_TOKEN, "
    "USAGE_CSV (or USAGE_DATABASE_URL + USAGE_QUERY), or STRIPE_API_KEY"
)


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool | None  # None: information, never a failure
    detail: str
    fix: str = ""


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a deployment needs its parts."""
    sources = check_sources(settings)
    broken = {c.part for c in sources if c.ok is False}
    checks = [check_database(settings), check_redis(settings), *sources]
    for name in registry.configured_sinks(settings):
        if name in broken:  # the same failure again (and another timeout) would tell nothing new
            checks.append(Check(f"{name} score fields", None, f"not checked: {name} failed above"))
        else:
            checks.append(check_score_fields(settings, name))
    checks.append(check_playbooks(settings))
    if (slack := check_slack(settings)) is not None:
        checks.append(slack)
    return checks


def check_playbooks(settings: Settings) -> Check:
    """The playbook set loads whole (the workers never run part of a broken set)."""
    book, problems = load_playbook_set(settings.healthbot_playbooks)
    where = settings.healthbot_playbooks or "the shipped defaults"
    if book is None:
        first = str(problems[0]) if problems else "no playbooks"
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Check(
            "playbooks",
            False,
            f"{first}{more}: no tasks are opened until this is fixed",
            "run `healthbot playbooks check` and fix every line it prints",
        )
    return Check("playbooks", True, f"{len(book.playbooks)} playbooks from {where}")


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.ok is False]


# -- database and Redis --------------------------------------------------------------------


def check_database(settings: Settings) -> Check:
    try:
        url = _with_connect_timeout(settings.database_url)
    except ArgumentError:
        return Check("database", False, "DATABASE_URL is not a database URL", "check DATABASE_URL")
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and not _sqlite_exists(url):
        return Check("database", False, f"{shown}: no such database file", UPGRADE)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        return Check("database", False, f"{shown}: {_first_line(exc)}", "check DATABASE_URL")
    finally:
        engine.dispose()
    return _migration_check(shown, current)


def _migration_check(shown: str, current: set[str]) -> Check:
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    if current == heads:
        return Check("database", True, f"{shown}: schema at head ({', '.join(sorted(heads))})")
    if not current:
        return Check("database", False, f"{shown}: no schema yet", UPGRADE)
    at, head = ", ".join(sorted(current)), ", ".join(sorted(heads))
    if not current <= {rev.revision for rev in script.walk_revisions()}:
        newer = "upgrade healthbot to the release that migrated this database"
        return Check("database", False, f"{shown}: at {at}, unknown to this release", newer)
    return Check("database", False, f"{shown}: schema at {at}, head is {head}", UPGRADE)


def _with_connect_timeout(database_url: str) -> URL:
    url = make_url(database_url)
    if url.drivername == "postgres":  # the Heroku spelling, which make_engine accepts too
        url = url.set(drivername="postgresql")
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(int(TIMEOUT))})
    return url


def _sqlite_exists(url: URL) -> bool:
    """A missing SQLite file would be created empty by connecting: report it instead."""
    name = url.database or ""
    return name in ("", ":memory:") or name.startswith("file:") or Path(name).exists()


def check_redis(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", None, "not set: tasks run in-process (embedded mode)")
    shown = _redact(settings.redis_url)
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
        )
        with client:
            client.ping()
    except Exception as exc:
        return Check("redis", False, f"{shown}: {_first_line(exc)}", "check REDIS_URL")
    return Check("redis", True, f"{shown}: PING answered")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# -- sources -------------------------------------------------------------------------------


def check_sources(settings: Settings) -> list[Check]:
    names = registry.configured_sources(settings)
    partial = [c for n in registry.SOURCES if n not in names if (c := _partly(settings, n))]
    if not names:
        none = Check("sources", False, "no source is configured", f"set {SOURCE_VARS}")
        return [none, *partial]
    return [check_source(settings, name) for name in names] + partial


def check_source(settings: Settings, name: str) -> Check:
    """One cheap authenticated call to a configured source."""
    return _guard(name, WHERE[name], lambda: _PROBES[name](settings))


def _partly(settings: Settings, name: str) -> Check | None:
    """A source with some of its variables set but not all: name what is missing."""
    prefix = f"{name}_"
    fields = Settings.model_fields
    given = [
        k.upper()
        for k, field in fields.items()
        if k.startswith(prefix) and getattr(settings, k) and getattr(settings, k) != field.default
    ]
    if not given:
        return None
    try:
        registry.SOURCES[name].build_source(settings)
        why = "not enough to enable it"
    except (ConnectorError, ValueError) as exc:
        why = str(exc)
    given_text = ", ".join(given)
    detail = f"partly configured ({given_text} set): {why}"
    return Check(name, False, detail, f"set the rest of its variables, or unset {given_text}")


def _salesforce(settings: Settings) -> str:
    source = registry.SOURCES["salesforce"].build_source(settings, session=_session())
    limits = source.client.restful("limits/") or {}  # the mapping file was loaded too
    daily = limits.get("DailyApiRequests") or {}
    left = f"; {daily['Remaining']:,} of {daily['Max']:,} daily API requests left" if daily else ""
    source.validate()  # a field the mapping names explicitly and the org lacks raises here
    where = f"authenticated at {settings.salesforce_instance_url}{left}; "
    return where + switched_off(source.switched_off, "change {key}, or create the field")


def switched_off(notices: list[SwitchedOff], fix: str) -> str:
    """What a source reads without, one clause per missing field (or that nothing is off)."""
    if not notices:
        return "every mapped field present"
    off = "; ".join(
        f"{s.field} missing: off: {s.turns_off} ({fix.format(key=s.key, fix=s.fix)})"
        for s in notices
    )
    return f"{len(notices)} field{'s' if len(notices) > 1 else ''} missing, read without: {off}"


def _hubspot(settings: Settings) -> str:
    client = registry.SOURCES["hubspot"].build_client(settings, **_client_opts())
    wanted = ["name", *hubspot_fields.CUSTOM_PROPS["companies"]]
    found = client.search("companies", {"limit": 1, "properties": wanted}).get("results") or []
    off = switched_off(hubspot_fields.missing("companies", found), "{fix}") if found else ""
    return f"authenticated at {settings.hubspot_base_url}; companies readable" + (
        f"; {off}" if off else ""
    )


def _zendesk(settings: Settings) -> str:
    source = registry.SOURCES["zendesk"].build_source(settings, **_client_opts())
    source.client.export_tickets(start_time=0, per_page=1, include=())
    return f"authenticated at {settings.zendesk_base_url}; ticket export readable"


def _usage(settings: Settings) -> str:
    url = settings.usage_database_url
    if url and not settings.usage_csv:
        timed = _with_connect_timeout(url).render_as_string(hide_password=False)
        settings = settings.model_copy(update={"usage_database_url": timed})
    signals = registry.SOURCES["usage"].build_source(settings).check()
    where = f"USAGE_CSV {settings.usage_csv}" if settings.usage_csv else "USAGE_QUERY"
    return f"{where} readable; signals {', '.join(signals)}"


def _stripe(settings: Settings) -> str:
    api = registry.SOURCES["stripe"].build_client(settings, **_client_opts())
    api.newest("events")
    key = settings.stripe_account_metadata_key
    return (
        f"authenticated at {settings.stripe_base_url}; events readable; customers match "
        f"accounts by metadata {key!r}, else by email domain"
    )


_PROBES: dict[str, Callable[[Settings], str]] = {
    "salesforce": _salesforce,
    "hubspot": _hubspot,
    "zendesk": _zendesk,
    "usage": _usage,
    "stripe": _stripe,
}


def _capped_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 2.0))  # a Retry-After of minutes is not waited out here


def _session() -> RetryingSession:
    return RetryingSession(timeout=TIMEOUT, max_retries=RETRIES, max_sleep=2.0, sleep=_capped_sleep)


def _client_opts() -> dict:
    """HubSpot's and Stripe's build_client take these as client options, Zendesk's
    build_source too."""
    return {"timeout": TIMEOUT, "max_retries": RETRIES, "sleep": _capped_sleep}


# -- score fields on the CRMs --------------------------------------------------------------


def check_score_fields(settings: Settings, name: str) -> Check:
    part = f"{name} score fields"
    return _guard(part, WHERE[name], lambda: _FIELD_PROBES[name](settings))


def _salesforce_fields(settings: Settings) -> str:
    client = registry.SOURCES["salesforce"].build_client(settings, session=_session())
    return score_fields.salesforce(client, settings.salesforce_score_fields)


def _hubspot_fields(settings: Settings) -> str:
    client = registry.SOURCES["hubspot"].build_client(settings, **_client_opts())
    return score_fields.hubspot(client, settings.hubspot_score_properties)


_FIELD_PROBES: dict[str, Callable[[Settings], str]] = {
    "salesforce": _salesforce_fields,
    "hubspot": _hubspot_fields,
}


# -- Slack -------------------------------------------------------------------------------


def check_slack(settings: Settings) -> Check | None:
    """With SLACK_BOT_TOKEN set: the token works (auth.test) and the signing secret is set."""
    if settings.slack_bot_token is None:
        return None
    if settings.slack_signing_secret is None:
        return Check("slack", False, "SLACK_SIGNING_SECRET is not set",
                     "set it from the app's Basic Information → Signing Secret")  # fmt: skip
    try:
        return Check("slack", True, whoami(settings))
    except SlackApiError as exc:
        error = exc.response.get("error", "error")
        return Check("slack", False, f"Slack refused the token: {error}",
                     "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…)")  # fmt: skip
    except OSError as exc:  # unreachable SLACK_API_URL
        return Check("slack", False, f"Slack did not answer at {settings.slack_api_url}: {exc}",
                     "check SLACK_API_URL and the network")  # fmt: skip


# -- helpers -------------------------------------------------------------------------------


def _guard(part: str, where: str, probe: Callable[[], str]) -> Check:
    """Run one probe; its typed error becomes the detail and says what to do."""
    try:
        return Check(part, True, probe())
    except MissingFields as exc:
        return Check(part, False, str(exc), exc.fix)
    except AuthConnectorError as exc:
        return Check(part, False, str(exc), "set valid credentials in the variable named above")
    except TransientConnectorError as exc:
        return Check(part, False, str(exc), f"check {where} and the network, then try again")
    except PermanentConnectorError as exc:
        return Check(part, False, str(exc), f"fix the setting named above (or {where})")
    except Exception as exc:  # a doctor reports every failure; it never stops at one
        return Check(part, False, f"{type(exc).__name__}: {_first_line(exc)}", f"check {where}")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
