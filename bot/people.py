"""Who a Slack user is: their email (users.info), looked up once and kept for a few minutes,
so a CSM's clicks and commands do not each cost a Web API call. One cache per workspace
client (its base URL and token), shared by the listener threads."""

from __future__ import annotations

import threading
import time

EMAIL_TTL = 600.0  # seconds a user's email is trusted (a changed profile shows after this)
_emails: dict[tuple[str, str, str], tuple[float, str]] = {}
_lock = threading.Lock()


def email_of(client, user_id: str) -> str:
    """The user's email, lower-cased ("" when the profile shows none)."""
    key = (str(client.base_url), str(client.token or ""), user_id)
    with _lock:
        hit = _emails.get(key)
    if hit is not None and time.monotonic() - hit[0] < EMAIL_TTL:
        return hit[1]
    profile = client.users_info(user=user_id)["user"]["profile"]
    email = (profile.get("email") or "").lower()
    with _lock:
        _emails[key] = (time.monotonic(), email)
    return email
