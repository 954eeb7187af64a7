"""Block Kit for playbook tasks: the DM that bundles a person's new tasks (each with Done,
Snooze and Reassign, re-rendered in place when acted on), the channel alert, and the task
lines of App Home and the brief. Pure; times use Slack's date tokens so each reader sees them
in their own time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)

from bot.ids import AccountValue, Action, TaskValue
from bot.views import esc
from playbooks.notices import TaskNotice
from playbooks.spec import ROLE_LABELS

SEVERITY = {"high": ":red_circle: High", "medium": ":large_orange_circle: Medium",
            "low": ":white_circle: Low"}  # fmt: skip
SNOOZES = {"1d": "1 day", "3d": "3 days", "1w": "1 week"}
MAX_TASKS = 12  # per message: two blocks each, well under Slack's 50
MAX_ALERTS = 40  # per channel alert: one block each; the rest go in the next one


def when(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A time each reader sees in their own zone (with a UTC fallback)."""
    return f"<!date^{int(at.timestamp())}^{fmt}|{at:%d %b %H:%M} UTC>"


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text[:3000])


def _state(t: TaskNotice, now: datetime) -> str:
    if t.status == "done":
        by = f"<@{t.resolved_by}>" if t.resolved_by and t.resolved_by.startswith("U") else "someone"
        return f":white_check_mark: Done by {by}"
    if t.status == "recovered":
        return ":seedling: Recovered: the condition cleared"
    if t.status == "snoozed" and t.snoozed_until:
        return f":zzz: Snoozed until {when(t.snoozed_until)}"
    late = " · :warning: *overdue*" if t.due_at <= now or t.overdue_at else ""
    escalated = (
        f" · escalated to the {ROLE_LABELS.get(t.owner_role, t.owner_role)}"
        if t.escalation_level
        else ""
    )
    return f"Due {when(t.due_at)}{late}{escalated}"


def task_text(t: TaskNotice, now: datetime) -> str:
    head = f"{SEVERITY.get(t.severity, t.severity)} · *{esc(t.account)}* — {esc(t.title)}"
    if t.resolved_at is not None:
        return f"~{head}~\n{_state(t, now)}"
    lines = [head]
    if t.description:
        lines.append(esc(t.description))
    lines += [f"• {esc(s)}" for s in t.steps[:6]]
    lines.append(_state(t, now))
    return "\n".join(lines)


def task_actions(t: TaskNotice) -> ActionsBlock:
    value = TaskValue(task_id=t.id).dump()
    return ActionsBlock(
        block_id=f"task:{t.id}",
        elements=[
            ButtonElement(text="Done", action_id=f"{Action.TASK_DONE}:{t.id}", value=value,
                          style="primary"),
            StaticSelectElement(
                placeholder="Snooze…",
                action_id=f"{Action.TASK_SNOOZE}:{t.id}",
                options=[Option(value=f"{t.id}:{k}", label=v) for k, v in SNOOZES.items()],
            ),
            UserSelectElement(placeholder="Reassign…", action_id=f"{Action.TASK_REASSIGN}:{t.id}"),
            ButtonElement(text="Brief", action_id=f"{Action.SHOW_BRIEF}:{t.account_id}",
                          value=AccountValue(account_id=t.account_id).dump()),
        ],
    )  # fmt: skip


def title_of(tasks: Sequence[TaskNotice]) -> str:
    """The message's header and notification text."""
    if all(t.escalation_level for t in tasks):
        return f"{len(tasks)} overdue task{'s' if len(tasks) > 1 else ''} escalated to you"
    return f"{len(tasks)} task{'s' if len(tasks) > 1 else ''} from your playbooks"


def task_message(
    tasks: Sequence[TaskNotice],
    *,
    now: datetime,
    title: str | None = None,
    intro: str | None = None,
) -> list[Block]:
    """One message for a person's tasks (live ones with their buttons, settled ones struck
    through); past MAX_TASKS, the rest are named in one line."""
    shown = list(tasks)[:MAX_TASKS]
    blocks: list[Block] = [HeaderBlock(text=(title or title_of(tasks))[:150])]
    if intro:
        blocks.append(ContextBlock(elements=[_md(intro)]))
    for t in shown:
        blocks.append(SectionBlock(block_id=f"text:{t.id}", text=_md(task_text(t, now))))
        if t.resolved_at is None and t.status == "open":
            blocks.append(task_actions(t))
    if len(tasks) > len(shown):
        more = len(tasks) - len(shown)
        blocks.append(ContextBlock(elements=[_md(f"and {more} more: App Home lists them all")]))
    return blocks


def unheld_title(tasks: Sequence[TaskNotice]) -> str:
    n = len(tasks)
    return f"{n} playbook task{'s' if n > 1 else ''} with no one in Slack to tell"


UNHELD_NOTE = (
    "Nobody in Slack held these tasks when they opened. A CS manager can take each with "
    "*Reassign…*."
)


def unheld_intro(tasks: Sequence[TaskNotice], not_in_slack: Sequence[str]) -> str:
    """Why these tasks came to the managers' channel, and what to do about them."""
    missing = {e.lower() for e in not_in_slack}
    owners = sorted({(t.owner or "").lower() for t in tasks})
    why = [f"{esc(o)} is not in Slack" if o in missing else esc(o) for o in owners if o]
    if "" in owners:
        why.append("no owner (the account has none in the CRM, or the playbook's role is unset)")
    return (
        " · ".join(why) + ". A CS manager can take each with *Reassign…* (or fix the owner in the "
        "CRM, or the role in the playbooks' team.yaml)."
    )


def alert_blocks(tasks: Sequence[TaskNotice]) -> list[Block]:
    """A channel's alert: the tasks just opened (at most MAX_ALERTS, one block each, so none
    is cut off), who has them."""
    return [
        SectionBlock(text=_md(
            f"{SEVERITY.get(t.severity, t.severity)} · *{esc(t.account)}* — {esc(t.title)} · "
            f"{esc(t.owner or 'no owner')} · due {when(t.due_at)}"
        ))
        for t in list(tasks)[:MAX_ALERTS]
    ]  # fmt: skip


def task_lines(tasks: Sequence[TaskNotice], *, now: datetime, limit: int = 15) -> str:
    """Compact lines (App Home, the brief): severity, account, title, due."""
    rows = [
        f"{SEVERITY.get(t.severity, t.severity).split(' ')[0]} *{esc(t.account)}* — "
        f"{esc(t.title)} · {_state(t, now)}"
        for t in list(tasks)[:limit]
    ]
    if len(tasks) > limit:
        rows.append(f"and {len(tasks) - limit} more")
    return "\n".join(rows)
