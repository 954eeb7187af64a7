"""Which sources exist, and which of them this deployment has configured. A plain dict."""

from __future__ import annotations

from types import ModuleType

from connectors.base import PermanentConnectorError, Source
from connectors.hubspot import source as hubspot_source
from connectors.salesforce import source as salesforce_source
from connectors.usage import source as usage_source
from connectors.zendesk import source as zendesk_source
from health.settings import Settings

SOURCES: dict[str, ModuleType] = {
    "salesforce": salesforce_source,
    "hubspot": hubspot_source,
    "zendesk": zendesk_source,
    "usage": usage_source,
}


def enabled_sources(settings: Settings, only: str | None = None) -> list[Source]:
    """Build the configured sources (or just `only`, which must then be configured)."""
    if only is not None:
        if only not in SOURCES:
            raise PermanentConnectorError(
                f"unknown source {only!r}: choose one of {', '.join(SOURCES)}"
            )
        return [SOURCES[only].build_source(settings)]
    return [m.build_source(settings) for m in SOURCES.values() if m.is_configured(settings)]
