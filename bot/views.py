"""Block Kit for what the bot posts, built with slack_sdk.models from plain read models:
pure, no client, no database. Every CRM text is escaped (an account named `<!channel>` pings
no one); Slack's limits are the models' own checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from urllib.parse import quote

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ids import AccountValue, Action, Field
from bot.ids import View as ViewId
from health.briefs import AccountLine, Brief, churn_note, is_former
from health.scoring.model import TIER_LABELS
from health.sentiment import DIRECTIONS, FLAGS, NOTE_MAX

DOTS = {
    "healthy": ":large_green_circle:",
    "monitor": ":large_yellow_circle:",
    "at_risk": ":large_orange_circle:",
    "critical": ":red_circle:",
    "insufficient": ":white_circle:",  # no tier claimed: too little data
}
BARS = "▁▂▃▄▅▆▇█"
MAX_LINES = 40  # accounts listed in one message, under Slack's 50 blocks


def esc(text: object) -> str:
    """Slack mrkdwn escaping: `&`, `<`, `>` (no mention, link or command from CRM text)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def money(value: float | None) -> str:
    if value is None:
        return "ARR —"
    return f"ARR ${value / 1e6:.1f}M" if value >= 1e6 else f"ARR ${value / 1e3:.0f}k"


def sparkline(values: Sequence[float]) -> str:
    pts = list(values)[-30:]
    return "".join(BARS[min(7, max(0, int(v / 100 * 8)))] for v in pts)


def trend(delta: float | None) -> str:
    if delta is None:
        return "first month"
    if abs(delta) < 5:
        return f"▶ steady ({delta:+.0f}) in 30 days"
    return f"{'▲' if delta > 0 else '▼'} {abs(delta):.0f} in 30 days"


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def brief_blocks(
    b: Brief,
    *,
    today: date,
    crm_url: str | None,
    freshness: dict[str, datetime],
    now: datetime,
    tasks: str = "",
) -> list[Block]:
    """`tasks`: the account's open playbook tasks, as lines (bot.task_views.task_lines)."""
    line = b.line
    facts = [
        esc(line.segment.replace("_", "-").title()) if line.segment else "segment —",
        f"owner {esc(line.owner)}" if line.owner else "no owner",
        f"churned {b.churned_on:%d %b %Y}"
        if is_former(b, today)
        else _renewal(b.renewal_date, today),
        money(line.arr),
    ]
    head = (
        f"{DOTS[b.announced_tier]} *{line.total:.0f} / 100 — {TIER_LABELS[b.announced_tier]}*"
        f"   {trend(line.trend_30d)}   `{sparkline(b.history)}` ({len(b.history)} days)"
    )
    drivers = line.reason.partition("): ")[2] or line.reason
    parts = [f"{c.label.split(' ')[0]} {c.score:.0f}" for c in b.components if c.score is not None]
    parts.append(f"confidence {line.confidence:.0%}")
    blocks: list[Block] = [
        HeaderBlock(text=line.name[:150]),
        ContextBlock(elements=[_md(" · ".join(facts))]),
        SectionBlock(text=_md(head)),
        SectionBlock(text=_md(f"> {esc(drivers)}"[:3000])),
        ContextBlock(elements=[_md(" · ".join(parts))]),
    ]
    if note := churn_note(b, today):
        blocks.insert(1, SectionBlock(text=_md(f":no_entry: *{esc(note)}*")))
    if tasks:
        blocks.append(SectionBlock(text=_md(f"*Open tasks*\n{tasks}"[:3000])))
    if b.history_gap:
        blocks.append(ContextBlock(elements=[_md(esc(b.history_gap))]))
    if len(b.records) > 1:
        linked = " · ".join(f"{r['source']} {esc(r['id'])}" for r in b.records)
        blocks.append(ContextBlock(elements=[_md(f"Linked records: {linked}")]))
    if freshness:
        ages = " · ".join(f"{src} {_age(now - at)}" for src, at in sorted(freshness.items()))
        blocks.append(ContextBlock(elements=[_md(f"Data as of: {ages} ago")]))
    buttons = []
    if crm_url:
        buttons.append(ButtonElement(text="Open in CRM", url=crm_url, action_id=Action.OPEN_IN_CRM))
    value = AccountValue(account_id=line.account_id).dump()
    buttons.append(ButtonElement(text="Log sentiment", action_id=Action.LOG_SENTIMENT, value=value))
    buttons.append(
        ButtonElement(text="Share in channel", action_id=Action.SHARE_BRIEF, value=value)
    )
    blocks.append(ActionsBlock(elements=buttons))
    return blocks


def _renewal(day: date | None, today: date) -> str:
    if day is None:
        return "renewal —"
    return f"renewal {day:%d %b %Y} ({(day - today).days} days)"


