"""Query, queryMore, sObject Collections update and Composite for the Salesforce fake."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from connectors.sandbox import salesforce_soql as soql
from connectors.sandbox.salesforce_picklists import refusal
from connectors.sandbox.salesforce_seed import CHILDREN, SCHEMA, sf_ts
from connectors.sandbox.server import Request, Response

if TYPE_CHECKING:
    from connectors.sandbox.salesforce_api import SalesforceSandbox

MAX_BATCH, MIN_BATCH, MAX_CURSORS, MAX_COLLECTION, MAX_COMPOSITE = 2000, 200, 10, 200, 25


def _err(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code}])


class _Resolver:
    def __init__(self, obj: str):
        self.obj = obj
        self.fields = {f.lower(): (f, t) for f, t in SCHEMA[obj].items()}
        self.rels = {
            t[2].lower(): (f, t[1]) for f, t in SCHEMA[obj].items() if isinstance(t, tuple)
        }

    def field(self, name: str) -> tuple[str, str]:
        hit = self.fields.get(name.lower())
        if hit is None:
            raise soql.SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{self.obj}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after the custom field name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        name, ftype = hit
        return name, "reference" if isinstance(ftype, tuple) else str(ftype)

    def path(self, path: str) -> tuple[str, ...]:
        """`Field` -> (Field,), `Rel.Field` -> (ref field, RelName, target, target field)."""
        if "." not in path:
            return (self.field(path)[0],)
        rel, _, rest = path.partition(".")
        hit = self.rels.get(rel.lower())
        if hit is None or "." in rest:
            raise soql.SoqlError(
                "INVALID_FIELD", f"Didn't understand relationship '{rel}' in field path"
            )
        target_field = _Resolver(hit[1]).field(rest)[0]
        return (hit[0], SCHEMA[self.obj][hit[0]][2], hit[1], target_field)  # type: ignore[index]


def _sort_key(order: list[tuple[str, bool]]):
    def key(rec: dict) -> tuple:
        return tuple(
            (rec.get(f) is not None, 0 if rec.get(f) is None else rec.get(f)) for f, _ in order
        )

    return key


def _sorted(rows: list[dict], order: list[tuple[str, bool]]) -> list[dict]:
    for name, desc in reversed(order):  # stable sorts, last key first
        rows.sort(key=_sort_key([(name, desc)]), reverse=desc)
    return rows


class _Plan:
    """A parsed, validated query bound to the sandbox's data."""

    def __init__(self, sb: SalesforceSandbox, q: soql.Query, deleted: bool):
        if q.obj not in SCHEMA:
            raise soql.SoqlError("INVALID_TYPE", f"sObject type '{q.obj}' is not supported.")
        self.sb, self.q, self.obj = sb, q, q.obj
        res = _Resolver(q.obj)
        self.pred = soql.compile_where(q.where, res.field, self._subselect)
        self.order = [(res.field(f)[0], d) for f, d in q.order]
        self.group = res.field(q.group_by)[0] if q.group_by else None
        self.selects: list[tuple[str, Any]] = []
        for s in q.fields:
            if s.kind == "field":
                self.selects.append(("field", res.path(s.name)))
            elif s.kind == "agg":
                self.selects.append(("agg", (s.func, res.field(s.name)[0], s.alias)))
            else:
                self.selects.append(("sub", self._child(s.sub)))
        if any(k == "agg" for k, _ in self.selects):
            plain = [v[0] for k, v in self.selects if k == "field"]
            if any(f != self.group for f in plain) or any(k == "sub" for k, _ in self.selects):
                raise soql.SoqlError("MALFORMED_QUERY", "field must be grouped or aggregated")
        rows = [
            r for r in sb.db[q.obj].values() if (deleted or not r["IsDeleted"]) and self.pred(r)
        ]
        self.rows = self._aggregate(rows) if self.group else _sorted(rows, self.order)
        if q.limit is not None:
            self.rows = self.rows[: q.limit]

    def _subselect(self, left: str, ltype: str, sub: soql.Query) -> set:
        """The values a semi-join's sub-select returns: its live rows, also under queryAll."""
        if sub.obj not in SCHEMA:
            raise soql.SoqlError("INVALID_TYPE", f"sObject type '{sub.obj}' is not supported.")
        res = _Resolver(sub.obj)
        name, ftype = res.field(sub.fields[0].name)
        if ftype not in ("id", "reference"):
            raise soql.SoqlError(
                "MALFORMED_QUERY",
                f"semi join sub selects can only query id fields, cannot use: '{name}'",
            )
        target = sub.obj if ftype == "id" else SCHEMA[sub.obj][name][1]  # type: ignore[index]
        wanted = self.obj if ltype == "id" else SCHEMA[self.obj][left][1]  # type: ignore[index]
        if target != wanted:
            raise soql.SoqlError(
                "MALFORMED_QUERY",
                f"{left} refers to {wanted}, but the semi join sub-select returns "
                f"{sub.obj}.{name}, which refers to {target}",
            )
        pred = soql.compile_where(sub.where, res.field)
        rows = self.sb.db[sub.obj].values()
        return {r.get(name) for r in rows if not r["IsDeleted"] and pred(r)} - {None}

    def _child(self, sub: soql.Query) -> tuple:
        child = CHILDREN.get(self.obj, {}).get(sub.obj.lower())
        if child is None:
            raise soql.SoqlError(
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.obj}' in FROM part of query call.",
            )
        res = _Resolver(child)
        fields = [res.field(s.name)[0] for s in sub.fields if s.kind == "field"]
        if len(fields) != len(sub.fields):
            raise soql.SoqlError("MALFORMED_QUERY", "only plain fields in a child subquery")
        pred, order = (
            soql.compile_where(sub.where, res.field),
            [(res.field(f)[0], d) for f, d in sub.order],
        )
        index: dict[str, list[dict]] = defaultdict(list)
        for r in self.sb.db[child].values():
            if not r["IsDeleted"] and r.get("AccountId") and pred(r):
                index[r["AccountId"]].append(r)
        return sub.obj, child, fields, {k: _sorted(v, order) for k, v in index.items()}

    def _aggregate(self, rows: list[dict]) -> list[dict]:
        groups: dict[Any, list[dict]] = defaultdict(list)
        for r in rows:
            groups[r.get(self.group)].append(r)
        out = []
        for value, members in groups.items():
            row, n = {"attributes": {"type": "AggregateResult"}}, 0
            for kind, spec in self.selects:
                if kind == "field":
                    row[spec[0]] = value
                    continue
                func, fname, alias = spec
                vals = [m[fname] for m in members if m.get(fname) is not None]
                result = (
                    len(vals)
                    if func == "COUNT"
                    else (max if func == "MAX" else min)(vals, default=None)
                )
                row[alias or f"expr{n}"] = result
                n += 1 if not alias else 0
            out.append(row)
        return _sorted(out, self.order)

    def render(self, rec: dict) -> dict:
        if self.group:
            return rec
        out: dict[str, Any] = {"attributes": self.sb.attributes(self.obj, rec["Id"])}
        for kind, spec in self.selects:
            if kind == "field" and len(spec) == 1:
                out[spec[0]] = rec.get(spec[0])
            elif kind == "field":
                ref_field, rel, target, tfield = spec
                parent = self.sb.db[target].get(rec.get(ref_field) or "")
                if parent is None:
                    out[rel] = None
                else:
                    node = out.get(rel) or {"attributes": self.sb.attributes(target, parent["Id"])}
                    node[tfield] = parent.get(tfield)
                    out[rel] = node
            else:
                rel, child, fields, index = spec
                kids = index.get(rec["Id"])
                out[rel] = (
                    None
                    if not kids
                    else {
                        "totalSize": len(kids),
                        "done": True,
                        "records": [
                            {
                                "attributes": self.sb.attributes(child, k["Id"]),
                                **{f: k.get(f) for f in fields},
                            }
                            for k in kids
                        ],
                    }
                )
        return out


