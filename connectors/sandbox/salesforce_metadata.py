"""A local fake of the Salesforce Metadata API (SOAP) for CustomField, as simple-salesforce's
`sf.mdapi` (zeep, the bundled metadata.wsdl) calls it: `POST /services/Soap/m/{version}/`.

- createMetadata(metadata: CustomField[] <= 10) -> one SaveResult per component, in order,
  `{errors: [{fields, message, statusCode}], fullName, success}`. Components are saved one by
  one (no AllOrNoneHeader, the default since API 34.0). A created field joins the sandbox's
  schema at once: describe lists it, queries and writes accept it.
- updateMetadata(metadata: CustomField[] <= 10) -> SaveResults as createMetadata. The whole
  definition is sent: a picklist's valueSet replaces the field's value set (values left out are
  gone), and its writes are checked against the new one at once (salesforce_picklists). A
  field that does not exist is INVALID_CROSS_REFERENCE_KEY; a change of type is refused.
- readMetadata(type="CustomField", fullNames[] <= 10) -> `ReadResult {records}`; a name that
  does not exist comes back as an empty record (`<records xsi:type="CustomField"/>`), as
  Salesforce answers.
- Faults are HTTP 500 with `<soapenv:Fault><faultcode>sf:CODE</faultcode><faultstring>CODE:
  message</faultstring>`: INVALID_SESSION_ID (the SessionHeader's sessionId), INSUFFICIENT_ACCESS
  for a sandbox started with metadata_access=False, REQUEST_LIMIT_EXCEEDED past the daily
  allocation; an unknown operation, or a request without a SOAPAction header, is a
  `soapenv:Client` fault.

Field-level security: Salesforce grants a field created through the Metadata API to no
profile, so the API user does not see it until an admin does. The fake shows new fields at once
(an org whose admin already granted them); `hide_field` makes the other case: a field that
exists in the org's metadata but is missing from the API user's describe.
Exact wording of the fake's own validation messages (and the over-10 fault) is approximate.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from connectors.sandbox.salesforce_picklists import ValueSet
from connectors.sandbox.server import Request, Response

if TYPE_CHECKING:
    from connectors.sandbox.salesforce_api import SalesforceSandbox

METADATA_PATH = "/services/Soap/m/"
MD = "http://soap.sforce.com/2006/04/metadata"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_COMPONENTS = 10
# CustomField type -> the field type describe reports (and the fake's writes check)
DESCRIBE_TYPES = {
    "Number": "double",
    "Currency": "currency",
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Picklist": "picklist",
    "DateTime": "datetime",
    "Date": "date",
    "Checkbox": "boolean",
    "Url": "url",
    "Email": "email",
}
METADATA_TYPES = {v: k for k, v in reversed(DESCRIBE_TYPES.items())}  # textarea -> TextArea
NO_ACCESS = (
    "use of the Metadata API requires a user with the ModifyAllData or ModifyMetadata permissions"
)
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")  # no double underscore, no _ end


def metadata_call(sb: SalesforceSandbox, req: Request) -> Response:
    """The sandbox's router for /services/Soap/m/: one SOAP operation per request."""
    try:
        env = ET.fromstring(req.body)
    except ET.ParseError as exc:
        return fault("soapenv:Client", f"Unable to parse the request: {exc}")
    if "soapaction" not in req.headers:
        return fault("soapenv:Client", "no SOAPAction header!")
    session = env.findtext(f"{{{SOAP}}}Header/{{{MD}}}SessionHeader/{{{MD}}}sessionId")
    if session != sb.token:
        return fault(
            "sf:INVALID_SESSION_ID",
            "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session",
        )
    if len(sb.server.requests) > sb.api_limit:
        return fault(
            "sf:REQUEST_LIMIT_EXCEEDED", "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
        )
    if not sb.metadata_access:
        return fault("sf:INSUFFICIENT_ACCESS", f"INSUFFICIENT_ACCESS: {NO_ACCESS}")
    body = env.find(f"{{{SOAP}}}Body")
    call = body[0] if body is not None and len(body) else None
    op = _local(call.tag) if call is not None else ""
    with sb.lock:
        if op in ("createMetadata", "updateMetadata"):
            return save_metadata(sb, call, op)
        if op == "readMetadata":
            return read_metadata(sb, call)
    return fault(
        "soapenv:Client",
        f"No operation available for request {{{MD}}}{op}, please check the WSDL for the service.",
    )


# --- createMetadata / updateMetadata ----------------------------------------------------------


def save_metadata(sb: SalesforceSandbox, call: ET.Element, op: str) -> Response:
    items = call.findall(f"{{{MD}}}metadata")
    if len(items) > MAX_COMPONENTS:
        return fault(
            "sf:LIMIT_EXCEEDED",
            f"LIMIT_EXCEEDED: at most {MAX_COMPONENTS} components per {op} call",
        )
    check, save = (
        (check_field, add_field) if op == "createMetadata" else (check_update, update_field)
    )
    results = []
    for item in items:
        meta = parse_field(item)
        errors = check(sb, meta, item.get(f"{{{XSI}}}type", ""))
        if not errors:
            save(sb, meta)
        results.append(save_result(meta.get("fullName", ""), errors))
    return envelope(f"<{op}Response>{''.join(results)}</{op}Response>")


