"""What the playbooks achieved: the measures of the domain articles' success table, per
playbook and overall. Pure: task records and the dates accounts turned healthy in; numbers out.

  save rate            tasks opened on a red account (at risk / critical) whose account was
                       announced healthy within 90 days, of those whose 90 days have passed
                       (or that were saved sooner)
  yellow -> green      the same for tasks opened on a monitor account, within 30 days
  time to first action median hours from the signal to the first thing a person did
                       (done, snooze, reassign)
  overdue rate         tasks nobody acted on by their due time, of those already due
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import median

RED = ("at_risk", "critical")
SAVE_DAYS, YELLOW_DAYS = 90, 30


@dataclass(frozen=True, slots=True)
class TaskRecord:
    account_id: int
    playbook: str
    status: str
    tier_at_open: str | None
    triggered_at: datetime
    created_at: datetime
    due_at: datetime
    first_action_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Measures:
    playbook: str
    tasks: int
    accounts: int
    open: int
    done: int
    recovered: int
    save_rate: float | None
    saves: int
    save_cases: int
    yellow_to_green_rate: float | None
    yellow_cases: int
    median_hours_to_first_action: float | None
    acted: int
    overdue_rate: float | None
    overdue: int

    def as_dict(self) -> dict:
        return asdict(self)


def _rate(hits: int, cases: int) -> float | None:
    return None if cases == 0 else round(hits / cases, 4)


def _turned_green(greens: Sequence[datetime], start: datetime, days: int) -> bool:
    i = bisect_right(greens, start)
    return i < len(greens) and greens[i] <= start + timedelta(days=days)


def measures(
    name: str,
    tasks: Sequence[TaskRecord],
    green_at: Mapping[int, Sequence[datetime]],
    now: datetime,
) -> Measures:
    """`green_at`: per account, the instants it was announced healthy, ascending."""
    saves = save_cases = yellow = yellow_cases = overdue = due_cases = 0
    waits: list[float] = []
    for t in tasks:
        greens = green_at.get(t.account_id, ())
        for tiers, days, counts in ((RED, SAVE_DAYS, "red"), (("monitor",), YELLOW_DAYS, "yellow")):
            if t.tier_at_open not in tiers:
                continue
            hit = _turned_green(greens, t.created_at, days)
            if hit or now >= t.created_at + timedelta(days=days):
                if counts == "red":
                    saves, save_cases = saves + hit, save_cases + 1
                else:
                    yellow, yellow_cases = yellow + hit, yellow_cases + 1
        if t.first_action_at is not None:
            waits.append((t.first_action_at - t.triggered_at).total_seconds() / 3600)
        ends = [x for x in (t.first_action_at, t.resolved_at) if x is not None]
        end = min(ends) if ends else now
        if t.due_at <= now or ends:
            due_cases += 1
            overdue += end > t.due_at
    return Measures(
        playbook=name,
        tasks=len(tasks),
        accounts=len({t.account_id for t in tasks}),
        open=sum(1 for t in tasks if t.resolved_at is None),
        done=sum(1 for t in tasks if t.status == "done"),
        recovered=sum(1 for t in tasks if t.status == "recovered"),
        save_rate=_rate(saves, save_cases),
        saves=saves,
        save_cases=save_cases,
        yellow_to_green_rate=_rate(yellow, yellow_cases),
        yellow_cases=yellow_cases,
        median_hours_to_first_action=round(median(waits), 1) if waits else None,
        acted=len(waits),
        overdue_rate=_rate(overdue, due_cases),
        overdue=overdue,
    )


def playbook_report(
    tasks: Sequence[TaskRecord],
    green_at: Mapping[int, Sequence[datetime]],
    now: datetime,
    names: Mapping[str, str] | None = None,
) -> tuple[list[Measures], Measures]:
    """Measures per playbook (by name, where known) and overall."""
    names = names or {}
    by_playbook: dict[str, list[TaskRecord]] = {}
    for t in tasks:
        by_playbook.setdefault(t.playbook, []).append(t)
    rows = [
        measures(names.get(key, key), group, green_at, now)
        for key, group in sorted(by_playbook.items(), key=lambda kv: names.get(kv[0], kv[0]))
    ]
    return rows, measures("All playbooks", tasks, green_at, now)
