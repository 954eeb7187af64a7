"""Pure mapping of daily product-usage rows to observations.

A row has a key (`account` = the CRM account id, and/or `domain`), a `day` and any subset of
the usage signals below. Each present, non-empty count becomes one observation at 00:00 UTC
of that day. Column names are matched case-insensitively; unknown columns are ignored (the
source logs them once).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from health.records import AccountRef, ObservationRecord, RecordError

SOURCE = "usage"
SIGNALS = ("active_users", "seats", "core_features_used", "key_events")
KEYS = ("account", "domain")
DAY = "day"


class ColumnsError(ValueError):
    """The header cannot work: no day, no key, or no signal column."""


@dataclass(frozen=True, slots=True)
class Columns:
    index: dict[str, int]  # known column -> position in a row
    signals: tuple[str, ...]  # the signal columns present
    unknown: tuple[str, ...]  # ignored columns, as written


def plan_columns(names: Iterable[str]) -> Columns:
    index: dict[str, int] = {}
    unknown = []
    for i, raw in enumerate(names):
        name = str(raw).strip().lower()
        if name in (*SIGNALS, *KEYS, DAY) and name not in index:
            index[name] = i
        else:
            unknown.append(str(raw))
    signals = tuple(s for s in SIGNALS if s in index)
    problems = []
    if DAY not in index:
        problems.append("no 'day' column")
    if not any(k in index for k in KEYS):
        problems.append("no 'account' or 'domain' column")
    if not signals:
        problems.append(f"none of the signal columns {', '.join(SIGNALS)}")
    if problems:
        expected = f"account and/or domain, day, and any of {', '.join(SIGNALS)}"
        found = ", ".join(str(n) for n in names) or "nothing"
        raise ColumnsError(
            f"usage columns: {'; '.join(problems)} (expected {expected}; got {found})"
        )
    return Columns(index=index, signals=signals, unknown=tuple(unknown))


def parse_day(value: Any) -> date:
    """A date, a datetime (its UTC date) or an ISO string (`2026-10-01`, optionally with time)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return parse_day(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValueError(f"unparsable date {value!r}")


def parse_count(value: Any, column: str) -> float | None:
    """A non-negative finite number, or None for an empty cell."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"non-numeric {column} {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"non-numeric {column} {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"non-numeric {column} {value!r}")
    if number < 0:
        raise ValueError(f"negative {column} {value!r}")
    return number


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def map_row(
    values: Sequence[Any], cols: Columns, where: str
) -> tuple[date, list[ObservationRecord]] | RecordError:
    """One row -> (its day, its observations), or a RecordError saying where and why."""

    def cell(name: str) -> Any:
        i = cols.index.get(name)
        return values[i] if i is not None and i < len(values) else None

    crm_id, domain = (_text(cell(k)) for k in KEYS)
    key = crm_id or (f"domain:{domain}" if domain else where)
    if not crm_id and not domain:
        return RecordError(SOURCE, where, f"{where}: no account or domain")
    try:
        day = parse_day(cell(DAY))
        counts = {s: parse_count(cell(s), s) for s in cols.signals}
    except ValueError as exc:
        return RecordError(SOURCE, f"{where} {key}"[:128], f"{where}: {exc}")
    ref = AccountRef(crm_id=crm_id, domain=domain.lower() if domain else None)
    at = midnight(day)
    return day, [
        ObservationRecord(ref, signal, at, value, SOURCE)
        for signal, value in counts.items()
        if value is not None
    ]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
