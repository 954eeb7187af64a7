"""Who may see briefs (SLACK_BRIEF_VIEWERS): a list of emails, Slack user ids and user groups
(`S…`, members read with usergroups.users.list and kept for a few minutes). Empty: everyone
in the workspace. CS managers (SLACK_MANAGERS) always may."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk.errors import SlackApiError

from bot.context import BotContext
from bot.people import email_of

log = logging.getLogger(__name__)
GROUP_TTL = 300.0  # seconds a user group's member list is trusted
_groups: dict[str, tuple[float, frozenset[str]]] = {}
_lock = threading.Lock()


def _members(client, group: str) -> frozenset[str]:
    with _lock:
        hit = _groups.get(group)
    if hit is not None and time.monotonic() - hit[0] < GROUP_TTL:
        return hit[1]
    try:
        members = frozenset(client.usergroups_users_list(usergroup=group)["users"])
    except SlackApiError as exc:
        if exc.response.get("error") != "no_such_subteam":  # e.g. missing_scope: not cached
            log.warning("cannot read user group %s: %s (add usergroups:read to the app)",
                        group, exc.response.get("error"))  # fmt: skip
            return frozenset()
        members = frozenset()  # a group that is gone lets no one in
    with _lock:
        _groups[group] = (time.monotonic(), members)
    return members


def may_see_briefs(ctx: BotContext, client, user_id: str) -> bool:
    if not ctx.viewers or user_id in ctx.viewers:
        return True
    wanted = {v.lower() for v in ctx.viewers if "@" in v} | {m.lower() for m in ctx.managers}
    email = email_of(client, user_id)
    if email and email in wanted:
        return True
    return any(user_id in _members(client, g) for g in ctx.viewers if g.startswith("S"))


NOT_ALLOWED = (
    "Account briefs are open to the people your admin listed (SLACK_BRIEF_VIEWERS). "
    "Ask them to add you or your user group."
)
