"""The SOQL subset the Salesforce fake understands, parsed strictly (anything else -> an error
the fake answers with 400 MALFORMED_QUERY / INVALID_FIELD, as Salesforce would).

    SELECT f [, Rel.f] [, COUNT(Id) alias] [, MAX(f) alias] [, (SELECT f, ... FROM ChildRel)]
    FROM Object
    [WHERE cond]   cond: cond AND cond | cond OR cond | NOT cond | (cond)
                         | field (= != < <= > >=) literal | field [NOT] IN (literal, ...)
                         | field [NOT] IN (SELECT field FROM Object [WHERE cond])
    [GROUP BY field] [ORDER BY field [ASC|DESC] [, ...]] [LIMIT n]

A semi-join (IN) or anti-join (NOT IN) sub-select follows Salesforce's rules, else 400
MALFORMED_QUERY: at most two per WHERE (EXCEEDED_MAX_SEMIJOIN_SUBSELECTS), only at the top level
of the WHERE (not under OR or NOT), no sub-select inside one, one Id or reference field selected
from another object than the outer one, and the left operand an Id or reference field to the same
object (checked where the query is bound to the schema). GROUP BY, ORDER BY and LIMIT inside one
are not emulated (MALFORMED_QUERY). Its rows are the live ones, also under queryAll.

Literals: 'string', number, true/false/null, date 2026-01-01, datetime 2026-01-01T00:00:00Z
(also .000 / +00:00 / +0000). Like Salesforce, datetimes compare to the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))
    | (?P<date>\d{4}-\d\d-\d\d)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_UNESCAPE = re.compile(r"\\(.)")
_ESC = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def tokenize(text: str) -> list[tuple[str, Any]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "str":
            out.append(
                ("lit", _UNESCAPE.sub(lambda g: _ESC.get(g.group(1), g.group(1)), raw[1:-1]))
            )
        elif kind == "dt":
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            out.append(("lit", ("datetime", ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))))
        elif kind == "date":
            out.append(("lit", ("date", raw)))
        elif kind == "num":
            out.append(("lit", float(raw) if "." in raw else int(raw)))
        elif kind == "name" and raw.lower() in ("true", "false", "null"):
            out.append(("lit", {"true": True, "false": False, "null": None}[raw.lower()]))
        else:
            out.append((kind if kind != "punct" else raw, raw))
    return out


@dataclass
class Select:
    kind: str  # field | agg | sub
    name: str = ""  # field path, or the child relationship for a subquery
    func: str = ""
    alias: str = ""
    sub: Query | None = None


@dataclass
class Query:
    obj: str
    fields: list[Select]
    # ("and"|"or", a, b) | ("not", a) | ("cmp", field, op, value) | ("in", field, values, negate)
    # | ("semi", field, sub-select Query, negate)
    where: Any = None
    group_by: str | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int | None = None


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.t, self.i = tokens, 0

    def peek(self, offset: int = 0) -> tuple[str, Any]:
        j = self.i + offset
        return self.t[j] if j < len(self.t) else ("eof", None)

    def kw(self, word: str) -> bool:
        kind, val = self.peek()
        if kind == "name" and val.upper() == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.kw(word):
            raise SoqlError("MALFORMED_QUERY", f"expecting {word}, found {self.peek()[1]!r}")

    def expect(self, kind: str) -> Any:
        k, v = self.peek()
        if k != kind:
            raise SoqlError("MALFORMED_QUERY", f"expecting {kind!r}, found {v!r}")
        self.i += 1
        return v

    def query(self, nested: bool = False) -> Query:
        self.expect_kw("SELECT")
        fields = [self.select_item()]
        while self.peek()[0] == ",":
            self.i += 1
            fields.append(self.select_item())
        self.expect_kw("FROM")
        q = Query(self.expect("name"), fields)
        if self.kw("WHERE"):
            q.where = self.cond()
        if self.kw("GROUP"):
            self.expect_kw("BY")
            q.group_by = self.expect("name")
        if self.kw("ORDER"):
            self.expect_kw("BY")
            while True:
                name = self.expect("name")
                desc = self.kw("DESC") or (self.kw("ASC") and False)
                q.order.append((name, desc))
                if self.peek()[0] != ",":
                    break
                self.i += 1
        if self.kw("LIMIT"):
            q.limit = int(self.expect("lit"))
        if not nested and self.peek()[0] != "eof":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.peek()[1]!r}")
        return q

    def select_item(self) -> Select:
        if self.peek()[0] == "(":
            self.i += 1
            sub = self.query(nested=True)
            self.expect(")")
            return Select("sub", sub.obj, sub=sub)
        name = self.expect("name")
        if self.peek()[0] == "(":
            func = name.upper()
            if func not in ("COUNT", "MAX", "MIN"):
                raise SoqlError("MALFORMED_QUERY", f"unsupported function {name}")
            self.i += 1
            arg = self.expect("name")
            self.expect(")")
            alias = (
                self.expect("name")
                if self.peek()[0] == "name" and self.peek()[1].upper() not in ("FROM",)
                else ""
            )
            return Select("agg", arg, func, alias)
        return Select("field", name)

    def cond(self) -> Any:
        left = self.conj()
        while self.kw("OR"):
            left = ("or", left, self.conj())
        return left

    def conj(self) -> Any:
        left = self.atom()
        while self.kw("AND"):
            left = ("and", left, self.atom())
        return left

    def atom(self) -> Any:
        if self.kw("NOT"):
            return ("not", self.atom())
        if self.peek()[0] == "(":
            self.i += 1
            inner = self.cond()
            self.expect(")")
            return inner
        name = self.expect("name")
        negate = self.kw("NOT")
        if self.kw("IN"):
            self.expect("(")
            if self.peek()[0] == "name" and self.peek()[1].upper() == "SELECT":
                sub = self.query(nested=True)
                self.expect(")")
                return ("semi", name, sub, negate)
            values = [self.expect("lit")]
            while self.peek()[0] == ",":
                self.i += 1
                values.append(self.expect("lit"))
            self.expect(")")
            return ("in", name, values, negate)
        if negate:
            raise SoqlError("MALFORMED_QUERY", "NOT must be followed by IN here")
        op = self.expect("op")
        return ("cmp", name, op, self.expect("lit"))


def parse(text: str) -> Query:
    q = _Parser(tokenize(text)).query()
    check_joins(q)
    return q


def _malformed(message: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", message)


def _joins(cond: Any, under: str = "") -> list[tuple]:
    """The semi/anti-join nodes of a WHERE; `under`: the OR or NOT above them, if any."""
    if cond is None or cond[0] in ("cmp", "in"):
        return []
    if cond[0] == "semi":
        if under == "or":
            raise _malformed("Semi join sub-selects are not allowed with the 'OR' operator")
        if under == "not":
            raise _malformed(
                "Semi join sub-selects are only allowed at the top level WHERE expressions and "
                "not in nested WHERE expressions."
            )
        return [cond]
    if cond[0] == "not":
        return _joins(cond[1], under or "not")
    inner = under or ("or" if cond[0] == "or" else "")
    return _joins(cond[1], inner) + _joins(cond[2], inner)


def check_joins(q: Query) -> None:
    """Salesforce's rules for semi-join / anti-join sub-selects (see the module docstring)."""
    found = _joins(q.where)
    if len(found) > 2:
        raise SoqlError(
            "EXCEEDED_MAX_SEMIJOIN_SUBSELECTS",
            "Maximum of 2 semi join sub-selects are allowed per WHERE clause",
        )
    for _, _, sub, _ in found:
        if _joins(sub.where):
            raise _malformed("Nesting of semi join sub-selects is not supported")
        if len(sub.fields) != 1 or sub.fields[0].kind != "field":
            raise _malformed("semi join sub selects can only query one id field")
        if sub.obj.lower() == q.obj.lower():
            raise _malformed("The inner and outer selects should not be on the same object type")
        if sub.group_by or sub.order or sub.limit is not None:
            raise _malformed("GROUP BY, ORDER BY and LIMIT in a semi join sub-select: not emulated")


