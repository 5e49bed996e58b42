"""Adobe Campaign's SOAP calls, sent as their callers write them, end in stored and delivered events."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select, update

from envoi.access.groups import add_member
from envoi.access.models import OperatorSession
from envoi.access.operators import create_operator
from envoi.db.base import utcnow
from envoi.events.models import Event
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import event, published_template

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PASSWORD = "correct horse battery"


def envelope(body: str) -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{ENV}" xmlns:urn="urn:nms:rtEvent">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )


def push_event(token: str, event_xml: str, namespace: str = "urn:nms:rtEvent") -> str:
    return envelope(
        f'<urn:PushEvent xmlns:urn="{namespace}"><urn:sessiontoken>{token}</urn:sessiontoken>'
        f"<urn:domEvent>{event_xml}</urn:domEvent></urn:PushEvent>"
    )


ORDER = (
    '<rtEvent type="order_confirmation" email="ada@example.com" externalId="c-1" wishedChannel="0" origin="shop">'
    '<ctx><orderId>A-1</orderId><customer lastName="Doe"><city>Lyon</city></customer></ctx></rtEvent>'
)


UNQUALIFIED_ORDER = ORDER.replace("<rtEvent ", '<rtEvent xmlns="" ')


async def soap(api: httpx.AsyncClient, action: str, body: str, **headers: str) -> tuple[int, etree._Element]:
    response = await api.post(
        "/nl/jsp/soaprouter.jsp",
        content=body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action, "Authorization": "", **headers},
    )
    return response.status_code, etree.fromstring(response.content)


def text_of(root: etree._Element, name: str) -> list[str]:
    return [e.text or "" for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == name]


def fault(root: etree._Element) -> tuple[str, str]:
    return text_of(root, "faultcode")[0], text_of(root, "faultstring")[0]


@pytest.fixture
async def operator(runtime: Runtime) -> str:
    async with runtime.transaction() as session:
        created = await create_operator(session, email="ops@example.com", name="Ops", password=PASSWORD)
        await add_member(session, "administrators", created.id)
    return "ops@example.com"


async def stored_count(runtime: Runtime) -> int:
    async with runtime.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Event)) or 0)


async def test_push_event_with_login_password_token_is_stored_with_ctx_mapped(
    api: httpx.AsyncClient, runtime: Runtime, operator: str
) -> None:
    await published_template(api)
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/{PASSWORD}", ORDER))
    assert status == 200
    (pl_id,) = text_of(root, "plId")
    plid_element = next(e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "plId")
    assert plid_element.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "xsd:long"
    stored = await event(api, int(pl_id))
    assert stored["ctx"] == {"orderId": "A-1", "customer": {"@lastName": "Doe", "city": "Lyon"}}
    assert (stored["email"], stored["externalId"], stored["mode"], stored["origin"]) == (
        "ada@example.com", "c-1", "realtime", "shop",
    )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        # the default-namespace style, with xmlns="" on the event
        envelope(
            '<PushEvent xmlns="urn:nms:rtEvent"><sessiontoken>TOKEN</sessiontoken>'
            f"<domEvent>{UNQUALIFIED_ORDER}</domEvent></PushEvent>"
        ),
        # unqualified children, as Adobe's own WSDL describes them
        envelope(f"<urn:PushEvent><sessiontoken>TOKEN</sessiontoken><domEvent>{ORDER}</domEvent></urn:PushEvent>"),
    ],
)
async def test_namespace_styles_are_all_accepted(
    api: httpx.AsyncClient, runtime: Runtime, operator: str, body: str
) -> None:
    await published_template(api)
    status, root = await soap(api, "nms:rtEvent#PushEvent", body.replace("TOKEN", f"{operator}/{PASSWORD}"))
    assert status == 200, etree.tostring(root)
    assert int(text_of(root, "plId")[0]) > 0


async def test_bearer_api_key_with_empty_token(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    key = api.headers["Authorization"]
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event("", ORDER), Authorization=key)
    assert status == 200 and int(text_of(root, "plId")[0]) > 0
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event("", ORDER))
    assert status == 500 and fault(root)[0] == "SOAP-ENV:Client"


async def test_logon_session_token_works_until_logoff_or_expiry(
    api: httpx.AsyncClient, runtime: Runtime, operator: str
) -> None:
    await published_template(api)
    logon = envelope(
        '<urn:Logon xmlns:urn="urn:xtk:session"><urn:sessiontoken/>'
        f"<urn:strLogin>{operator}</urn:strLogin><urn:strPassword>{PASSWORD}</urn:strPassword>"
        "<urn:elemParameters/></urn:Logon>"
    )
    status, root = await soap(api, "xtk:session#Logon", logon)
    assert status == 200
    (token,) = text_of(root, "pstrSessionToken")
    assert text_of(root, "pstrSecurityToken")[0]
    assert (await soap(api, "nms:rtEvent#PushEvent", push_event(token, ORDER)))[0] == 200
    # A SOAP token opens SOAP only: as the console's session cookie it is nobody.
    as_cookie = await api.get("/api/v1/me", headers={"Authorization": "", "Cookie": f"envoi_session={token}"})
    assert as_cookie.status_code == 401

    logoff = envelope(
        f'<urn:Logoff xmlns:urn="urn:xtk:session"><urn:sessiontoken>{token}</urn:sessiontoken></urn:Logoff>'
    )
    assert (await soap(api, "xtk:session#Logoff", logoff))[0] == 200
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(token, ORDER))
    assert status == 500 and "logged off" in fault(root)[1]

    status, root = await soap(api, "xtk:session#Logon", logon)
    (second,) = text_of(root, "pstrSessionToken")
    async with runtime.transaction() as session:
        await session.execute(update(OperatorSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(second, ORDER))
    assert status == 500 and "expired" in fault(root)[1]


async def test_wrong_password_is_a_client_fault(api: httpx.AsyncClient, runtime: Runtime, operator: str) -> None:
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/wrong", ORDER))
    assert status == 500
    assert fault(root) == ("SOAP-ENV:Client", "Invalid login or password")
    assert await stored_count(runtime) == 0


@pytest.mark.parametrize(
    ("event_xml", "words"),
    [
        ('<rtEvent type="ghost" email="a@example.com"><ctx/></rtEvent>', "ghost"),
        ('<rtEvent type="order_confirmation" email="nope"><ctx/></rtEvent>', "email"),
        ('<rtEvent email="a@example.com"><ctx/></rtEvent>', "type"),
        ('<rtEvent type="order_confirmation" email="a@example.com"/>', "ctx"),
    ],
)
async def test_bad_events_are_client_faults_and_store_nothing(
    api: httpx.AsyncClient, runtime: Runtime, operator: str, event_xml: str, words: str
) -> None:
    await published_template(api)
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/{PASSWORD}", event_xml))
    code, message = fault(root)
    assert status == 500 and code == "SOAP-ENV:Client"
    assert words in message
    assert await stored_count(runtime) == 0


async def test_malformed_xml_names_line_and_column(api: httpx.AsyncClient) -> None:
    status, root = await soap(api, "nms:rtEvent#PushEvent", "<Envelope>\n<Body></Envelope>")
    code, message = fault(root)
    assert status == 500 and code == "SOAP-ENV:Client"
    assert "line 2, column" in message


@pytest.mark.parametrize(
    "payload",
    [
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<soapenv:Envelope xmlns:soapenv="{ENV}"><soapenv:Body>&xxe;</soapenv:Body></soapenv:Envelope>',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
        + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
        + "]><x>&lol9;</x>",
    ],
)
async def test_xxe_and_billion_laughs_are_refused(api: httpx.AsyncClient, payload: str) -> None:
    status, root = await soap(api, "nms:rtEvent#PushEvent", payload)
    code, message = fault(root)
    assert status == 500 and code == "SOAP-ENV:Client"
    assert "DTD" in message
    assert "root:" not in etree.tostring(root).decode()


async def test_push_events_batch_goes_to_the_batch_queue_all_or_nothing(
    api: httpx.AsyncClient, runtime: Runtime, operator: str
) -> None:
    await published_template(api)

    def collection(events: str) -> str:
        return envelope(
            '<urn:PushEvents xmlns:urn="urn:nms:batchEvent">'
            f"<urn:sessiontoken>{operator}/{PASSWORD}</urn:sessiontoken>"
            f"<urn:domEventCollection><eventCollection>{events}</eventCollection></urn:domEventCollection>"
            "</urn:PushEvents>"
        )

    one = '<batchEvent type="order_confirmation" email="u{0}@example.com"><ctx><n>{0}</n></ctx></batchEvent>'
    status, root = await soap(api, "nms:batchEvent#PushEvents", collection("".join(one.format(i) for i in range(3))))
    assert status == 200
    ids = [int(i) for i in text_of(root, "plId")]
    assert len(ids) == 3 and ids == sorted(ids)
    assert (await event(api, ids[2]))["ctx"] == {"n": "2"}
    assert (await event(api, ids[0]))["mode"] == "batch"

    bad = one.format(7) + '<batchEvent type="order_confirmation" email="broken"><ctx/></batchEvent>'
    status, root = await soap(api, "nms:batchEvent#PushEvents", collection(bad))
    assert status == 500 and "event 1" in text_of(root, "detail")[0]
    assert await stored_count(runtime) == 3


async def test_soap_event_is_delivered_with_attribute_personalization(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: object
) -> None:
    await published_template(smtp_api, subject='Order {{ ctx.orderId }} for {{ ctx.customer["@lastName"] }}')
    key = smtp_api.headers["Authorization"]
    status, _root = await soap(smtp_api, "nms:rtEvent#PushEvent", push_event("", ORDER), Authorization=key)
    assert status == 200
    await drain(smtp_runtime)
    (received,) = await smtp_sink.wait_for(1)  # type: ignore[attr-defined]
    assert received.message["Subject"] == "Order A-1 for Doe"


@pytest.mark.parametrize("schema", ["nms:rtEvent", "nms:batchEvent", "xtk:session"])
async def test_wsdl_is_served_and_readable_by_zeep(api: httpx.AsyncClient, schema: str, tmp_path: object) -> None:
    import zeep

    response = await api.get("/nl/jsp/schemawsdl.jsp", params={"schema": schema})
    assert response.status_code == 200
    path = tmp_path / "service.wsdl"  # type: ignore[operator]
    path.write_bytes(response.content)
    client = zeep.Client(str(path))
    operations = set(client.service._binding._operations)
    expected = {"Logon", "Logoff"} if schema == "xtk:session" else {"PushEvent", "PushEvents"}
    assert operations == expected
    assert (await api.get("/nl/jsp/schemawsdl.jsp", params={"schema": "nope"})).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_oversized_request_is_refused_before_parsing(settings: Settings) -> None:
    runtime = Runtime.create(settings.model_copy(update={"soap_max_body_bytes": 2048}))
    try:
        async with await make_client(runtime) as client:
            padding = "<pad>" + "x" * 4096 + "</pad>"
            status, root = await soap(client, "nms:rtEvent#PushEvent", push_event("a/b", ORDER + padding))
        assert status == 500 and "larger than 2048 bytes" in fault(root)[1]
    finally:
        await runtime.aclose()


async def test_soap_12_content_type_is_accepted(api: httpx.AsyncClient, runtime: Runtime, operator: str) -> None:
    await published_template(api)
    status, root = await soap(
        api,
        "nms:rtEvent#PushEvent",
        push_event(f"{operator}/{PASSWORD}", ORDER),
        **{"Content-Type": 'application/soap+xml; charset=utf-8; action="nms:rtEvent#PushEvent"'},
    )
    assert status == 200 and int(text_of(root, "plId")[0]) > 0


async def test_invalid_phone_is_a_client_fault(api: httpx.AsyncClient, runtime: Runtime, operator: str) -> None:
    await published_template(api)
    bad = '<rtEvent type="order_confirmation" email="a@example.com" mobilePhone="12ab"><ctx/></rtEvent>'
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/{PASSWORD}", bad))
    code, message = fault(root)
    assert status == 500 and code == "SOAP-ENV:Client" and "phone" in message
    assert await stored_count(runtime) == 0


async def test_a_push_event_takes_its_platform_from_the_wished_channel(
    api: httpx.AsyncClient, runtime: Runtime, operator: str
) -> None:
    await published_template(api)
    token = "a3" * 32
    ios = f'<rtEvent type="order_confirmation" wishedChannel="41" registrationToken="{token}"><ctx/></rtEvent>'
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/{PASSWORD}", ios))
    assert status == 200
    stored = await event(api, int(text_of(root, "plId")[0]))
    assert (stored["channel"], stored["platform"], stored["registrationToken"]) == ("push", "ios", token)
    android = '<rtEvent type="order_confirmation" wishedChannel="42"><ctx/></rtEvent>'
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/{PASSWORD}", android))
    code, message = fault(root)
    assert status == 500 and code == "SOAP-ENV:Client" and "registration token" in message


async def test_an_operator_without_the_push_events_permission_gets_a_fault(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.transaction() as session:
        viewer = await create_operator(session, email="viewer@example.com", name="Viewer", password=PASSWORD)
        await add_member(session, "viewers", viewer.id)
    status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"viewer@example.com/{PASSWORD}", ORDER))
    code, message = fault(root)
    assert (status, code) == (500, "SOAP-ENV:Client") and "push_events" in message
    assert await stored_count(runtime) == 0


async def test_soap_logins_are_throttled_like_the_consoles(
    api: httpx.AsyncClient, runtime: Runtime, operator: str
) -> None:
    for _ in range(runtime.settings.console_login_failures_per_login):
        _status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{operator}/wrong", ORDER))
        assert fault(root) == ("SOAP-ENV:Client", "Invalid login or password")
    # Now even the right password waits, and so does another spelling of the same login.
    for login in (operator, operator.upper()):
        _status, root = await soap(api, "nms:rtEvent#PushEvent", push_event(f"{login}/{PASSWORD}", ORDER))
        assert "Too many failed logins" in fault(root)[1]
    assert await stored_count(runtime) == 0
