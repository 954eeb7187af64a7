"""What a playbook set is once loaded: plain frozen data, checked by `playbooks.loader`.

A playbook is one trigger (a tree of `all` / `any` / `not` over the triggers of
`playbooks.triggers`) and the one task it opens per account while the trigger holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

SEVERITIES = ("low", "medium", "high")
ROLES = ("account_owner", "cs_manager", "ae", "executive_sponsor")
ROLE_LABELS = {
    "account_owner": "account owner",
    "cs_manager": "CS manager",
    "ae": "account executive",
    "executive_sponsor": "executive sponsor",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> timedelta:
    """`48h`, `2d`, `90m`, `1w` -> timedelta; a bare number is days. ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (write e.g. 48h, 2d, 1w)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return timedelta(days=value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (write e.g. 48h, 2d, 1w)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def days_of(value: Any) -> float:
    return parse_duration(value).total_seconds() / 86400


@dataclass(frozen=True, slots=True)
class Condition:
    """One node of a trigger tree: `op` is all / any / not or a trigger name."""

    op: str
    params: Any = None
    children: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    title: str
    description: str = ""
    steps: tuple[str, ...] = ()
    owner: str = "account_owner"
    due: timedelta = timedelta(days=2)
    severity: str = "medium"


@dataclass(frozen=True, slots=True)
class Playbook:
    key: str  # unique id; one open task per account and key
    name: str
    when: Condition
    task: TaskTemplate
    recover_after: timedelta = timedelta(days=7)  # condition cleared this long: recovered
    escalate_after: timedelta = timedelta(0)  # overdue this long before escalating
    alert_channel: str | None = None
    source: str = ""  # file it came from
    version: str = ""  # a digest of its definition


@dataclass(frozen=True, slots=True)
class Team:
    """Who holds each role: per account owner, then per segment, then a default."""

    roles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    escalation: Mapping[str, str] = field(default_factory=dict)  # role -> next role

    def person(self, role: str, *, owner: str | None, segment: str | None) -> str | None:
        if role == "account_owner":
            return owner
        spec = self.roles.get(role) or {}
        by_owner = spec.get("owners") or {}
        by_segment = spec.get("segments") or {}
        return (
            (by_owner.get(owner.lower()) if owner else None)
            or (by_segment.get(segment) if segment else None)
            or spec.get("default")
        )

    def next_role(self, role: str) -> str | None:
        return self.escalation.get(role)


@dataclass(frozen=True, slots=True)
class PlaybookSet:
    playbooks: tuple[Playbook, ...]
    team: Team = field(default_factory=Team)
    source: str = ""

    def by_key(self) -> dict[str, Playbook]:
        return {p.key: p for p in self.playbooks}
