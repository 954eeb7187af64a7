"""HubSpot CRM connector: companies, renewal deals, tickets and champion contacts in; scores
out (sink)."""

from connectors.hubspot.source import HubSpotSource, build_source, is_configured

__all__ = ["HubSpotSource", "build_source", "is_configured"]
