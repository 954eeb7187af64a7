"""Property definitions in the HubSpot fake: one property read or changed
(`/crm/v3/properties/{objectType}/{propertyName}`), and the check of enumeration values that
every record write makes.

- GET -> the property; an unknown name -> 404 OBJECT_NOT_FOUND.
- PATCH (a PropertyUpdate) -> 200 with the property as changed: the fields given overwrite
  those it had, and `options` replaces the whole option list (each option needs `label` and
  `value`, unique values; `hidden` defaults to false). Options on a property that is not an
  enumeration, or a change of `name`, are a 400 VALIDATION_ERROR.
- A write setting an enumeration property to a value that is not one of its options is refused
  with HubSpot's validation message: "Property values were not valid: " and a JSON list of
  `{isValid: false, message: "<value> was not one of the allowed options: [...]", error:
  "INVALID_OPTION", name: <property>, localizedErrorMessage}`. A multiple-checkboxes property
  (`fieldType: checkbox`) takes ";"-separated values; an empty value clears any property.
Exact wording of the 404 and of the fake's own PATCH validation messages is approximate.
"""

from __future__ import annotations

import json

from connectors.sandbox.server import Request, Response

UPDATABLE = (
    "label",
    "type",
    "fieldType",
    "groupName",
    "description",
    "options",
    "displayOrder",
    "hidden",
    "formField",
    "calculationFormula",
)


def with_defaults(options: list[dict]) -> list[dict]:
    """Options as HubSpot stores and returns them (`hidden` and `displayOrder` always set)."""
    return [
        {"hidden": False, "displayOrder": i, **o, "description": o.get("description") or ""}
        for i, o in enumerate(options)
    ]


def invalid_options(known: dict[str, dict], props: dict) -> str:
    """HubSpot's validation message for the enumeration values in `props` that are not options
    of their property ("" when every value is allowed)."""
    results = []
    for name, raw in props.items():
        prop = known.get(name) or {}
        if prop.get("type") != "enumeration" or raw in (None, ""):
            continue
        allowed = [str(o.get("value")) for o in prop.get("options") or []]
        given = str(raw).split(";") if prop.get("fieldType") == "checkbox" else [str(raw)]
        for value in (v for v in given if v not in allowed):
            text = f"{value} was not one of the allowed options: [{', '.join(allowed)}]"
            results.append(
                {
                    "isValid": False,
                    "message": text,
                    "error": "INVALID_OPTION",
                    "name": name,
                    "localizedErrorMessage": text,
                }
            )
    return f"Property values were not valid: {json.dumps(results)}" if results else ""


def one_property(defs: dict[str, dict], kind: str, name: str, req: Request) -> Response:
    """GET or PATCH /crm/v3/properties/{kind}/{name}."""
    from connectors.sandbox.hubspot_api import error

    prop = defs.get(name)
    if prop is None:
        return error(
            404, f"Unable to find property {name} on object type {kind}", "OBJECT_NOT_FOUND"
        )
    if req.method == "GET":
        return Response(200, prop)
    if req.method != "PATCH":
        return error(405, f"Method {req.method} not allowed", "VALIDATION_ERROR")
    changes = req.json() or {}
    if why := bad_update(prop, changes):
        return error(400, why, "VALIDATION_ERROR")
    prop.update({k: v for k, v in changes.items() if k in UPDATABLE})
    if "options" in changes:
        prop["options"] = with_defaults(changes["options"])
    return Response(200, prop)


def bad_update(prop: dict, changes: dict) -> str:
    """Why HubSpot would refuse this PropertyUpdate ("" when it would not)."""
    if "name" in changes and changes["name"] != prop["name"]:
        return "A property's name cannot be changed"
    options = changes.get("options")
    if options is None:
        return ""
    if changes.get("type", prop.get("type")) != "enumeration":
        return f"Options can only be set on an enumeration property, not {prop.get('type')}"
    if not isinstance(options, list) or any(
        not isinstance(o, dict) or not o.get("label") or o.get("value") in (None, "")
        for o in options
    ):
        return "Every option needs a label and a value"
    values = [str(o["value"]) for o in options]
    if len(set(values)) < len(values):
        return f"Option values must be unique: {values}"
    return ""