def parse_field(item: ET.Element) -> dict:
    """A CustomField element -> {fullName, label, type, precision, ..., values: [(name, label)]}."""
    meta: dict = {
        _local(child.tag): (child.text or "").strip() for child in item if len(child) == 0
    }
    values = item.findall(f"{{{MD}}}valueSet/{{{MD}}}valueSetDefinition/{{{MD}}}value")
    if item.find(f"{{{MD}}}valueSet") is not None:
        meta["values"] = [
            (v.findtext(f"{{{MD}}}fullName", ""), v.findtext(f"{{{MD}}}label", "")) for v in values
        ]
        meta["restricted"] = item.findtext(f"{{{MD}}}valueSet/{{{MD}}}restricted", "false")
    return meta


def check_field(sb: SalesforceSandbox, meta: dict, xsi_type: str) -> list[tuple[str, str, str]]:
    """(statusCode, message, field) for each reason Salesforce would refuse this field."""
    if _local(xsi_type.split(":")[-1]) != "CustomField":
        return [("INVALID_TYPE", f"The sandbox supports CustomField only, not {xsi_type}", "")]
    obj, _, name = meta.get("fullName", "").partition(".")
    if obj not in sb.schema:
        return [("INVALID_CROSS_REFERENCE_KEY", f"no CustomObject named {obj} found", "fullName")]
    if not _NAME.match(name) or len(name) > 43:
        return [("FIELD_INTEGRITY_EXCEPTION", f"invalid custom field name: {name}", "fullName")]
    if lookup(sb, f"{obj}.{name}") is not None:
        return [
            (
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {name.removesuffix('__c')} on {obj}.",
                "fullName",
            )
        ]
    if not meta.get("label"):
        return [("REQUIRED_FIELD_MISSING", "Required field is missing: label", "label")]
    return check_type(meta)


def check_type(meta: dict) -> list[tuple[str, str, str]]:
    kind = meta.get("type", "")
    if kind not in DESCRIBE_TYPES:
        return [("FIELD_INTEGRITY_EXCEPTION", f"invalid field type: {kind or 'none'}", "type")]
    need = {
        "Number": ("precision", "scale"),
        "Currency": ("precision", "scale"),
        "Text": ("length",),
        "LongTextArea": ("length", "visibleLines"),
    }.get(kind, ())
    for attr in need:
        if not meta.get(attr, "").isdigit():
            return [
                (
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Must specify '{attr}' for a CustomField of type {kind}",
                    attr,
                )
            ]
    if kind == "TextArea" and meta.get("length"):
        return [
            (
                "FIELD_INTEGRITY_EXCEPTION",
                "Can not specify 'length' for a CustomField of type TextArea",
                "length",
            )
        ]
    if "precision" in need and not (
        1 <= int(meta["precision"]) <= 18 and int(meta["scale"]) <= int(meta["precision"])
    ):
        return [("FIELD_INTEGRITY_EXCEPTION", "precision must be 1-18, scale <= precision", "")]
    if kind == "Text" and not 1 <= int(meta["length"]) <= 255:
        return [("FIELD_INTEGRITY_EXCEPTION", "Text length must be 1-255", "length")]
    if kind == "Picklist" and not meta.get("values"):
        return [("FIELD_INTEGRITY_EXCEPTION", "Picklist must have at least one value", "valueSet")]
    return []


def add_field(sb: SalesforceSandbox, meta: dict) -> None:
    obj, _, name = meta["fullName"].partition(".")
    sb.schema[obj][name] = DESCRIBE_TYPES[meta["type"]]
    keep_definition(sb, meta)


def check_update(sb: SalesforceSandbox, meta: dict, xsi_type: str) -> list[tuple[str, str, str]]:
    """Why Salesforce would refuse this updateMetadata component: the whole definition is
    sent (a picklist's value set replaces the one it had)."""
    if _local(xsi_type.split(":")[-1]) != "CustomField":
        return [("INVALID_TYPE", f"The sandbox supports CustomField only, not {xsi_type}", "")]
    known = lookup(sb, meta.get("fullName", ""))
    if known is None:
        name = meta.get("fullName", "")
        return [("INVALID_CROSS_REFERENCE_KEY", f"no CustomField named {name} found", "fullName")]
    if meta.get("type") != known["type"]:  # Salesforce converts some types; the fake none
        return [("FIELD_INTEGRITY_EXCEPTION", "the sandbox cannot change a field's type", "type")]
    if not meta.get("label"):
        return [("REQUIRED_FIELD_MISSING", "Required field is missing: label", "label")]
    return check_type(meta)


def update_field(sb: SalesforceSandbox, meta: dict) -> None:
    stored = lookup(sb, meta["fullName"]) or meta  # its name as the org spells it
    keep_definition(sb, {**meta, "fullName": stored["fullName"]})


