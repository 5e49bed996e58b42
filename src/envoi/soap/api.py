"""``POST /nl/jsp/soaprouter.jsp`` and the WSDL, on top of the same ingestion service as the REST API."""

from __future__ import annotations

import secrets
from datetime import timedelta

import structlog
from fastapi import APIRouter, Request, Response
from lxml import etree

from envoi.access.api import key_of
from envoi.access.groups import operator_principal
from envoi.access.models import Operator
from envoi.access.operators import INVALID_LOGIN, check_session, close_session, open_session
from envoi.access.permissions import Permission, Principal
from envoi.access.throttle import throttled_login
from envoi.db.outage import outages, store_unavailable
from envoi.errors import BatchRejected, EnvoiError, RetryLater, Unauthorized, ValidationFailed
from envoi.events.schemas import EventIn
from envoi.events.service import ingest_batch
from envoi.runtime import Runtime
from envoi.soap import envelope
from envoi.soap.events import event_from_xml
from envoi.soap.wsdl import SCHEMAS, wsdl
from envoi.soap.xml import child, children, local_name, parse_document

log = structlog.get_logger(__name__)
router = APIRouter(tags=["soap"])

ACTIONS = {
    "nms:rtEvent#PushEvent", "nms:rtEvent#PushEvents", "nms:batchEvent#PushEvent", "nms:batchEvent#PushEvents",
    "xtk:session#Logon", "xtk:session#Logoff",
}  # fmt: skip
_XML = "text/xml; charset=utf-8"


def _fault(code: str, message: str, detail: str | None = None) -> Response:
    return Response(envelope.fault(code, message, detail), status_code=500, media_type=_XML)


def _retry_later(error: RetryLater) -> Response:
    """A Server fault (the request was fine; it was not stored) with HTTP 503 and Retry-After, whatever REST
    answers (503 or 429): SOAP toolkits read a fault in a 5xx answer (Axis 1, zeep; JAX-WS and Spring-WS report
    an HTTP 503 error), where a 4xx is only an HTTP error, and 503 is what they know as "busy, try later"."""
    fault = envelope.fault("Server", error.message, f"{error.code}; retry after {error.retry_after} seconds")
    return Response(fault, status_code=503, media_type=_XML, headers={"Retry-After": str(error.retry_after)})


@router.post("/nl/jsp/soaprouter.jsp", include_in_schema=False)
async def soap_router(request: Request) -> Response:
    """Adobe Campaign's SOAP router: events in, plIds out, errors as SOAP 1.1 faults."""
    runtime: Runtime = request.app.state.runtime
    try:
        return await _dispatch(request, runtime)
    except Unauthorized as error:
        return _fault("Client", error.message)
    except RetryLater as error:
        return _retry_later(error)
    except EnvoiError as error:
        return _fault("Client", error.message, _detail(error))
    except Exception as error:
        unavailable = store_unavailable(error)
        if unavailable is not None:
            outages.refused("soap", unavailable)
            return _retry_later(unavailable)
        log.exception("soap.failed")
        return _fault("Server", "the request could not be processed; it was not stored")


def _detail(error: EnvoiError) -> str | None:
    items = error.details.get("items")
    if not items:
        return error.field
    return "; ".join(
        f"event {i['index']}: " + ", ".join(f"{e['field']}: {e['message']}" for e in i["errors"]) for i in items
    )


async def _dispatch(request: Request, runtime: Runtime) -> Response:
    action = request.headers.get("soapaction", "").strip().strip('"')
    if action not in ACTIONS:
        raise ValidationFailed(f"unknown SOAPAction '{action}'; expected one of {', '.join(sorted(ACTIONS))}")
    root = parse_document(await _body(request, runtime.settings.soap_max_body_bytes))
    operation = _operation(root)
    service, method = action.split("#")
    if local_name(operation) != method:
        raise ValidationFailed(f"SOAPAction says {method} but the body holds <{local_name(operation)}>")
    token_element = child(operation, "sessiontoken")
    token = (token_element.text or "") if token_element is not None else ""
    namespace = "urn:" + service
    if method == "Logon":
        return await _logon(request, runtime, operation, namespace)
    if method == "Logoff":
        async with runtime.transaction() as session:
            await close_session(session, token.strip())
        return Response(envelope.response(namespace, "Logoff", []), media_type=_XML)
    caller = await _authenticate(request, runtime, token.strip())
    await runtime.admission.check_queue()
    if method == "PushEvent":
        event = _single_event(operation)
        await runtime.admission.take(caller, 1)
        event_id = await runtime.ingest.submit(event, caller.key_id)
        return Response(
            envelope.response(namespace, "PushEvent", [("plId", "xsd:long", str(event_id))]), media_type=_XML
        )
    events = _event_collection(operation)
    await runtime.admission.take(caller, len(events))
    region = runtime.settings.default_region
    async with runtime.transaction() as session:
        ids = await ingest_batch(session, list(events), api_key_id=caller.key_id, region=region)
    runtime.wakeup.ring()
    values = [("plId", "xsd:long", str(event_id)) for event_id in ids]
    return Response(envelope.response(namespace, "PushEvents", values), media_type=_XML)