# --- evaluation -----------------------------------------------------------------------------


def _key(value: Any, ftype: str) -> Any:
    """Comparable form of a stored value; datetimes to the second, as Salesforce compares."""
    if value is None:
        return None
    if ftype == "datetime":
        return ("datetime", value[:19])
    if ftype == "date":
        return ("date", value)
    return value


def _lit(value: Any, ftype: str, name: str) -> Any:
    if value is None:
        return None
    typed = isinstance(value, tuple)
    if ftype in ("datetime", "date"):
        if not typed or value[0] != ftype:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                f"value of filter criterion for field '{name}' must be of type {ftype} "
                "and should not be enclosed in quotes",
            )
        return value
    if typed:
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"{name}: a {ftype} is not a date")
    if ftype == "boolean" and not isinstance(value, bool):
        raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"{name}: expecting true or false")
    return value


_OPS = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and b is not None and a < b,
    "<=": lambda a, b: a is not None and b is not None and a <= b,
    ">": lambda a, b: a is not None and b is not None and a > b,
    ">=": lambda a, b: a is not None and b is not None and a >= b,
}


def compile_where(cond: Any, resolve, subselect=None) -> Any:
    """cond -> predicate(record). `resolve(name) -> (canonical field, type)` raises on unknown;
    `subselect(field, type, Query) -> set of values` answers a semi-join's sub-select."""
    if cond is None:
        return lambda r: True
    kind = cond[0]
    if kind in ("and", "or"):
        a, b = (
            compile_where(cond[1], resolve, subselect),
            compile_where(cond[2], resolve, subselect),
        )
        return (lambda r: a(r) and b(r)) if kind == "and" else (lambda r: a(r) or b(r))
    if kind == "not":
        a = compile_where(cond[1], resolve, subselect)
        return lambda r: not a(r)
    fname, ftype = resolve(cond[1])
    if kind == "semi":
        if subselect is None:
            raise _malformed("Nesting of semi join sub-selects is not supported")
        if ftype not in ("id", "reference"):
            raise _malformed(
                f"semi join sub selects can only query id fields, cannot use: '{fname}'"
            )
        found, negate = subselect(fname, ftype, cond[2]), cond[3]
        return lambda r: (r.get(fname) in found) != negate
    if kind == "in":
        values = {_lit(v, ftype, fname) for v in cond[2]}
        negate = cond[3]
        return lambda r: (_key(r.get(fname), ftype) in values) != negate
    _, _, op, lit = cond
    value, fn = _lit(lit, ftype, fname), _OPS[op]
    return lambda r: fn(_key(r.get(fname), ftype), value)