def keep_definition(sb: SalesforceSandbox, meta: dict) -> None:
    """Store the definition; a picklist's value set governs the org's writes from now on."""
    sb.field_metadata[meta["fullName"]] = meta
    if "values" in meta:
        obj, _, name = meta["fullName"].partition(".")
        values = [(n, label or n) for n, label in meta["values"]]
        sb.picklists[(obj, name)] = ValueSet(values, meta.get("restricted") == "true")


def save_result(full_name: str, errors: list[tuple[str, str, str]]) -> str:
    errs = "".join(
        "<errors>"
        + (f"<fields>{escape(f)}</fields>" if f else "")
        + f"<message>{escape(m)}</message><statusCode>{code}</statusCode></errors>"
        for code, m, f in errors
    )
    ok = "false" if errors else "true"
    return f"<result>{errs}<fullName>{escape(full_name)}</fullName><success>{ok}</success></result>"


# --- readMetadata --------------------------------------------------------------------------


def read_metadata(sb: SalesforceSandbox, call: ET.Element) -> Response:
    kind = call.findtext(f"{{{MD}}}type", "")
    names = [n.text or "" for n in call.findall(f"{{{MD}}}fullNames")]
    if kind != "CustomField":
        return fault("sf:INVALID_TYPE", f"INVALID_TYPE: the sandbox reads CustomField only: {kind}")
    if len(names) > MAX_COMPONENTS:
        return fault(
            "sf:LIMIT_EXCEEDED", f"LIMIT_EXCEEDED: at most {MAX_COMPONENTS} names per readMetadata"
        )
    records = "".join(field_record(lookup(sb, n)) for n in names)
    return envelope(f"<readMetadataResponse><result>{records}</result></readMetadataResponse>")


def lookup(sb: SalesforceSandbox, full_name: str) -> dict | None:
    """The field's definition: as created here, or made up from the schema for a field the org
    had already (a custom field only: standard fields are not CustomField components)."""
    for known, meta in sb.field_metadata.items():
        if known.lower() == full_name.lower():
            return meta
    obj, _, name = full_name.partition(".")
    for field, ftype in sb.schema.get(obj, {}).items():
        if field.lower() == name.lower() and field.endswith("__c") and isinstance(ftype, str):
            label = field.removesuffix("__c").replace("_", " ")
            meta = {"fullName": f"{obj}.{field}", "label": label, "type": METADATA_TYPES[ftype]}
            if (value_set := sb.picklists.get((obj, field))) is not None:
                restricted = "true" if value_set.restricted else "false"
                meta.update(values=list(value_set.values), restricted=restricted)
            return meta
    return None


def field_record(meta: dict | None) -> str:
    if meta is None:
        return '<records xsi:type="CustomField"/>'
    simple = "".join(
        f"<{k}>{escape(str(v))}</{k}>"
        for k, v in meta.items()
        if k not in ("values", "restricted", "fullName") and v != ""
    )
    values = "".join(
        f"<value><fullName>{escape(n)}</fullName><default>false</default>"
        f"<label>{escape(label)}</label></value>"
        for n, label in meta.get("values", [])
    )
    value_set = (
        f"<valueSet><restricted>{meta.get('restricted', 'false')}</restricted>"
        f"<valueSetDefinition><sorted>false</sorted>{values}</valueSetDefinition></valueSet>"
        if "values" in meta
        else ""
    )
    full = f"<fullName>{escape(meta['fullName'])}</fullName>"
    return f'<records xsi:type="CustomField">{full}{simple}{value_set}</records>'


# --- helpers for tests ---------------------------------------------------------------------


def hide_field(sb: SalesforceSandbox, obj: str, name: str) -> None:
    """The field stays in the org but the API user loses sight of it (no field-level security):
    describe leaves it out and writes to it fail, while readMetadata still finds it."""
    with sb.lock:
        meta = lookup(sb, f"{obj}.{name}")
        if meta is None:
            raise KeyError(f"{obj}.{name}")
        sb.field_metadata[meta["fullName"]] = meta
        del sb.schema[obj][name]


def metadata_calls(sb: SalesforceSandbox, operation: str) -> int:
    """How many requests to the Metadata API asked for `operation` (e.g. createMetadata)."""
    tag = f":{operation}".encode()
    return sum(1 for r in sb.server.requests if r.path.startswith(METADATA_PATH) and tag in r.body)


# --- envelopes -----------------------------------------------------------------------------


def envelope(body: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns="{MD}" xmlns:xsi="{XSI}">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
    return Response(200, xml, {"Content-Type": "text/xml;charset=UTF-8"})


def fault(code: str, message: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:sf="{MD}">'
        f"<soapenv:Body><soapenv:Fault><faultcode>{code}</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soapenv:Fault></soapenv:Body>"
        "</soapenv:Envelope>"
    )
    return Response(500, xml, {"Content-Type": "text/xml;charset=UTF-8"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
