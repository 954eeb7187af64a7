"""Errors the CLI reports as one line on stderr with exit code 1."""


class UserError(Exception):
    """Bad input or configuration: one line on stderr, exit 1."""
