"""Read a playbook directory (`*.yaml`: playbooks; `team.yaml`: who holds each role and who an
overdue task escalates to) and check all of it: every problem of every file, each with its
file and line, so `healthbot playbooks check` can list them at once. A set with any problem
is never used (`load_playbooks` raises), so the workers cannot run half of it."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from playbooks.spec import (
    ROLES,
    SEVERITIES,
    Condition,
    Playbook,
    PlaybookSet,
    TaskTemplate,
    Team,
    parse_duration,
)
from playbooks.templates import template_problems
from playbooks.triggers import TRIGGERS

DEFAULTS_DIR = Path(__file__).parent / "defaults"
TEAM_FILE = "team.yaml"
COMBINATORS = ("all", "any", "not")
PLAYBOOK_KEYS = ("key", "name", "when", "task", "recover_after", "escalate_after", "alert_channel")
TASK_KEYS = ("title", "description", "steps", "owner", "due", "severity")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PlaybookError(ValueError):
    """A playbook set with problems; `problems` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


class _Map(dict):
    line: int = 0
    lines: dict


class _List(list):
    line: int = 0
    lines: list


def _plain(node: yaml.Node) -> Any:
    """A composed YAML node -> dicts / lists that remember their lines (1-based)."""
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line, out.lines = node.start_mark.line + 1, {}
        for k, v in node.value:
            key = _plain(k)
            out[key] = _plain(v)
            out.lines[key] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        items = _List(_plain(v) for v in node.value)
        items.line = node.start_mark.line + 1
        items.lines = [v.start_mark.line + 1 for v in node.value]
        return items
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data()


def _line(obj: Any, key: Any = None, default: int = 1) -> int:
    if key is not None and isinstance(obj, _Map):
        return obj.lines.get(key, obj.line)
    return getattr(obj, "line", default)


