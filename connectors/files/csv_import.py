"""CSV file import: accounts, signal observations and renewal outcomes -> Batches.

`read_csv_batches(kind, path)` checks the header at once (ValueError naming the expected
columns) and then streams the file, `batch_size` rows per Batch. A bad row becomes a
RecordError whose reason starts with its line number ("line 7: unparsable date '31/02/2026'
in observed_at") while the good rows land. `CsvImport` wraps it as a Source for
`health.ingest.ingest` (name "csv", no watermark: re-importing a file is an idempotent upsert).
Column names are matched case-insensitively; unknown columns are ignored. The formats are
documented in docs/import-formats.md.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import ClassVar

from health.records import (
    OUTCOME_KINDS,
    SEGMENTS,
    AccountRecord,
    AccountRef,
    Batch,
    ObservationRecord,
    OutcomeRecord,
    RecordError,
)

SOURCE = "csv"
KINDS = ("accounts", "observations", "outcomes")
KEYS = ("account", "domain")  # observations and outcomes name their account by either
# kind -> (required columns, optional columns); "account|domain" means at least one of them
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accounts": (
        ("external_id", "name"),
        ("source", "domain", "owner", "segment", "arr", "customer_since", "renewal_date"),
    ),
    "observations": (("account|domain", "signal", "observed_at", "value"), ("source",)),
    "outcomes": (("account|domain", "kind", "occurred_on"), ("arr_change", "external_id")),
}


class RowError(ValueError):
    """One cell is wrong; the message says which and why."""


def expected_columns(kind: str) -> str:
    required, optional = COLUMNS[kind]
    return f"required {', '.join(required)}; optional {', '.join(optional)}"


def check_header(kind: str, header: list[str]) -> dict[str, int]:
    """Column name -> position; ValueError if a required column is missing."""
    if kind not in COLUMNS:
        raise ValueError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    required, optional = COLUMNS[kind]
    known = {c for r in required for c in r.split("|")} | set(optional)
    index: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().lower()
        if name in known and name not in index:
            index[name] = i
    missing = [r for r in required if not any(c in index for c in r.split("|"))]
    if missing:
        found = ", ".join(h.strip() for h in header) or "an empty header"
        raise ValueError(
            f"{kind} CSV is missing column(s) {', '.join(missing)} "
            f"(expected {expected_columns(kind)}; found {found})"
        )
    return index


def read_csv_batches(
    kind: str,
    path: str | Path,
    *,
    batch_size: int = 5000,
    signals: Collection[str] | None = None,
) -> Iterator[Batch]:
    """Check the header now, then stream the rows as Batches (`signals`: the allowed signal
    keys for observations: the scoring model's catalogue)."""
    path = Path(path)
    handle = path.open(newline="", encoding="utf-8-sig")
    try:
        reader = csv.reader(handle)
        index = check_header(kind, next(reader, []))
        if kind == "observations" and signals is None:
            raise ValueError("importing observations needs the scoring model's signal keys")
        parse = _PARSERS[kind]
    except BaseException:
        handle.close()
        raise
    return _stream(handle, reader, index, parse, batch_size, frozenset(signals or ()))


def _stream(handle, reader, index, parse, batch_size: int, signals: frozenset[str]):
    with handle:
        batch, rows = Batch(), 0
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows += 1
            line = reader.line_num

            def cell(name: str, values: list[str] = values) -> str | None:
                i = index.get(name)
                v = values[i].strip() if i is not None and i < len(values) else ""
                return v or None

            try:
                record = parse(cell, signals)
            except RowError as exc:
                batch.errors.append(RecordError(SOURCE, f"line {line}", f"line {line}: {exc}"))
            else:
                if isinstance(record, AccountRecord):
                    batch.accounts.append(record)
                elif isinstance(record, ObservationRecord):
                    batch.observations.append(record)
                else:
                    batch.outcomes.append(record)
            if rows >= batch_size:
                batch.fetched = rows
                yield batch
                batch, rows = Batch(), 0
        if rows:
            batch.fetched = rows
            yield batch


class CsvImport:
    """A Source over one CSV file, for `health.ingest.ingest(engine, CsvImport(kind, path))`."""

    name: ClassVar[str] = SOURCE

    def __init__(
        self,
        kind: str,
        path: str | Path,
        *,
        batch_size: int = 5000,
        signals: Collection[str] | None = None,
    ):
        self.kind, self.path, self.batch_size, self.signals = kind, Path(path), batch_size, signals
        self.api_calls = 0
        with self.path.open(newline="", encoding="utf-8-sig") as f:  # fail early on a bad header
            check_header(kind, next(csv.reader(f), []))

    def pull(self, since: str | None = None) -> Iterator[Batch]:
        self.api_calls += 1
        yield from read_csv_batches(
            self.kind, self.path, batch_size=self.batch_size, signals=self.signals
        )


# -- row parsers -----------------------------------------------------------------------------

Cell = Callable[[str], str | None]


def _account(cell: Cell, _signals: frozenset[str]) -> AccountRecord:
    segment = cell("segment")
    if segment is not None:
        segment = segment.lower().replace("-", "_").replace(" ", "_")
        if segment not in SEGMENTS:
            raise RowError(f"unknown segment {cell('segment')!r} (use {', '.join(SEGMENTS)})")
    arr = _number(cell, "arr")
    if arr is not None and arr < 0:
        raise RowError(f"negative arr {cell('arr')!r}")
    return AccountRecord(
        source=(cell("source") or SOURCE).lower(),
        external_id=_required(cell, "external_id"),
        name=_required(cell, "name"),
        domain=cell("domain"),
        owner=cell("owner"),
        segment=segment,
        arr=arr,
        customer_since=_date(cell, "customer_since"),
        renewal_date=_date(cell, "renewal_date"),
    )


def _observation(cell: Cell, signals: frozenset[str]) -> ObservationRecord:
    ref = _ref(cell)
    signal = _required(cell, "signal")
    if signal not in signals:
        raise RowError(f"unknown signal {signal!r} (not in the scoring model's catalogue)")
    value = _number(cell, "value")
    if value is None:
        raise RowError("missing value")
    return ObservationRecord(
        ref, signal, _moment(cell, "observed_at"), value, cell("source") or SOURCE
    )


def _outcome(cell: Cell, _signals: frozenset[str]) -> OutcomeRecord:
    ref = _ref(cell)
    kind = _required(cell, "kind").lower()
    if kind not in OUTCOME_KINDS:
        raise RowError(f"unknown kind {cell('kind')!r} (use {', '.join(OUTCOME_KINDS)})")
    occurred_on = _date(cell, "occurred_on")
    assert occurred_on is not None  # _date raises on a missing required date
    return OutcomeRecord(
        account=ref,
        kind=kind,
        occurred_on=occurred_on,
        source=SOURCE,
        arr_change=_number(cell, "arr_change"),
        external_id=cell("external_id"),
    )


_PARSERS = {"accounts": _account, "observations": _observation, "outcomes": _outcome}


def _required(cell: Cell, name: str) -> str:
    value = cell(name)
    if value is None:
        raise RowError(f"missing {name}")
    return value


def _ref(cell: Cell) -> AccountRef:
    account, domain = cell("account"), cell("domain")
    if not account and not domain:
        raise RowError("missing account (or domain)")
    return AccountRef(crm_id=account, domain=domain.lower() if domain else None)


def _number(cell: Cell, name: str) -> float | None:
    raw = cell(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise RowError(f"not a number {raw!r} in {name}") from None
    if not math.isfinite(value):
        raise RowError(f"not a number {raw!r} in {name}")
    return value


def _date(cell: Cell, name: str) -> date | None:
    raw = cell(name)
    if raw is None:
        if name == "occurred_on":
            raise RowError(f"missing {name}")
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise RowError(f"unparsable date {raw!r} in {name}") from None


def _moment(cell: Cell, name: str) -> datetime:
    """A date (00:00 UTC) or an ISO datetime (no offset means UTC) -> aware UTC."""
    raw = _required(cell, name)
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"unparsable date {raw!r} in {name}") from None
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
