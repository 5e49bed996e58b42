"""An Adobe ``<rtEvent>`` or ``<batchEvent>`` element, read into the same EventIn the REST API takes."""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import ValidationError

from envoi.errors import ValidationFailed, input_problems
from envoi.events.schemas import EventIn
from envoi.soap.xml import child, ctx_to_json, local_name

MODES = {"rtEvent": "realtime", "batchEvent": "batch"}
# Adobe's attribute -> EventIn's field (REST name); the others are refused so a typo is never ignored.
ATTRIBUTES = {
    "type": "type",
    "email": "email",
    "mobilePhone": "mobilePhone",
    "origin": "origin",
    "wishedChannel": "wishedChannel",
    "externalId": "externalId",
    "language": "language",
    "country": "country",
    "emailFormat": "emailFormat",
    "scheduled": "scheduled",
    "expiration": "expiration",
    "registrationToken": "registrationToken",
    "correlationId": "correlationId",
}
IGNORED = {"id", "created", "lastModified", "status"}  # Adobe's own read-only fields, sent back by some clients


def event_from_xml(element: etree._Element, where: str) -> EventIn:
    """``where`` names the element in errors (``domEvent/rtEvent``, ``events[3]``)."""
    name = local_name(element)
    if name not in MODES:
        raise ValidationFailed(f"{where}: expected <rtEvent> or <batchEvent>, not <{name}>", field=where)
    data: dict[str, Any] = {"mode": MODES[name]}
    for key, value in element.attrib.items():
        attribute = etree.QName(key).localname
        if attribute in IGNORED:
            continue
        if attribute not in ATTRIBUTES:
            raise ValidationFailed(f"{where}: unknown attribute '{attribute}'", field=f"{where}/@{attribute}")
        data[ATTRIBUTES[attribute]] = value
    if not data.get("type"):
        raise ValidationFailed(f"{where}: the attribute 'type' is required", field=f"{where}/@type")
    if "emailFormat" in data:
        value = str(data["emailFormat"])  # digits as Adobe sends them; anything else is refused by EventIn
        data["emailFormat"] = int(value) if value.isascii() and value.isdigit() and len(value) < 10 else value
    app = child(element, "mobileApp")
    if app is not None and app.get("uuid"):
        data["mobileAppUuid"] = app.get("uuid")
    ctx = child(element, "ctx")
    if ctx is None:
        raise ValidationFailed(f"{where}: a <ctx> element is required", field=f"{where}/ctx")
    data["ctx"] = ctx_to_json(ctx)
    try:
        return EventIn.model_validate(data)
    except ValidationError as error:
        field, message = input_problems(error.errors())[0]
        raise ValidationFailed(f"{where}: {field}: {message}", field=f"{where}/@{field}") from None
