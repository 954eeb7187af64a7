"""Which sources and score sinks exist, and which of them this deployment has configured.
Plain dicts: a vendor module offers `is_configured(settings)` and `build_source(settings)`
(a source) or `build_sink(settings)` (a CRM that receives scores)."""

from __future__ import annotations

from types import ModuleType

from connectors.base import PermanentConnectorError, ScoreSink, Source
from connectors.hubspot import sink as hubspot_sink
from connectors.hubspot import source as hubspot_source
from connectors.salesforce import sink as salesforce_sink
from connectors.salesforce import source as salesforce_source
from connectors.stripe import source as stripe_source
from connectors.usage import source as usage_source
from connectors.zendesk import source as zendesk_source
from health.settings import Settings

SOURCES: dict[str, ModuleType] = {
    "salesforce": salesforce_source,
    "hubspot": hubspot_source,
    "zendesk": zendesk_source,
    "usage": usage_source,
    "stripe": stripe_source,
}
SINKS: dict[str, tuple[ModuleType, ModuleType]] = {  # name -> (sink module, its source module)
    "salesforce": (salesforce_sink, salesforce_source),
    "hubspot": (hubspot_sink, hubspot_source),
}


def _pick(kind: str, names: list[str], only: str | None) -> list[str]:
    if only is not None and only not in names:
        raise PermanentConnectorError(f"unknown {kind} {only!r}: choose one of {', '.join(names)}")
    return [only] if only is not None else names


def configured_sources(settings: Settings) -> list[str]:
    return [name for name, m in SOURCES.items() if m.is_configured(settings)]


def configured_sinks(settings: Settings) -> list[str]:
    """The CRMs that receive scores: every CRM this deployment is configured to reach."""
    return [name for name, (_, src) in SINKS.items() if src.is_configured(settings)]


def enabled_sources(settings: Settings, only: str | None = None) -> list[Source]:
    """Build the configured sources (or just `only`, which must then be configured)."""
    if only is not None:
        return [build_source(settings, only)]
    return [SOURCES[name].build_source(settings) for name in configured_sources(settings)]


def build_source(settings: Settings, name: str) -> Source:
    return SOURCES[_pick("source", list(SOURCES), name)[0]].build_source(settings)


def build_sink(settings: Settings, name: str) -> ScoreSink:
    return SINKS[_pick("CRM", list(SINKS), name)[0]][0].build_sink(settings)


def enabled_sinks(settings: Settings) -> list[ScoreSink]:
    return [build_sink(settings, name) for name in configured_sinks(settings)]
