"""Product usage: daily rows per account from a SQL query or a CSV (see source.py)."""
