"""Task text templates: `{account.name}`-style fields, checked when loaded, rendered safely.

Only the fields below exist; `playbooks check` reports any other one, so a template can never
fail at run time. A value that is missing renders as an em dash."""

from __future__ import annotations

from string import Formatter
from typing import Any

FIELDS = {
    "account.name": "the account's name",
    "account.owner": "the account owner (email)",
    "account.segment": "segment",
    "account.arr": "annual recurring revenue",
    "account.renewal_date": "renewal date",
    "account.renewal_days": "days until renewal",
    "score.total": "health score, 0-100",
    "score.tier": "announced tier",
    "score.delta": "points moved with the change that triggered the task",
    "score.reason": "the score's one-sentence reason",
    "score.confidence": "share of the model's weight that had data, percent",
    "drivers": "the score's top drivers, comma separated",
    "trigger": "what matched, in words",
    "playbook": "the playbook's name",
}


def template_problems(text: str) -> list[str]:
    """Why `text` cannot be rendered: unknown fields, bad braces. Empty when fine."""
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:
        return [f"template is malformed ({exc}); write literal braces as {{{{ and }}}}"]
    problems = []
    for _literal, name, spec, _conv in parts:
        if name is None:
            continue
        if name not in FIELDS:
            known = ", ".join(sorted(FIELDS))
            problems.append(f"template names unknown field {{{name}}}; fields are {known}")
        elif spec and "{" in spec:
            problems.append(f"template field {{{name}}} has a nested field in its format")
    return problems


def render(text: str, values: dict[str, Any]) -> str:
    """Fill a checked template; a value that does not take its format spec is shown plain."""
    out = []
    for literal, name, spec, conv in Formatter().parse(text):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value is None:
            out.append("—")
            continue
        if conv == "r":
            value = repr(value)
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError):
            out.append(str(value))
    return "".join(out)
