"""A local fake of Slack's Web API (what slack_sdk sends), and of the `response_url`s Slack
hands a slash command, for the bot's tests and demo.

- Every method is `POST /api/{method}` with a JSON or form body and `Authorization: Bearer`;
  a method Slack's published spec does not list is `unknown_method` (`slack_methods.json`:
  the method names of slackapi/slack-api-specs' web API spec, MIT, `SLACK_SPEC_LICENSE`).
  Answers are HTTP 200 `{"ok": ...}`; a wrong token is `invalid_auth`; the `rate_limit`
  fault is HTTP 429 + Retry-After + `ratelimited`.
- A message posted to a user id goes to the app's DM with them: the answer's `channel` is
  that IM's id (`D...`, `dm_channel`), which chat.update needs (a user id there is
  `channel_not_found`; a (channel, ts) never posted, `message_not_found`).
- Served: auth.test, chat.postMessage, chat.postEphemeral, chat.update, users.info,
  users.lookupByEmail (people from `users`), usergroups.users.list (from `groups`; an unknown
  group is `no_such_subteam`), views.open / views.publish (recorded).
- Block Kit limits: more than 50 blocks in a message, a section text over 3,000 characters or
  a header over 150 -> `invalid_blocks`.
- `response_url()` makes a URL on this server; posts to it are recorded (at most 5, as Slack).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from connectors.sandbox.server import Fault, Request, Response, SandboxServer

TOKEN = "xoxb-sandbox-token"
METHODS_FILE = Path(__file__).with_name("slack_methods.json")
MAX_BLOCKS, MAX_SECTION, MAX_HEADER, MAX_RESPONSES = 50, 3000, 150, 5


def dm_channel(user: str) -> str:
    """The id of the app's DM (IM channel) with a user, as chat.postMessage answers it."""
    return "D" + user[1:]


def spec_methods() -> set[str]:
    """The Web API methods Slack's published spec lists."""
    return set(json.loads(METHODS_FILE.read_text())["methods"])


@dataclass
class Call:
    method: str
    args: dict


@dataclass
class SlackSandbox:
    users: dict[str, dict] = field(default_factory=dict)  # user id -> {email, tz, name}
    groups: dict[str, list[str]] = field(default_factory=dict)  # user group id -> user ids
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    responses: dict[str, list[dict]] = field(default_factory=dict)  # response_url id -> posts
    methods: set[str] = field(default_factory=spec_methods)
    server: SandboxServer | None = None
    posted: set[tuple[str, str]] = field(default_factory=set)  # (channel, ts) of each message
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.server.url}/api/"

    def response_url(self) -> str:
        rid = f"r{next(self._ts)}"
        self.responses[rid] = []
        return f"{self.server.url}/response/{rid}"

    def called(self, method: str) -> list[dict]:
        return [c.args for c in self.calls if c.method == method]

    def route(self, req: Request) -> Response:
        if req.path.startswith("/response/"):
            return self._respond(req.path.rsplit("/", 1)[1], req)
        method = req.path.removeprefix("/api/")
        if method not in self.methods:
            return Response(200, {"ok": False, "error": "unknown_method"})
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        args = _args(req)
        with self._lock:
            self.calls.append(Call(method, args))
        problem = _check_blocks(args.get("blocks"))
        if problem:
            return Response(200, {"ok": False, "error": "invalid_blocks", "detail": problem})
        return Response(200, self._answer(method, args))

    def _answer(self, method: str, args: dict) -> dict:
        if method == "auth.test":
            return {"ok": True, "team_id": "T0SANDBOX", "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.postMessage":
            channel = str(args.get("channel") or "")
            if channel[:1] in ("U", "W"):  # a user id: the app's DM with them (an IM, D...)
                if channel not in self.users:
                    return _no("channel_not_found")
                channel = dm_channel(channel)
            ts = f"1790000000.{next(self._ts):06d}"
            with self._lock:
                self.posted.add((channel, ts))
            return {"ok": True, "channel": channel, "ts": ts, "message": args}
        if method == "chat.update":
            key = (str(args.get("channel")), str(args.get("ts")))
            if key[0][:1] in ("U", "W"):  # a message is updated where it is, never by user id
                return _no("channel_not_found")
            if key not in self.posted:
                return _no("message_not_found")
            return {"ok": True, "channel": key[0], "ts": key[1], "message": args}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1790000000.{next(self._ts):06d}"}
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            return _user(args.get("user"), user) if user else _no("user_not_found")
        if method == "users.lookupByEmail":
            found = [(u, p) for u, p in self.users.items() if p.get("email") == args.get("email")]
            return _user(*found[0]) if found else _no("users_not_found")
        if method == "usergroups.users.list":
            members = self.groups.get(str(args.get("usergroup")))
            return {"ok": True, "users": members} if members is not None else _no("no_such_subteam")
        if method in ("views.open", "views.publish", "views.update"):
            return {"ok": True, "view": {"id": f"V{next(self._ts)}", "hash": "h1"}}
        return {"ok": True}

    def _respond(self, rid: str, req: Request) -> Response:
        posts = self.responses.get(rid)
        if posts is None or len(posts) >= MAX_RESPONSES:
            return Response(404, "used_url")
        body = req.json() or {}
        if problem := _check_blocks(body.get("blocks")):
            return Response(400, f"invalid_blocks: {problem}")
        posts.append(body)
        return Response(200, "ok")

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            headers = {"Retry-After": f"{fault.retry_after or 1:g}"}
            return Response(429, {"ok": False, "error": "ratelimited"}, headers)
        return Response(500, {"ok": False, "error": "internal_error"})

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> SlackSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _args(req: Request) -> dict:
    if "json" in req.headers.get("content-type", ""):
        return req.json() or {}
    form = parse_qs(req.body.decode())
    out: dict = {k: v[0] for k, v in form.items()}
    if isinstance(out.get("blocks"), str):
        out["blocks"] = json.loads(out["blocks"])
    return out


def _check_blocks(blocks) -> str | None:
    if not blocks:
        return None
    if len(blocks) > MAX_BLOCKS:
        return f"{len(blocks)} blocks: a message takes at most {MAX_BLOCKS}"
    for b in blocks:
        text = (b.get("text") or {}).get("text", "") if isinstance(b, dict) else ""
        if b.get("type") == "section" and len(text) > MAX_SECTION:
            return f"a section text of {len(text)} characters (max {MAX_SECTION})"
        if b.get("type") == "header" and len(text) > MAX_HEADER:
            return f"a header of {len(text)} characters (max {MAX_HEADER})"
    return None


def _user(uid, person: dict) -> dict:
    profile = {"email": person.get("email"), "real_name": person.get("name", "")}
    return {"ok": True, "user": {"id": uid, "tz": person.get("tz", "UTC"), "profile": profile}}


def _no(error: str) -> dict:
    return {"ok": False, "error": error}


def start_slack_sandbox(
    users: dict[str, dict] | None = None, groups: dict[str, list[str]] | None = None
) -> SlackSandbox:
    sandbox = SlackSandbox(users=dict(users or {}), groups=dict(groups or {}))
    sandbox.server = SandboxServer(sandbox.route, sandbox.fault_response).start()
    return sandbox
