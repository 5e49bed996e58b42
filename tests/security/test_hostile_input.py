"""Hostile requests: XML that expands or reaches out, bodies of 100 MB, JSON nested 10,000 deep, header
injection through CR/LF in what becomes a header, and HTML in ctx. Each is refused early with the error a
caller can act on, or made harmless, and never a 5xx.

Liquid templates that do too much work: test_template_limits.py. Private addresses and paths from data:
test_private_addresses.py and test_paths_from_data.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from lxml import etree

from envoi.nesting import MAX_NESTING
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain
from tests.helpers import create_type, event, published_template, push
from tests.smtp_sink import SmtpSink

ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "nms:rtEvent#PushEvent"}


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it: an XML parser must make none."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.05)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()  # an answer-less close: a parser that did connect fails instead of hanging

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()


def soap_event(ctx: str = "<ctx/>") -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{ENV}"><soapenv:Body><urn:PushEvent xmlns:urn="urn:nms:rtEvent">'
        '<urn:sessiontoken/><urn:domEvent><rtEvent type="order_confirmation" email="ada@example.com">'
        f"{ctx}</rtEvent></urn:domEvent></urn:PushEvent></soapenv:Body></soapenv:Envelope>"
    )


def hostile_documents(port: int) -> dict[str, bytes]:
    """Each way an XML document can expand or reach out, and the disguises that get past a quick look."""
    url = f"http://127.0.0.1:{port}"
    body = soap_event("<ctx>&x;</ctx>")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    documents = {
        "billion laughs": f'<!DOCTYPE e [<!ENTITY l0 "lol">{laughs}<!ENTITY x "&l9;">]>{body}',
        "quadratic blowup": f'<!DOCTYPE e [<!ENTITY x "{"A" * 100_000}">]>' + body.replace("&x;", "&x;" * 5_000),
        "XXE file": f'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>{body}',
        "XXE http": f'<!DOCTYPE e [<!ENTITY x SYSTEM "{url}/xxe">]>{body}',
        "parameter entity": f'<!DOCTYPE e [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]>{body}',
        "external DTD": f'<!DOCTYPE Envelope SYSTEM "{url}/soap.dtd">{soap_event()}',
        "DTD after 8 KB of comment": f'<!--{" " * 8192}--><!DOCTYPE Envelope SYSTEM "{url}/late.dtd">{soap_event()}',
        "XInclude": soap_event(f'<ctx><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}/x"/></ctx>'),
    }
    encoded = {name: text.encode() for name, text in documents.items()}
    utf16 = '<?xml version="1.0" encoding="UTF-16"?>' + documents["XXE http"]
    encoded["XXE http in UTF-16"] = utf16.encode("utf-16")  # no ASCII "<!DOCTYPE" to find in the bytes
    return encoded


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the parser's work, not the database's
async def test_xml_that_expands_or_reaches_out_is_a_client_fault_and_nothing_is_fetched(
    api: httpx.AsyncClient, listener: Listener
) -> None:
    await create_type(api)
    for name, document in hostile_documents(listener.port).items():
        response = await api.post("/nl/jsp/soaprouter.jsp", content=document, headers=SOAP_HEADERS)
        root = etree.fromstring(response.content)
        texts = {etree.QName(e).localname: e.text or "" for e in root.iter() if isinstance(e.tag, str)}
        if name == "XInclude":  # no XInclude processing: the element is plain ctx data, stored as such
            assert response.status_code == 200, (name, response.text)
            continue
        assert response.status_code == 500 and texts["faultcode"] == "SOAP-ENV:Client", (name, response.text)
        assert "DTD" in texts["faultstring"] or "malformed" in texts["faultstring"], (name, texts["faultstring"])
        assert "root:" not in response.text and "AAAA" not in response.text
    assert listener.connections == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ctx_xml_of_previews_and_seeds_is_parsed_the_same_safe_way(
    api: httpx.AsyncClient, listener: Listener
) -> None:
    template = await published_template(api)
    for name, document in hostile_documents(listener.port).items():
        if name == "XXE http in UTF-16":
            continue  # ctxXml is a JSON string: it arrives as text, not as bytes in an encoding it declares
        ctx_xml = document.decode().replace(soap_event("<ctx>&x;</ctx>"), "<ctx>&x;</ctx>")
        preview = await api.post(f"/api/v1/templates/{template['id']}/preview", json={"ctxXml": ctx_xml})
        seed = await api.post(
            f"/api/v1/templates/{template['id']}/seeds",
            json={"label": "x", "address": "a@example.com", "ctxXml": ctx_xml},
        )
        for response in (preview, seed):
            if name == "XInclude":
                continue
            assert response.status_code == 422, (name, response.text)
            assert response.json()["error"]["field"] == "ctxXml"
    assert listener.connections == 0


# --- 100 MB bodies ------------------------------------------------------------------------------------------

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 1024 * 1024


class Body:
    """A request body made as it is read, counting what the server pulled: 100 MB is never in memory at once."""

    def __init__(self, head: bytes, total: int = HUNDRED_MB) -> None:
        self.head, self.total, self.pulled = head, total, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = self.head
        while self.pulled < self.total:
            self.pulled += len(chunk)
            yield chunk
            chunk = b" " * CHUNK


BIG_ROUTES = {
    "/api/v1/events": b'{"type": "order_confirmation", "email": "ada@example.com", "ctx": {"pad": "',
    "/api/v1/events/batch": b'{"events": [',
    "/api/v1/event-types": b'{"name": "big", "label": "Big", "sample": {"pad": "',
    "/api/v1/templates/1/preview": b'{"ctx": {"pad": "',
    "/api/v1/profiles/import": b"email,firstName\n",
    "/nl/jsp/soaprouter.jsp": b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="' + ENV.encode() + b'">',
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a limit on bytes read, before any storage
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_100_mb_body_is_refused_early_without_reading_it(
    api: httpx.AsyncClient, settings: Settings, declared: bool
) -> None:
    await published_template(api)
    limits = {"/nl/jsp/soaprouter.jsp": settings.soap_max_body_bytes}
    for path, head in BIG_ROUTES.items():
        body = Body(head)
        headers = {"Content-Length": str(HUNDRED_MB)} if declared else {}
        if path.startswith("/nl/"):
            headers |= SOAP_HEADERS
        response = await api.post(path, content=body, headers=headers)
        limit = limits.get(path, settings.request_max_bytes)
        if path.startswith("/nl/"):
            assert response.status_code == 500 and f"larger than {limit} bytes" in response.text, response.text
        else:
            assert response.status_code == 413, (path, response.text)
            assert response.headers["content-type"] == "application/json", (path, response.text)
            assert response.json()["error"]["code"] == "payload_too_large"
        # Declared: refused before a byte is read. Streamed: reading stops at the limit, not at 100 MB.
        assert body.pulled <= (len(head) if declared else limit + CHUNK), (path, body.pulled)


# --- JSON nested 10,000 deep --------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def deep_bodies(depth: int) -> dict[str, str]:
    value = nested(depth)
    return {
        "/api/v1/events": f'{{"type": "order_confirmation", "email": "ada@example.com", "ctx": {value}}}',
        "/api/v1/events/batch": f'{{"events": [{{"type": "order_confirmation", "ctx": {value}}}]}}',
        "/api/v1/event-types#sample": f'{{"name": "deep", "label": "Deep", "sample": {value}}}',
        "/api/v1/event-types#schema": f'{{"name": "deep", "label": "Deep", "schema": {value}}}',
        "/api/v1/templates/1/preview": f'{{"ctx": {value}}}',
        "/api/v1/templates/1/seeds": f'{{"label": "x", "address": "a@example.com", "ctx": {value}}}',
        "/api/v1/profiles": f'{{"email": "p@example.com", "attributes": {value}}}',
        "/api/v1/audiences": f'{{"name": "deep", "label": "Deep", "filters": [{value}]}}',
        "/api/v1/workflows": f'{{"name": "deep", "label": "Deep", "definition": {value}}}',
    }


@pytest.mark.parametrize("depth", [10_000, 900, 300, MAX_NESTING + 1])
async def test_json_nested_too_deep_is_a_4xx_and_stores_nothing(api: httpx.AsyncClient, depth: int) -> None:
    await published_template(api)
    for route, body in deep_bodies(depth).items():
        response = await api.post(route.partition("#")[0], content=body, headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422), (route, depth, response.status_code, response.text[:300])
    assert [t["name"] for t in (await api.get("/api/v1/event-types")).json()] == ["order_confirmation"]
    assert (await api.get("/api/v1/events")).json() == []


async def test_json_nested_as_deep_as_allowed_is_stored_and_read_back(api: httpx.AsyncClient) -> None:
    value = nested(MAX_NESTING - 1)  # the ctx object itself is one level more
    created = await api.post(
        "/api/v1/event-types", content=f'{{"name": "deep", "label": "Deep", "sample": {value}}}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert (await api.get("/api/v1/event-types/deep")).json()["sample"] == created.json()["sample"]


# --- CR/LF in what becomes a header -------------------------------------------------------------------------

INJECTED = "\r\nBcc: thief@evil.test\r\nX-Injected: yes"
TRICKS = {"crlf": INJECTED, "lf": "\nX-Injected: yes", "unicode": "\u2028X-Injected: yes é", "nel": "\x85X-Injected: y"}


@pytest.mark.parametrize("trick", list(TRICKS))
async def test_cr_lf_in_subject_sender_name_and_reply_to_injects_no_header(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink, trick: str
) -> None:
    await published_template(
        smtp_api, subject="Order {{ ctx.subject }}", **{"from": "{{ ctx.name }} <shop@example.com>"},
        replyTo="{{ ctx.name }} <help@example.com>",
    )  # fmt: skip
    payload = TRICKS[trick]
    event_id = await push(smtp_api, ctx={"orderId": "A-1", "subject": f"A-1{payload}", "name": f"Shop{payload}"})
    await drain(smtp_runtime)
    assert (await event(smtp_api, event_id))["status"] == "processed"
    [received] = await smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["ada@example.com"]  # no Bcc reached the envelope
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]
    assert b"x-injected" not in names and b"bcc" not in names, head
    assert "X-Injected" in str(received.message["Subject"])  # the text is kept, on the subject's one line


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # refused on input, before any storage
async def test_cr_lf_in_a_recipient_address_is_refused_on_input(api: httpx.AsyncClient) -> None:
    await published_template(api)
    for address in ("ada@example.com\r\nBcc: thief@evil.test", "ada@example.com\nRCPT TO:<x@evil.test>"):
        refused = await api.post("/api/v1/events", json={"type": "order_confirmation", "email": address})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "email", refused.text
        seed = await api.post("/api/v1/templates/1/seeds", json={"label": "x", "address": address})
        assert seed.status_code == 422, seed.text


# --- HTML in ctx --------------------------------------------------------------------------------------------

HOSTILE_HTML = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "entity": "&lt;b&gt; & <b>",
}


async def test_html_in_ctx_is_escaped_in_the_html_part_and_kept_as_text_elsewhere(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    snippet = await smtp_api.put("/api/v1/snippets/sig", json={"source": "<i>{{ ctx.entity }}</i>"})
    assert snippet.status_code in (200, 201), snippet.text
    await published_template(
        smtp_api, subject="Hi {{ ctx.script }}",
        html='<p title="{{ ctx.attribute }}">{{ ctx.script }} {{ ctx.entity }}</p>{% render "sig" %}',
        text="Hi {{ ctx.script }}",
    )  # fmt: skip
    await push(smtp_api, ctx={"orderId": "A-1", **HOSTILE_HTML})
    await drain(smtp_runtime)
    [received] = await smtp_sink.wait_for(1)
    html = received.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "&#34;&gt;&lt;img" in html.replace("&quot;", "&#34;")
    assert "&amp;lt;b&amp;gt; &amp; &lt;b&gt;" in html  # escaped once more, in the body and in the snippet
    assert html.count("&amp;lt;b&amp;gt;") == 2
    assert "<script>alert(1)</script>" in text and received.message["Subject"] == "Hi <script>alert(1)</script>"
