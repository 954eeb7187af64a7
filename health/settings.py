"""All configuration, read once from the environment (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_PATH = Path(__file__).parent / "scoring" / "default_model.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///healthbot.db"
    redis_url: str | None = None
    healthbot_model: Path = DEFAULT_MODEL_PATH
    healthbot_playbooks: Path | None = None  # a directory of playbook YAML; None: the shipped set
    # below this confidence no tier is claimed ("insufficient"): a share (0.5) or a percentage
    # ("50", "50%"); unset: the model file's tiers.min_confidence (default 0.5)
    healthbot_min_confidence: float | None = None
    primary_crm: str = "salesforce"  # whose record leads when a customer is in several CRMs

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_digest_channel: str | None = None  # the managers' roll-up of the daily digest
    slack_managers: list[str] = []  # CS managers' emails: may log sentiment for any account
    slack_brief_viewers: list[str] = []  # who may see briefs: emails, user ids, user groups (S…)
    sentiment_stale_days: int = 30  # a CSM is reminded of sentiment older than this
    slack_quiet_hours: str = "20-8"  # local hours when only high-severity tasks ping anyone
    slack_cooldown_hours: float = 20  # one account pings one person at most once in this long

    salesforce_instance_url: str | None = None
    salesforce_access_token: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_domain: str = "login"
    salesforce_mapping: Path | None = None
    salesforce_score_fields: dict[str, str] = {}  # renames of the Health_* Account fields
    salesforce_bulk_threshold: int = 2000  # a writeback above this many rows uses Bulk API 2.0

    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    hubspot_score_properties: dict[str, str] = {}  # renames of the health_* company properties

    zendesk_base_url: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    stripe_api_key: SecretStr | None = None
    stripe_base_url: str = "https://api.stripe.com"
    stripe_account_metadata_key: str = "crm_account_id"

    usage_database_url: str | None = None
    usage_query: str | None = None
    usage_csv: Path | None = None

    requests_ca_bundle: str | None = None

    # the pipeline on Celery (REDIS_URL set): how often beat syncs each source, and writeback
    sync_every_minutes: float = 15  # every source, unless named in sync_every
    sync_every: dict[str, float] = {}  # per source, e.g. {"usage": 60}
    rescore_hour_utc: int = 2  # the daily full rescore (new day: trends, held tiers)
    writeback_every_seconds: float = 60  # beat's sweep of the outbox (retries, leftovers)
    writeback_retry_seconds: float = 30  # first retry of a record the CRM refused; doubles
    writeback_max_attempts: int = 3  # a permanent refusal is parked after this many
    redis_visibility_timeout: int = 3600  # seconds before an unacknowledged task is redelivered

    @field_validator("healthbot_min_confidence", mode="before")
    @classmethod
    def _share(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().removesuffix("%").strip() or None
        if value is not None and float(value) > 1:  # a percentage
            return float(value) / 100
        return value

    @field_validator("slack_quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        """START-END local hours (e.g. 20-8), or "off": refused at start-up, not every minute."""
        start, dash, end = value.strip().partition("-")
        ok = value.strip().lower() in ("", "off") or (
            dash and start.isdigit() and end.isdigit() and int(start) < 24 and int(end) < 24
        )
        if not ok:
            raise ValueError(f"{value!r}: write START-END hours in 0-23, e.g. 20-8, or off")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