class _Checker:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def keys(self, mapping: _Map, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(_line(mapping, key), f"unknown key {key!r} in {what}{also}")

    def condition(self, node: Any, line: int) -> Condition | None:
        if not isinstance(node, dict) or len(node) != 1:
            self.add(line, "a condition is a mapping with one key: all, any, not or a trigger")
            return None
        ((op, value),) = node.items()
        at = _line(node, op, line)
        if op in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.add(at, f"`{op}` takes a non-empty list of conditions")
                return None
            lines = getattr(value, "lines", [at] * len(value))
            kids = [self.condition(v, ln) for v, ln in zip(value, lines, strict=True)]
            return None if None in kids else Condition(op, children=tuple(kids))  # type: ignore[arg-type]
        if op == "not":
            kid = self.condition(value, _line(value, default=at))
            return None if kid is None else Condition("not", children=(kid,))
        trigger = TRIGGERS.get(op)
        if trigger is None:
            hint = difflib.get_close_matches(str(op), [*TRIGGERS, *COMBINATORS], n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.add(at, f"unknown trigger {op!r}{also}; see `healthbot playbooks triggers`")
            return None
        try:
            return Condition(op, trigger.parse(value))
        except (ValueError, KeyError, TypeError) as exc:
            self.add(at, f"{op}: {exc}")
            return None

    def duration(self, mapping: _Map, key: str, default: str):
        try:
            return parse_duration(mapping.get(key, default))
        except ValueError as exc:
            self.add(_line(mapping, key), f"{key}: {exc}")
            return None

    def task(self, node: Any, line: int) -> TaskTemplate | None:
        if not isinstance(node, _Map):
            self.add(line, "`task` must be a mapping with at least a title")
            return None
        self.keys(node, TASK_KEYS, "task")
        ok = True
        title = node.get("title")
        if not isinstance(title, str) or not title.strip():
            self.add(node.line, "task needs a `title`")
            ok = False
        steps = node.get("steps") or []
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            self.add(_line(node, "steps"), "`steps` is a list of lines of text")
            ok, steps = False, []
        for key, text in [("title", title), ("description", node.get("description", ""))] + [
            ("steps", s) for s in steps
        ]:
            for problem in template_problems(str(text or "")):
                self.add(_line(node, key), problem)
                ok = False
        owner = node.get("owner", "account_owner")
        if owner not in ROLES:
            self.add(
                _line(node, "owner"), f"unknown owner role {owner!r}; roles are {', '.join(ROLES)}"
            )
            ok = False
        severity = node.get("severity", "medium")
        if severity not in SEVERITIES:
            self.add(
                _line(node, "severity"),
                f"severity is one of {', '.join(SEVERITIES)}, not {severity!r}",
            )
            ok = False
        due = self.duration(node, "due", "2d")
        if not ok or due is None:
            return None
        return TaskTemplate(
            title=title.strip(),
            description=str(node.get("description") or "").strip(),
            steps=tuple(steps),
            owner=owner,
            due=due,
            severity=severity,
        )

    def playbook(self, node: Any, line: int, default_key: str) -> Playbook | None:
        if not isinstance(node, _Map):
            self.add(line, "a playbook is a mapping with name, when and task")
            return None
        self.keys(node, PLAYBOOK_KEYS, "playbook")
        for key in ("name", "when", "task"):
            if key not in node:
                self.add(node.line, f"playbook is missing `{key}`")
        when = self.condition(node["when"], _line(node, "when")) if "when" in node else None
        task = self.task(node["task"], _line(node, "task")) if "task" in node else None
        recover = self.duration(node, "recover_after", "7d")
        escalate = self.duration(node, "escalate_after", "0h")
        channel = node.get("alert_channel")
        if channel is not None and not isinstance(channel, str):
            self.add(_line(node, "alert_channel"), "alert_channel is a channel id or #name")
            return None
        if None in (when, task, recover, escalate) or "name" not in node:
            return None
        definition = json.dumps(node, sort_keys=True, default=str).encode()
        return Playbook(
            key=str(node.get("key") or default_key),
            name=str(node["name"]),
            when=when,  # type: ignore[arg-type]
            task=task,  # type: ignore[arg-type]
            recover_after=recover,  # type: ignore[arg-type]
            escalate_after=escalate,  # type: ignore[arg-type]
            alert_channel=channel,
            source=self.file,
            version=hashlib.sha1(definition).hexdigest()[:12],
        )

    def team(self, node: Any) -> Team | None:
        if node is None:
            return Team()
        if not isinstance(node, _Map):
            self.add(1, "team.yaml is a mapping with `roles` and `escalation`")
            return None
        self.keys(node, ("roles", "escalation"), "team.yaml")
        roles, escalation = node.get("roles") or {}, node.get("escalation") or {}
        ok = True
        for role, spec in roles.items():
            if role not in ROLES or role == "account_owner":
                self.add(
                    _line(roles, role),
                    f"unknown role {role!r}; roles are {', '.join(ROLES[1:])}"
                    " (the account owner comes from the CRM)",
                )
                ok = False
            elif not isinstance(spec, dict) or set(spec) - {"default", "segments", "owners"}:
                self.add(_line(roles, role), f"{role}: write default / segments / owners")
                ok = False
        for role, nxt in escalation.items():
            for r in (role, nxt):
                if r not in ROLES:
                    self.add(
                        _line(escalation, role),
                        f"escalation names unknown role {r!r}; roles are {', '.join(ROLES)}",
                    )
                    ok = False
        if ok:
            for start in escalation:
                seen, role = [start], escalation.get(start)
                while role is not None:
                    if role in seen:
                        path = " -> ".join([*seen, role])
                        self.add(_line(escalation, start), f"escalation has a cycle: {path}")
                        ok = False
                        break
                    seen.append(role)
                    role = escalation.get(role)
                if not ok:
                    break
        if not ok:
            return None
        lower = {
            r: {
                **spec,
                "owners": {str(k).lower(): v for k, v in (spec.get("owners") or {}).items()},
            }
            for r, spec in roles.items()
        }
        return Team(roles=lower, escalation=dict(escalation))


def _read(path: Path, checker: _Checker) -> Any:
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        checker.add(line, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        checker.add(1, f"cannot read: {exc}")
        return None
    return None if node is None else _plain(node)


def check_playbooks(
    directory: Path | str | None = None,
) -> tuple[PlaybookSet | None, list[Problem]]:
    """Load and check every file of `directory` (default: the shipped defaults). The set is
    None whenever there is a problem."""
    root = Path(directory) if directory else DEFAULTS_DIR
    if not root.is_dir():
        return None, [Problem(str(root), 1, "not a directory of playbook YAML files")]
    problems: list[Problem] = []
    playbooks: list[Playbook] = []
    team: Team | None = Team()
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))
    for path in files:
        checker = _Checker(str(path))
        data = _read(path, checker)
        if path.name == TEAM_FILE:
            team = checker.team(data) if not checker.problems else None
        elif data is not None:
            items = (
                data.get("playbooks") if isinstance(data, dict) and "playbooks" in data else [data]
            )
            lines = getattr(items, "lines", [getattr(data, "line", 1)] * len(items or []))
            if not isinstance(items, list):
                checker.add(_line(data, "playbooks"), "`playbooks` is a list of playbooks")
                items = []
            for i, (item, line) in enumerate(zip(items, lines, strict=False)):
                key = path.stem if len(items) == 1 else f"{path.stem}-{i + 1}"
                book = checker.playbook(item, line, key)
                if book is not None:
                    playbooks.append(book)
        problems += checker.problems
    seen: dict[str, Playbook] = {}
    for book in playbooks:
        if book.key in seen:
            problems.append(
                Problem(
                    book.source,
                    1,
                    f"playbook key {book.key!r} is also used in {seen[book.key].source}",
                )
            )
        seen[book.key] = book
    if not playbooks and not problems:
        problems.append(Problem(str(root), 1, "no playbooks found (*.yaml files)"))
    if problems or team is None:
        return None, problems
    return PlaybookSet(tuple(playbooks), team=team, source=str(root)), []


def load_playbooks(directory: Path | str | None = None) -> PlaybookSet:
    book, problems = check_playbooks(directory)
    if book is None:
        raise PlaybookError(problems)
    return book