async def _body(request: Request, limit: int) -> bytes:
    """The body, read as it comes and refused as soon as it passes ``limit`` (declared or not)."""
    too_large = ValidationFailed(f"the request is larger than {limit} bytes", field="body")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _operation(root: etree._Element) -> etree._Element:
    if local_name(root) != "Envelope" or etree.QName(root).namespace not in (envelope.SOAP_ENV, envelope.SOAP12_ENV):
        raise ValidationFailed("expected a SOAP Envelope", field="body")
    body = child(root, "Body")
    operations = children(body) if body is not None else []
    if not operations:
        raise ValidationFailed("the SOAP Body is empty", field="body")
    return operations[0]


async def _authenticate(request: Request, runtime: Runtime, token: str) -> Principal:
    """The three ways Adobe's callers identify themselves: login/password in the token, a Logon session token,
    or an empty token and an API key in the Authorization header. The caller needs the push_events permission."""
    if not token:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("no session token and no 'Authorization: Bearer' API key")
        principal = await key_of(request, key)
    else:
        login, slash, password = token.partition("/")
        found = await _throttled_login(request, runtime, login, password) if slash else None
        async with runtime.transaction() as session:
            operator = found or await session.get(Operator, await check_session(session, token, "soap"))
            if operator is None or not operator.active:
                raise Unauthorized("this operator is no longer active")
            principal = await operator_principal(session, operator)
    principal.require(Permission.PUSH_EVENTS)
    return principal


async def _throttled_login(request: Request, runtime: Runtime, login: str, password: str) -> Operator:
    """The console's login throttle holds for SOAP too: guessing must not just move to this door."""
    settings = runtime.settings
    return await throttled_login(
        runtime.sessionmaker, login, password, (request.client.host if request.client else "unknown")[:64],
        per_login=settings.console_login_failures_per_login, per_address=settings.console_login_failures_per_address,
        window=timedelta(minutes=settings.console_login_window_minutes),
    )  # fmt: skip


async def _logon(request: Request, runtime: Runtime, operation: etree._Element, namespace: str) -> Response:
    login = child(operation, "strLogin")
    password = child(operation, "strPassword")
    if login is None or password is None:
        raise Unauthorized(INVALID_LOGIN)
    lifetime = timedelta(hours=runtime.settings.soap_session_hours)
    operator = await _throttled_login(request, runtime, login.text or "", password.text or "")
    async with runtime.transaction() as session:
        token = await open_session(session, operator, lifetime, "soap")
    values = [
        ("pstrSessionToken", "xsd:string", token),
        ("pstrSecurityToken", "xsd:string", secrets.token_urlsafe(24)),  # accepted from callers, never required
    ]
    return Response(envelope.response(namespace, "Logon", values), media_type=_XML)


def _single_event(operation: etree._Element) -> EventIn:
    holder = child(operation, "domEvent")
    events = children(holder) if holder is not None else []
    if len(events) != 1:
        raise ValidationFailed("PushEvent needs exactly one event in <domEvent>", field="domEvent")
    return event_from_xml(events[0], "domEvent")


def _event_collection(operation: etree._Element) -> list[EventIn]:
    holder = child(operation, "domEventCollection")
    wrappers = children(holder) if holder is not None else []
    if len(wrappers) != 1 or not children(wrappers[0]):
        raise ValidationFailed("PushEvents needs one element in <domEventCollection> holding the events")
    events, problems = [], []
    for index, element in enumerate(children(wrappers[0])):
        try:
            events.append(event_from_xml(element, f"events[{index}]"))
        except ValidationFailed as error:
            problems.append({"index": index, "errors": [{"field": error.field or "", "message": error.message}]})
    if problems:
        raise BatchRejected(f"{len(problems)} events are invalid; none was stored", details={"items": problems})
    return events


@router.api_route("/nl/jsp/schemawsdl.jsp", methods=["GET", "POST"], include_in_schema=False)
async def schema_wsdl(request: Request, schema: str = "nms:rtEvent") -> Response:
    if schema not in SCHEMAS:
        return Response(f"unknown schema '{schema}'; one of {', '.join(SCHEMAS)}", status_code=404)
    location = str(request.url_for("soap_router"))
    return Response(wsdl(schema, location), media_type=_XML)
