"""Zendesk Support: tickets -> support signals (see source.py)."""
