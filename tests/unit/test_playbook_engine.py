"""The engine's rules of the road, with an injected clock: open once, refresh, clear then
recover after the hold, escalate along the chain when overdue, snoozes come back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from health.scoring.stats import SignalStats
from playbooks.engine import (
    Cleared,
    Escalate,
    Open,
    Overdue,
    Recover,
    Refresh,
    TaskState,
    Unsnooze,
    evaluate,
    sweep,
)
from playbooks.facts import AccountFacts, ChangeFacts
from playbooks.loader import check_playbooks, load_playbooks
from playbooks.spec import Condition, Playbook, PlaybookSet, TaskTemplate, Team

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
TEAM = Team(
    roles={
        "cs_manager": {"default": "lead@example.com", "segments": {"enterprise": "ent@example.com"}}
    },
    escalation={"account_owner": "cs_manager", "cs_manager": "executive_sponsor"},
)
RESCUE = Playbook(
    key="rescue",
    name="Critical rescue",
    when=Condition("tier_entered", ("critical",)),
    task=TaskTemplate(
        title="Rescue {account.name}",
        description="{account.name} at {score.total} ({trigger}); drivers: {drivers}",
        owner="account_owner",
        due=timedelta(hours=48),
        severity="high",
    ),
    recover_after=timedelta(days=7),
    escalate_after=timedelta(hours=24),
)
BOOK = PlaybookSet((RESCUE,), team=TEAM)


def acme(**kw) -> AccountFacts:
    base = dict(
        account_id=7,
        name="Acme",
        owner="dana@example.com",
        segment="enterprise",
        total=31.4,
        tier="critical",
        drivers=("usage", "tickets"),
        change=ChangeFacts(99, NOW - timedelta(hours=1), "at_risk", "critical", -12.0),
    )
    return AccountFacts(**(base | kw))


def task(**kw) -> TaskState:
    base = dict(
        id=1,
        account_id=7,
        playbook="rescue",
        status="open",
        title="Rescue Acme",
        description="Acme at 31 (entered critical); drivers: usage, tickets",
        severity="high",
        owner_role="account_owner",
        owner="dana@example.com",
        due_at=NOW + timedelta(hours=48),
        segment="enterprise",
        account_owner="dana@example.com",
    )
    return TaskState(**(base | kw))


def test_a_firing_trigger_opens_one_task_with_owner_due_and_rendered_text():
    (d,) = evaluate(BOOK, [acme()], {}, NOW)
    assert isinstance(d, Open)
    assert (d.account_id, d.playbook, d.severity) == (7, "rescue", "high")
    assert d.owner == "dana@example.com" and d.owner_role == "account_owner"
    assert d.due_at == NOW + timedelta(hours=48)
    assert d.triggered_at == NOW - timedelta(hours=1)  # the signal's time, not the evaluation's
    assert d.title == "Rescue Acme"
    assert d.description == "Acme at 31 (entered critical); drivers: usage, tickets"
    assert d.change_id == 99 and d.tier == "critical"


def test_a_live_task_is_never_opened_twice_nor_rewritten_when_the_trigger_fires_again():
    live = {(7, "rescue"): task()}
    assert evaluate(BOOK, [acme()], live, NOW) == []
    assert evaluate(BOOK, [acme(total=25.0)], live, NOW) == []  # the brief shows the new score
    # a snoozed task counts as live too
    assert evaluate(BOOK, [acme()], {(7, "rescue"): task(status="snoozed")}, NOW) == []


def test_a_cleared_condition_recovers_only_after_the_hold():
    better = acme(tier="at_risk", change=ChangeFacts(100, NOW, "critical", "at_risk", 12.0))
    (d,) = evaluate(BOOK, [better], {(7, "rescue"): task()}, NOW)
    assert isinstance(d, Cleared)
    cleared = task(cleared_since=NOW - timedelta(days=6, hours=23))
    assert evaluate(BOOK, [better], {(7, "rescue"): cleared}, NOW) == []  # not yet
    held = task(cleared_since=NOW - timedelta(days=7))
    (d,) = evaluate(BOOK, [better], {(7, "rescue"): held}, NOW)
    assert d == Recover(1, since=NOW - timedelta(days=7))


def test_a_condition_back_before_the_hold_unclears_the_task():
    again = acme(change=None)  # critical still (holds), no new event
    (d,) = evaluate(
        BOOK, [again], {(7, "rescue"): task(cleared_since=NOW - timedelta(days=2))}, NOW
    )
    assert d == Refresh(1, trigger="entered critical")


def test_overdue_tasks_escalate_along_the_chain_then_are_marked_overdue_once():
    due = NOW - timedelta(hours=25)  # past due + escalate_after (24h)
    (d,) = sweep(BOOK, [task(due_at=due)], NOW)
    assert d == Escalate(
        1, "account_owner", "cs_manager", "ent@example.com", NOW + timedelta(hours=48)
    )
    assert sweep(BOOK, [task(due_at=NOW - timedelta(hours=23))], NOW) == []  # within grace
    (d,) = sweep(BOOK, [task(due_at=due, owner_role="cs_manager")], NOW)
    assert isinstance(d, Escalate) and d.owner_role == "executive_sponsor" and d.owner is None
    last = task(due_at=due, owner_role="executive_sponsor")
    assert sweep(BOOK, [last], NOW) == [Overdue(1)]
    assert sweep(BOOK, [replace(last, overdue_at=NOW)], NOW) == []  # once


def test_snoozed_tasks_come_back_when_the_snooze_ends():
    sleeping = task(
        status="snoozed", snoozed_until=NOW + timedelta(hours=1), due_at=NOW - timedelta(days=3)
    )
    assert sweep(BOOK, [sleeping], NOW) == []
    (d,) = sweep(BOOK, [sleeping], NOW + timedelta(hours=1))
    assert d == Unsnooze(
        1, due_at=NOW + timedelta(hours=49)
    )  # a fresh due time, not overdue at once


def test_team_map_resolves_roles_by_owner_then_segment_then_default():
    team = Team(
        roles={
            "cs_manager": {
                "default": "d@x",
                "segments": {"smb": "s@x"},
                "owners": {"dana@x": "o@x"},
            }
        }
    )
    assert team.person("cs_manager", owner="dana@x", segment="smb") == "o@x"
    assert team.person("cs_manager", owner="eve@x", segment="smb") == "s@x"
    assert team.person("cs_manager", owner="eve@x", segment=None) == "d@x"
    assert team.person("account_owner", owner="eve@x", segment=None) == "eve@x"
    assert team.person("ae", owner="eve@x", segment=None) is None


def test_the_default_playbooks_load_and_cover_the_issue():
    book = load_playbooks()
    assert {p.key for p in book.playbooks} >= {
        "critical_rescue",
        "at_risk_intervention",
        "rapid_decline",
        "renewal_risk",
        "champion_departure",
        "sev1_escalation",
        "dormant_account",
        "expansion",
    }
    # a dormant account renewing soon opens exactly the dormant-account task
    dormant = AccountFacts(
        account_id=3,
        name="Quiet Co",
        owner="dana@example.com",
        total=75.0,
        tier="monitor",
        renewal_date=NOW.date() + timedelta(days=40),
        signals={"active_users": SignalStats(0.0, NOW)},
        last_active_days={"active_users": 20.0},
    )
    opened = {d.playbook for d in evaluate(book, [dormant], {}, NOW) if isinstance(d, Open)}
    assert opened == {"dormant_account"}


def write(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)


def test_check_lists_every_problem_of_every_file_with_its_line(tmp_path):
    write(
        tmp_path,
        "a.yaml",
        "name: A\nwhen:\n  tier_entred: critical\ntask:\n  title: T\n  due: soon\n",
    )
    write(
        tmp_path,
        "b.yaml",
        "name: B\nwhen: {score_below: 40}\ntask:\n  title: 'Hi {account.nmae}'\n  owner: ceo\n",
    )
    write(tmp_path, "c.yaml", "name: C\nwhen: [\n")
    write(
        tmp_path,
        "team.yaml",
        "escalation:\n  account_owner: cs_manager\n  cs_manager: account_owner\n",
    )
    book, problems = check_playbooks(tmp_path)
    assert book is None
    lines = "\n".join(str(p) for p in problems)
    assert "a.yaml:3: unknown trigger 'tier_entred' (did you mean 'tier_entered'?)" in lines
    assert "a.yaml:6: due: not a duration: 'soon'" in lines
    assert "b.yaml:4: template names unknown field {account.nmae}" in lines
    assert "b.yaml:5: unknown owner role 'ceo'" in lines
    assert "c.yaml:3: not valid YAML" in lines
    assert (
        "team.yaml:2: escalation has a cycle: account_owner -> cs_manager -> account_owner" in lines
    )
    assert len(problems) == 6
    with pytest.raises(ValueError, match="tier_entred"):
        load_playbooks(tmp_path)


def test_a_valid_directory_loads_with_several_playbooks_per_file(tmp_path):
    write(
        tmp_path,
        "set.yaml",
        "playbooks:\n"
        "  - {key: low, name: Low, when: {score_below: 40}, task: {title: 'Low {account.name}'}}\n"
        "  - {key: new, name: New, when: {lifecycle: onboarding}, task: {title: New, due: 1w}}\n",
    )
    book, problems = check_playbooks(tmp_path)
    assert problems == [] and [p.key for p in book.playbooks] == ["low", "new"]
    assert book.playbooks[1].task.due == timedelta(weeks=1)


def test_duplicate_keys_and_an_empty_directory_are_problems(tmp_path):
    assert check_playbooks(tmp_path)[1][0].message.startswith("no playbooks found")
    write(tmp_path, "a.yaml", "key: x\nname: A\nwhen: {score_below: 40}\ntask: {title: A}\n")
    write(tmp_path, "b.yaml", "key: x\nname: B\nwhen: {score_below: 40}\ntask: {title: B}\n")
    (problem,) = check_playbooks(tmp_path)[1]
    assert "playbook key 'x' is also used in" in problem.message