def _batch_size(headers: dict[str, str]) -> int:
    opts = headers.get("sforce-query-options", "")
    for part in opts.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH, min(MAX_BATCH, int(value)))
    return MAX_BATCH


def _page(
    sb: SalesforceSandbox, locator: str, plan: _Plan, offset: int, size: int, kind: str
) -> Response:
    """Rows from `offset` while they fit `size`; like Salesforce, child rows of a parent-child
    subquery count toward the batch (a parent with its children is never split; a page holds
    at least one parent)."""
    records, end, used = [], offset, 0
    while end < len(plan.rows):
        rec = plan.render(plan.rows[end])
        weight = 1 + sum(
            len(v["records"]) for v in rec.values() if isinstance(v, dict) and "records" in v
        )
        if records and used + weight > size:
            break
        records.append(rec)
        used += weight
        end += 1
    body: dict[str, Any] = {"totalSize": len(plan.rows), "done": end >= len(plan.rows)}
    if not body["done"]:
        body["nextRecordsUrl"] = f"/services/data/v{sb.version}/{kind}/{locator}-{end}"
    body["records"] = records
    return Response(200, body)


def query(sb: SalesforceSandbox, text: str, *, deleted: bool, headers: dict[str, str]) -> Response:
    try:
        plan = _Plan(sb, soql.parse(text), deleted)
    except soql.SoqlError as exc:
        return _err(400, exc.code, str(exc))
    size = _batch_size(headers)
    locator = f"01gFK{next(sb.cursor_ids):013d}"
    resp = _page(sb, locator, plan, 0, size, "queryAll" if deleted else "query")
    if not resp.body["done"]:
        sb.cursors[locator] = (plan, size)
        while len(sb.cursors) > MAX_CURSORS:  # an 11th cursor releases the oldest
            sb.cursors.popitem(last=False)
    return resp


