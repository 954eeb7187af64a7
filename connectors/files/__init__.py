"""File imports (CSV): accounts, observations and outcomes as Batches."""

from connectors.files.csv_import import KINDS, CsvImport, check_header, read_csv_batches

__all__ = ["KINDS", "CsvImport", "check_header", "read_csv_batches"]
