"""How a trigger's YAML value is checked and normalised: each parser returns the value the
trigger reads, or raises ValueError saying what is wrong (shown by `playbooks check`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from health.scoring.model import TIERS
from playbooks.spec import days_of

USAGE = "active_users"
ADOPTION = "core_features_used"
TICKET_SIGNALS = {"sev1": "sev1_ticket", "sev2": "sev2_ticket"}


def parse_tiers(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    bad = [t for t in items if t not in TIERS]
    if bad or not items:
        raise ValueError(f"unknown tier {bad[0] if bad else value!r}; tiers are {', '.join(TIERS)}")
    return tuple(items)


def parse_number(value: Any, *, lo: float = 0, hi: float = float("inf"), what: str = "a number"):
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"expected {what} between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def parse_mapping(value: Any, required: Iterable[str], optional: dict[str, Any]) -> dict[str, Any]:
    """A mapping with `required` keys and `optional` ones (with defaults); a bare value is
    accepted for the single required key."""
    required = tuple(required)
    if not isinstance(value, dict):
        if len(required) != 1:
            raise ValueError(f"expected a mapping with {', '.join(required)}")
        value = {required[0]: value}
    unknown = set(value) - set(required) - set(optional)
    if unknown:
        raise ValueError(
            f"unknown key {sorted(unknown)[0]!r}; expected {', '.join([*required, *optional])}"
        )
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"missing {missing[0]!r}")
    return {**optional, **value}


def parse_days(value: Any) -> float:
    return days_of(value)


def one_of(options: Iterable[str]) -> Callable[[Any], tuple[str, ...]]:
    options = tuple(options)

    def parse(value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        bad = [i for i in items if not isinstance(i, str) or i not in options]
        if bad or not items:
            raise ValueError(f"unknown value {bad[0] if bad else value!r}; one of {options}")
        return tuple(items)

    return parse


def parse_within(default: str) -> Callable[[Any], dict]:
    """`true`, a duration, or {within: ...}."""

    def parse(value: Any) -> dict:
        if value is True:
            value = {}
        elif not isinstance(value, dict):
            value = {"within": value}
        return {"within": parse_days(parse_mapping(value, [], {"within": default})["within"])}

    return parse


def parse_days_key(value: Any) -> dict:
    return {"days": parse_days(parse_mapping(value, ["days"], {})["days"])}


def parse_points(hi: float) -> Callable[[Any], dict]:
    return lambda value: {
        "points": parse_number(parse_mapping(value, ["points"], {})["points"], hi=hi)
    }


def parse_true(value: Any) -> bool:
    if value is not True:
        raise ValueError(f"write `true`, got {value!r}")
    return True


def parse_score_dropped(value: Any) -> dict:
    m = parse_mapping(value, ["points"], {"within": "30d"})
    return {
        "points": parse_number(m["points"], hi=100),
        "within": max(1, round(parse_days(m["within"]))),
    }


def parse_usage(value: Any) -> dict:
    m = parse_mapping(value, ["percent"], {"signal": USAGE, "window": "7d"})
    window = one_of(["7d", "30d"])(m["window"])[0]
    return {
        "percent": parse_number(m["percent"], hi=1000),
        "signal": str(m["signal"]),
        "stat": f"avg_{window}",
    }


def parse_no_usage(value: Any) -> dict:
    m = parse_mapping(value, ["days"], {"signal": USAGE})
    return {"days": parse_days(m["days"]), "signal": str(m["signal"])}


def parse_adoption(value: Any) -> dict:
    m = parse_mapping(value, ["weeks"], {"signal": ADOPTION})
    return {"weeks": parse_number(m["weeks"], lo=1, hi=26), "signal": str(m["signal"])}


def parse_ticket(value: Any) -> dict:
    m = parse_mapping(value, ["severity"], {"within": "7d"})
    return {"severity": one_of(TICKET_SIGNALS)(m["severity"]), "within": parse_days(m["within"])}