def query_more(sb: SalesforceSandbox, token: str, kind: str = "query") -> Response:
    locator, _, offset = token.rpartition("-")
    cursor = sb.cursors.get(locator)
    if cursor is None or not offset.isdigit():
        return _err(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    plan, size = cursor
    return _page(sb, locator, plan, int(offset), size, kind)


def _coerce(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype in ("double", "currency", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError
        return value
    if ftype == "boolean":
        if not isinstance(value, bool):
            raise ValueError
        return value
    if ftype == "datetime":
        return sf_ts(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    if not isinstance(value, str):
        raise ValueError
    return value


def update_many(sb: SalesforceSandbox, records: list[dict], *, all_or_none: bool) -> list[dict]:
    """sObject Collections update semantics: one SaveResult per record, in order."""
    results, changes = [], []
    for rec in records:
        rid, obj = rec.get("id"), (rec.get("attributes") or {}).get("type")
        errors, values = [], {}
        if obj not in SCHEMA:
            errors.append(("INVALID_TYPE", f"sObject type '{obj}' is not supported.", []))
        elif not isinstance(rid, str) or len(rid) not in (15, 18):
            errors.append(("MALFORMED_ID", f"malformed id {rid}", ["Id"]))
        elif getattr(sb, "row_locks", {}).get(rid, 0) > 0:  # tests: {id: times} -> a lock
            sb.row_locks[rid] -= 1
            errors.append(
                ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", [])
            )
        elif rid not in sb.db[obj] or sb.db[obj][rid]["IsDeleted"]:
            errors.append(
                (
                    "ENTITY_IS_DELETED" if rid in sb.db[obj] else "INVALID_CROSS_REFERENCE_KEY",
                    "entity is deleted" if rid in sb.db[obj] else "invalid cross reference id",
                    [],
                )
            )
        else:
            res = _Resolver(obj)
            for key, value in rec.items():
                if key in ("id", "attributes"):
                    continue
                try:
                    name, ftype = res.field(key)
                except soql.SoqlError:
                    errors.append(
                        ("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}", [key])
                    )
                    continue
                try:
                    values[name] = _coerce(value, ftype)
                except (ValueError, TypeError):
                    errors.append(
                        (
                            "INVALID_TYPE_ON_FIELD_IN_RECORD",
                            f"{name}: value not of required type: {value}",
                            [name],
                        )
                    )
                    continue
                if bad := refusal(sb.picklists, obj, name, values[name]):
                    errors.append(bad)
        results.append(
            {
                "id": rid if not errors else None,
                "success": not errors,
                "errors": [{"statusCode": c, "message": m, "fields": f} for c, m, f in errors],
            }
        )
        changes.append((obj, rid, values))
    if all_or_none and any(not r["success"] for r in results):
        for r in results:
            if r["success"]:
                r.update(
                    id=None,
                    success=False,
                    errors=[
                        {
                            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                            "message": "Record rolled back because not all records were "
                            "valid and the request was using AllOrNone header",
                            "fields": [],
                        }
                    ],
                )
        return results
    applied = sb.__dict__.setdefault("applied", Counter())  # tests: updates per record id
    for r, (obj, rid, values) in zip(results, changes, strict=True):
        if r["success"]:
            applied[rid] += 1
            sb.db[obj][rid].update(values)
            sb.db[obj][rid]["SystemModstamp"] = sb.db[obj][rid]["LastModifiedDate"] = sb.tick()
    return results


def composite(sb: SalesforceSandbox, req: Request, rest: list[str]) -> Response:
    body = req.json() if req.body else None
    if rest == ["sobjects"] and req.method == "PATCH":
        records = (body or {}).get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return _err(400, "JSON_PARSER_ERROR", "records: a non-empty list is required")
        if len(records) > MAX_COLLECTION:
            return _err(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        return Response(200, update_many(sb, records, all_or_none=bool(body.get("allOrNone"))))
    if rest == [] and req.method == "POST":
        subs = (body or {}).get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            return _err(400, "JSON_PARSER_ERROR", "compositeRequest: a non-empty list is required")
        queries = sum(1 for s in subs if "/query" in str(s.get("url", "")))
        if len(subs) > MAX_COMPOSITE or queries > 5:
            return _err(
                400, "LIMIT_EXCEEDED", "Limit Exceeded: at most 25 subrequests, 5 of them queries"
            )
        out = []
        for s in subs:
            parts = urlsplit(str(s.get("url", "")))
            sub = Request(
                str(s.get("method", "GET")).upper(),
                parts.path,
                parse_qs(parts.query),
                req.headers,
                json.dumps(s["body"]).encode() if "body" in s else b"",
            )
            resp = sb._route(sub)
            out.append(
                {
                    "body": resp.body or None,
                    "httpHeaders": {},
                    "httpStatusCode": resp.status,
                    "referenceId": s.get("referenceId"),
                }
            )
        return Response(200, {"compositeResponse": out})
    return _err(404, "NOT_FOUND", "The requested resource does not exist")