def _age(delta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes < 90:
        return f"{max(0, minutes):.0f} min"
    return f"{minutes / 60:.0f} h" if minutes < 48 * 60 else f"{minutes / 1440:.0f} days"


def picker_blocks(query: str, candidates: Sequence[tuple[int, str]]) -> list[Block]:
    """Several accounts match: one button each (five at most)."""
    shown = list(candidates)[:5]
    more = len(candidates) - len(shown)
    text = f"*{esc(query)}* matches {len(candidates)} accounts. Which one?"
    if more:
        text += f" ({more} more: be more specific)"
    buttons = [
        ButtonElement(
            text=name[:75],
            action_id=f"{Action.PICK_ACCOUNT}:{acc}",
            value=AccountValue(account_id=acc).dump(),
        )
        for acc, name in shown
    ]
    return [SectionBlock(text=_md(text)), ActionsBlock(elements=buttons)]


def note_blocks(text: str) -> list[Block]:
    """A one-line answer (mrkdwn, already escaped by the caller)."""
    return [SectionBlock(text=_md(text))]


def not_found_blocks(query: str, closest: Sequence[str]) -> list[Block]:
    text = f"No account matches *{esc(query)}*."
    if closest:
        text += " Did you mean " + ", ".join(f"*{esc(n)}*" for n in closest) + "?"
    return [SectionBlock(text=_md(text))]


def book_blocks(owner: str, lines: Sequence[AccountLine]) -> list[Block]:
    if not lines:
        return [SectionBlock(text=_md(f"No scored account has {esc(owner)} as its owner."))]
    rows = [
        f"{DOTS[x.tier]} *{esc(x.name)}* {x.total:.0f} · {trend(x.trend_30d)} · {money(x.arr)}"
        for x in lines[:MAX_LINES]
    ]
    blocks: list[Block] = [HeaderBlock(text=f"Your book: {len(lines)} accounts")]
    for k in range(0, len(rows), 10):
        blocks.append(SectionBlock(text=_md("\n".join(rows[k : k + 10]))))
    if len(lines) > MAX_LINES:
        more = len(lines) - MAX_LINES
        blocks.append(ContextBlock(elements=[_md(f"and {more} more: `/health NAME` for one")]))
    return blocks


HELP = (
    "*/health ACCOUNT* — the account's health brief: score, tier and trend, why, components, "
    "renewal and ARR, linked records and how fresh the data is. ACCOUNT is a name, domain or "
    "CRM id; several matches give a picker.\n*/health* — your own book, worst first.\n"
    "*/health help* — this."
)


def help_blocks() -> list[Block]:
    return [SectionBlock(text=_md(HELP))]


def as_dicts(blocks: Sequence[Block]) -> list[dict]:
    return [b.to_dict() for b in blocks]


def sentiment_modal(account_id: int, name: str) -> View:
    """The sentiment form: a 1-5 rating, direction, flags and a note, for one account."""
    ratings = ["1 · very worried", "2 · worried", "3 · neutral", "4 · confident",
               "5 · very confident"]  # fmt: skip
    return View(
        type="modal",
        callback_id=ViewId.SENTIMENT,
        title="Log sentiment",
        submit="Save",
        close="Cancel",
        private_metadata=AccountValue(account_id=account_id).dump(),
        blocks=[
            SectionBlock(text=_md(f"How is *{esc(name)}* doing, in your judgement?")),
            InputBlock(
                block_id=Field.RATING,
                label="Rating",
                element=StaticSelectElement(
                    action_id=Field.RATING,
                    placeholder="1 to 5",
                    options=[Option(value=str(k), label=t) for k, t in enumerate(ratings, 1)],
                ),
            ),
            InputBlock(
                block_id=Field.DIRECTION,
                label="Direction",
                optional=True,
                element=RadioButtonsElement(
                    action_id=Field.DIRECTION,
                    options=[Option(value=d, label=d.title()) for d in DIRECTIONS],
                ),
            ),
            InputBlock(
                block_id=Field.FLAGS,
                label="Flags",
                optional=True,
                element=CheckboxesElement(
                    action_id=Field.FLAGS,
                    options=[Option(value=k, label=v) for k, v in FLAGS.items()],
                ),
            ),
            InputBlock(
                block_id=Field.NOTE,
                label="Note",
                optional=True,
                element=PlainTextInputElement(
                    action_id=Field.NOTE, multiline=True, max_length=NOTE_MAX
                ),  # fmt: skip
            ),
        ],
    )


def block_kit_builder_url(blocks: Sequence[Block]) -> str:
    """A link that opens these blocks in Slack's Block Kit Builder, as Slack would show them."""
    return "https://app.slack.com/block-kit-builder/#" + quote(
        json.dumps({"blocks": as_dicts(blocks)}, separators=(",", ":"))
    )


MAX_DIGEST = 20  # accounts in one digest: two blocks each, under Slack's 50


def digest_blocks(
    lines: Sequence[AccountLine],
    *,
    day: date,
    renewals: dict,
    stale: Sequence[str] = (),
    stale_days: int = 30,
) -> list[Block]:
    """A CSM's morning digest: the accounts that need attention, worst ARR at stake first,
    each with score, change, why, renewal, and Brief / Log sentiment buttons; then a reminder
    of the accounts whose sentiment is older than `stale_days`."""
    shown = list(lines)[:MAX_DIGEST]
    title = f"{len(lines)} accounts need you today" if lines else "No account needs you today"
    blocks: list[Block] = [
        HeaderBlock(text=title),
        ContextBlock(elements=[_md(f"{day:%A %d %B} · at risk, critical or falling 10+ points")]),
    ]
    for x in shown:
        drivers = x.reason.partition("): ")[2] or x.reason
        renewal = _renewal(renewals.get(x.account_id), day)
        head = (
            f"{DOTS[x.tier]} *{esc(x.name)}* {x.total:.0f} — {TIER_LABELS[x.tier]} · "
            f"{trend(x.trend_30d)} · {renewal} · {money(x.arr)}\n> {esc(drivers)}"
        )
        value = AccountValue(account_id=x.account_id).dump()
        blocks.append(SectionBlock(text=_md(head[:3000])))
        blocks.append(ActionsBlock(elements=[
            ButtonElement(text="Brief", action_id=f"{Action.SHOW_BRIEF}:{x.account_id}",
                          value=value),
            ButtonElement(text="Log sentiment", action_id=f"{Action.LOG_SENTIMENT}:{x.account_id}",
                          value=value),
        ]))  # fmt: skip
    if len(lines) > len(shown):
        more = len(lines) - len(shown)
        blocks.append(ContextBlock(elements=[_md(f"and {more} more: `/health` lists your book")]))
    if stale:
        names = ", ".join(esc(n) for n in stale[:20])
        more = f" and {len(stale) - 20} more" if len(stale) > 20 else ""
        blocks.append(SectionBlock(text=_md(
            f":memo: *Sentiment to refresh* (none logged in {stale_days} days): {names}{more}. "
            "`/health NAME` → Log sentiment."
        )))  # fmt: skip
    return blocks


def rollup_blocks(
    by_owner: dict[str, Sequence[AccountLine]], *, day: date, playbooks: str = ""
) -> list[Block]:
    """The managers' roll-up: per CSM, how many accounts need attention and the ARR at stake;
    `playbooks`: a line of what the playbooks achieved (save rate, overdue tasks)."""
    rows = sorted(by_owner.items(), key=lambda kv: -sum(x.arr or 0 for x in kv[1]))
    text = "\n".join(
        f"*{esc(owner)}*: {len(lines)} accounts · {money(sum(x.arr or 0 for x in lines))} at stake"
        for owner, lines in rows[:40]
    )
    blocks: list[Block] = [
        HeaderBlock(text=f"Accounts needing attention · {day:%d %b}"),
        SectionBlock(text=_md(text[:3000] or "No account needs attention today.")),
    ]
    if playbooks:
        blocks.append(ContextBlock(elements=[_md(playbooks)]))
    return blocks


def home_view(
    owner: str, lines: Sequence[AccountLine], stale: Sequence[str], days: int, tasks: str = ""
) -> View:
    """App Home: the CSM's open tasks, book by tier, and the accounts whose sentiment is
    stale. `tasks`: lines from bot.task_views.task_lines."""
    blocks: list[Block] = [HeaderBlock(text="Your open tasks")]
    blocks.append(SectionBlock(text=_md((tasks or "No open playbook tasks. :tada:")[:3000])))
    blocks.append(HeaderBlock(text="Your book"))
    if not lines:
        blocks.append(SectionBlock(text=_md(f"No scored account has {esc(owner)} as owner.")))
    for tier in ("critical", "at_risk", "monitor", "healthy", "insufficient"):
        rows = [x for x in lines if x.tier == tier]
        if rows:
            text = f"{DOTS[tier]} *{TIER_LABELS[tier]}* ({len(rows)})\n" + "\n".join(
                f"• {esc(x.name)} {x.total:.0f} · {trend(x.trend_30d)}" for x in rows[:25]
            )
            blocks.append(SectionBlock(text=_md(text[:3000])))
    if stale:
        names = ", ".join(esc(n) for n in stale[:40])
        more = f" and {len(stale) - 40} more" if len(stale) > 40 else ""
        blocks.append(HeaderBlock(text="Sentiment to refresh"))
        blocks.append(SectionBlock(text=_md(
            f"No sentiment logged in {days} days: {names}{more}. `/health NAME` → Log sentiment."
        )))  # fmt: skip
    return View(type="home", blocks=blocks)
