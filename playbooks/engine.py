"""The playbook engine. Pure: playbooks, account facts, the open tasks and `now` in; decisions
out (open, refresh, clear, recover, escalate, unsnooze). No database, HTTP or clock.

Rules of the road:
  - one open task per account and playbook: a trigger that fires again changes nothing (the
    task's text is what it was when it opened; the brief shows the account as it is now);
  - a task whose condition stopped holding is marked cleared; cleared for the playbook's
    `recover_after`, it is resolved as recovered (never deleted); holding again unmarks it;
  - an open task past due (+ `escalate_after`) moves to the next role of the team's escalation
    chain with a new due time; at the end of the chain it is marked overdue once;
  - a snoozed task comes back open when its snooze ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from playbooks.facts import AccountFacts
from playbooks.spec import Condition, Playbook, PlaybookSet, Team
from playbooks.templates import render
from playbooks.triggers import TRIGGERS, Needs

OPEN, SNOOZED, DONE, RECOVERED = "open", "snoozed", "done", "recovered"
LIVE = (OPEN, SNOOZED)


@dataclass(frozen=True, slots=True)
class TaskState:
    """A live task as the engine sees it."""

    id: int
    account_id: int
    playbook: str
    status: str
    title: str
    description: str
    severity: str
    owner_role: str
    owner: str | None
    due_at: datetime
    snoozed_until: datetime | None = None
    cleared_since: datetime | None = None
    escalation_level: int = 0
    overdue_at: datetime | None = None
    segment: str | None = None
    account_owner: str | None = None


@dataclass(frozen=True, slots=True)
class Open:
    account_id: int
    playbook: str
    title: str
    description: str
    steps: tuple[str, ...]
    severity: str
    owner_role: str
    owner: str | None
    due_at: datetime
    triggered_at: datetime
    trigger: str
    tier: str | None
    total: float | None
    change_id: int | None
    rule_version: str
    alert_channel: str | None


@dataclass(frozen=True, slots=True)
class Refresh:
    """The condition holds again after it had cleared: the task stays open."""

    task_id: int
    trigger: str


@dataclass(frozen=True, slots=True)
class Cleared:
    task_id: int
    trigger: str


@dataclass(frozen=True, slots=True)
class Recover:
    task_id: int
    since: datetime


@dataclass(frozen=True, slots=True)
class Escalate:
    task_id: int
    from_role: str
    owner_role: str
    owner: str | None
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Overdue:
    task_id: int


@dataclass(frozen=True, slots=True)
class Unsnooze:
    task_id: int
    due_at: datetime


Decision = Open | Refresh | Cleared | Recover | Escalate | Overdue | Unsnooze


def needs_of(book: PlaybookSet) -> Needs:
    """Everything the adapter must read to evaluate this set."""
    out = Needs()
    for p in book.playbooks:
        for node in _leaves(p.when):
            out.merge(TRIGGERS[node.op].needs(node.params))
    return out


def _leaves(c: Condition) -> Iterable[Condition]:
    if c.op in ("all", "any", "not"):
        for kid in c.children:
            yield from _leaves(kid)
    else:
        yield c


def test(c: Condition, facts: AccountFacts, now: datetime) -> tuple[bool, bool, list[str]]:
    """(fires, holds, phrases of what fired) for one account."""
    if c.op == "all":
        results = [test(k, facts, now) for k in c.children]
        fires = all(r[0] for r in results)
        return (
            fires,
            all(r[1] for r in results),
            [w for r in results for w in r[2]] if fires else [],
        )
    if c.op == "any":
        results = [test(k, facts, now) for k in c.children]
        why = [w for r in results if r[0] for w in r[2]]
        return any(r[0] for r in results), any(r[1] for r in results), why
    if c.op == "not":
        _f, holds, _why = test(c.children[0], facts, now)
        return not holds, not holds, []
    trigger = TRIGGERS[c.op]
    fires, holds = trigger.test(facts, c.params, now)
    return fires, holds, [trigger.describe(c.params)] if fires else []


def template_values(
    facts: AccountFacts, playbook: Playbook, trigger: str, now: datetime
) -> dict[str, object]:
    change = facts.change
    return {
        "account.name": facts.name,
        "account.owner": facts.owner,
        "account.segment": facts.segment,
        "account.arr": facts.arr,
        "account.renewal_date": facts.renewal_date,
        "account.renewal_days": facts.renewal_days(now.date()),
        "score.total": None if facts.total is None else round(facts.total),
        "score.tier": (facts.tier or "").replace("_", " ") or None,
        "score.delta": None if change is None else round(change.delta),
        "score.reason": facts.reason or None,
        "score.confidence": None if facts.confidence is None else round(facts.confidence * 100),
        "drivers": ", ".join(facts.drivers) or None,
        "trigger": trigger,
        "playbook": playbook.name,
    }


def evaluate(
    book: PlaybookSet,
    facts: Sequence[AccountFacts],
    tasks: Mapping[tuple[int, str], TaskState],
    now: datetime,
) -> list[Decision]:
    """Decisions for these accounts: open what fires and has no live task, refresh what fires
    again, mark cleared what stopped holding, recover what stayed cleared long enough."""
    out: list[Decision] = []
    for f in facts:
        for p in book.playbooks:
            fires, holds, why = test(p.when, f, now)
            task = tasks.get((f.account_id, p.key))
            trigger = "; ".join(dict.fromkeys(why))
            if task is None:
                if fires:
                    out.append(_open(book.team, p, f, trigger, now))
                continue
            if fires or holds:
                if task.cleared_since is not None:  # back before the hold ran out
                    out.append(Refresh(task.id, trigger=trigger or _describe(p.when)))
            elif task.cleared_since is None:
                out.append(Cleared(task.id, trigger=_describe(p.when)))
            elif now - task.cleared_since >= p.recover_after:
                out.append(Recover(task.id, since=task.cleared_since))
    return out


def _open(team: Team, p: Playbook, f: AccountFacts, trigger: str, now: datetime) -> Open:
    values = template_values(f, p, trigger, now)
    t = p.task
    return Open(
        account_id=f.account_id,
        playbook=p.key,
        title=render(t.title, values)[:255],
        description=render(t.description, values),
        steps=tuple(render(s, values) for s in t.steps),
        severity=t.severity,
        owner_role=t.owner,
        owner=team.person(t.owner, owner=f.owner, segment=f.segment) or f.owner,
        due_at=now + t.due,
        triggered_at=f.change.changed_at if f.change else now,
        trigger=trigger,
        tier=f.tier,
        total=f.total,
        change_id=f.change.change_id if f.change else None,
        rule_version=p.version,
        alert_channel=p.alert_channel,
    )


def _describe(c: Condition) -> str:
    if c.op in ("all", "any"):
        return f" {'and' if c.op == 'all' else 'or'} ".join(_describe(k) for k in c.children)
    if c.op == "not":
        return f"not ({_describe(c.children[0])})"
    return TRIGGERS[c.op].describe(c.params)


def sweep(book: PlaybookSet, tasks: Iterable[TaskState], now: datetime) -> list[Decision]:
    """Time-driven decisions: snoozes that ended, overdue tasks to escalate."""
    playbooks = book.by_key()
    out: list[Decision] = []
    for t in tasks:
        p = playbooks.get(t.playbook)
        if p is None:
            continue  # a playbook removed from the set: its tasks stay as they are
        if t.status == SNOOZED:
            if t.snoozed_until is not None and t.snoozed_until <= now:
                out.append(Unsnooze(t.id, due_at=max(t.due_at, now + p.task.due)))
            continue
        if t.status != OPEN or now < t.due_at + p.escalate_after:
            continue
        nxt = book.team.next_role(t.owner_role)
        person = book.team.person(nxt, owner=t.account_owner, segment=t.segment) if nxt else None
        if nxt is not None:
            out.append(Escalate(t.id, t.owner_role, nxt, person, due_at=now + p.task.due))
        elif t.overdue_at is None:
            out.append(Overdue(t.id))
    return out
