"""Hypothesis against the SOAP router and the ctx XML -> JSON mapping: whatever arrives, the answer is a SOAP 1.1
Client fault or, for a valid event, a plId whose stored ctx is the mapping of the XML sent; the mapping itself
raises nothing but ValidationFailed.

CI runs a few hundred payloads; ``ENVOI_FUZZ_EXAMPLES=2000 .venv/bin/pytest -s tests/security/test_soap_fuzz.py``
runs more, with new inputs each run. Each test prints what it tried.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import etree

from envoi.errors import ValidationFailed
from envoi.nesting import MAX_NESTING, nesting_depth
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.soap.xml import ctx_to_json, parse_document
from tests.conftest import make_client
from tests.helpers import create_type

EXAMPLES = int(os.environ.get("ENVOI_FUZZ_EXAMPLES", "60"))
REPEATABLE = "ENVOI_FUZZ_EXAMPLES" not in os.environ  # CI: the same inputs every run
ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ACTIONS = ["nms:rtEvent#PushEvent", "nms:batchEvent#PushEvent", "nms:rtEvent#PushEvents"]


def fuzz_settings(examples: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=REPEATABLE,
        phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: shrinking re-posts for minutes
        suppress_health_check=list(HealthCheck),
    )


# --- what is sent -------------------------------------------------------------------------------------------

xml_names = st.builds(
    str.__add__, st.sampled_from("abcdefghijkLMNOPQRSTUVWZ_"), st.text("abcXYZ0189_.-", max_size=8)
)  # XML names (none starting with "xml", which is reserved); drawn cheaply: generation is most of the time
unicode_names = st.sampled_from(["prénom", "名前", "Ωmega", "a·b", "_"])
names = st.one_of(xml_names, unicode_names)
xml_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)
hostile_text = st.sampled_from(
    ["<script>alert(1)</script>", "a\r\nBcc: x@evil.test", "{{ 7 | times: 7 }}", "{% for %}", "&amp;", "]]>", " "]
)
values = st.one_of(xml_text, hostile_text)


@st.composite
def ctx_elements(draw: st.DrawFn, depth: int = 0) -> str:
    """An XML element: attributes (some in a namespace), text, repeated and nested children."""
    name = draw(names)
    attributes = draw(st.dictionaries(names, values, max_size=4))
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in attributes.items())
    if draw(st.booleans()):
        attrs += f' xmlns:p="urn:{draw(xml_names)}" p:{draw(xml_names)}="1"'
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return f"<{name}{attrs}>{escape(draw(values))}</{name}>"
    kids = draw(st.lists(ctx_elements(depth + 1), max_size=3))
    if kids and draw(st.booleans()):
        kids.append(kids[0])  # a repeated element becomes a list
    return f"<{name}{attrs}>{escape(draw(values))}{''.join(kids)}</{name}>"


event_attributes = st.fixed_dictionaries(
    {"type": st.sampled_from(["order_confirmation", "order_confirmation", "unknown_type", "", "ORDER"])},
    optional={
        "email": st.sampled_from(["ada@example.com", "not an address", "a\r\nb@example.com", "x" * 400]),
        "mobilePhone": st.sampled_from(["+33612345678", "12ab", "+" + "9" * 40]),
        "wishedChannel": st.sampled_from(["0", "1", "41", "-1", "99999999999999999999", "email", "²"]),
        "emailFormat": st.sampled_from(["0", "2", "7", "²", "9" * 5000, "x"]),
        "externalId": xml_text,
        "language": st.sampled_from(["fr", "fr-CA", "", "x" * 50]),
        "scheduled": st.sampled_from(["2030-01-01T00:00:00Z", "yesterday", "9999-99-99", ""]),
        "expiration": st.sampled_from(["2031-01-01T00:00:00Z", "0", "1e309"]),
        "origin": values,
        "id": st.just("12"),  # Adobe's read-only fields, ignored
        "bogus": st.just("1"),  # an unknown attribute is refused
    },
)


def is_valid_event(attributes: dict[str, str]) -> bool:
    """Whether the event must be stored: a known type, a good address, and no attribute that is refused."""
    good = {
        "type": {"order_confirmation"},
        "email": {"ada@example.com"},
        "mobilePhone": {"+33612345678"},
        "wishedChannel": {"0"},
        "emailFormat": {"0", "2"},
        "language": {"fr", "fr-CA"},
        "scheduled": {"2030-01-01T00:00:00Z"},
        "expiration": {"2031-01-01T00:00:00Z"},
        "id": {"12"},
    }
    if "email" not in attributes:
        return False
    free = {"externalId", "origin"}
    return all(key in free or value in good.get(key, set()) for key, value in attributes.items())


@dataclass
class Payload:
    action: str
    body: bytes
    valid: bool = False  # by construction: the event must be stored, with this ctx
    ctx: dict[str, Any] | None = None
    kind: str = ""


def envelope(operation: str, inner: str, namespace: str = "urn:nms:rtEvent") -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{ENV}"><soapenv:Body><urn:{operation} xmlns:urn="{namespace}">'
        f"<urn:sessiontoken/>{inner}</urn:{operation}></soapenv:Body></soapenv:Envelope>"
    )


valid_attributes = st.fixed_dictionaries(
    {"type": st.just("order_confirmation"), "email": st.just("ada@example.com")},
    optional={"externalId": xml_text, "origin": xml_text, "language": st.just("fr"), "emailFormat": st.just("2")},
)


@st.composite
def push_events(draw: st.DrawFn) -> Payload:
    """A PushEvent as Adobe's callers send it, with fuzzed attributes (valid half the time) and ctx."""
    attributes = draw(st.one_of(valid_attributes, event_attributes))
    ctx = f"<ctx>{''.join(draw(st.lists(ctx_elements(), max_size=4)))}</ctx>"
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in attributes.items())
    event = f"<rtEvent{attrs}>{ctx}</rtEvent>"
    body = envelope("PushEvent", f"<urn:domEvent>{event}</urn:domEvent>")
    expected = ctx_to_json(parse_document(ctx.encode()))
    return Payload("nms:rtEvent#PushEvent", body.encode(), is_valid_event(attributes), expected, "event")


@st.composite
def mutated(draw: st.DrawFn) -> Payload:
    """A valid request broken in one way: cut short, bytes changed, re-encoded, or sent with the wrong action."""
    payload = draw(push_events())
    body, how = payload.body, draw(st.sampled_from(["truncate", "flip", "encoding", "action", "insert", "doctype"]))
    if how == "truncate":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    elif how == "insert":
        at = draw(st.integers(0, len(body)))
        body = (
            body[:at] + draw(st.sampled_from([b"<", b"&", b"&#0;", b"\x00", b"]]>", b"<![CDATA[", b"\xff"])) + body[at:]
        )
    elif how == "encoding":
        codec, declared = draw(st.sampled_from([("utf-16", "UTF-16"), ("utf-8", "UTF-16"), ("latin-1", "klingon")]))
        text = f'<?xml version="1.0" encoding="{declared}"?>' + body.decode()
        body = text.encode(codec, errors="replace")
    elif how == "doctype":
        body = b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">' + body
    action = draw(st.sampled_from([*ACTIONS, "", "nms:rtEvent#Nope", "xtk:session#Logoff", '"nms:rtEvent#PushEvent"']))
    return Payload(action if how == "action" else payload.action, body, kind=how)


@st.composite
def odd_shapes(draw: st.DrawFn) -> Payload:
    """Envelopes that are well-formed XML and wrong SOAP: other roots, empty bodies, many attributes, deep trees."""
    shape = draw(st.sampled_from(["attributes", "deep", "root", "empty", "batch", "namespace"]))
    if shape == "attributes":
        count = draw(st.integers(1000, 20_000))
        attrs = " ".join(f'a{i}="{i}"' for i in range(count))
        event = f'<rtEvent type="order_confirmation" email="ada@example.com"><ctx {attrs}/></rtEvent>'
        body = envelope("PushEvent", f"<urn:domEvent>{event}</urn:domEvent>")
    elif shape == "deep":
        depth = draw(st.integers(MAX_NESTING - 2, 300))
        ctx = "<ctx>" + "<a>" * depth + "</a>" * depth + "</ctx>"
        event = f'<rtEvent type="order_confirmation" email="ada@example.com">{ctx}</rtEvent>'
        body = envelope("PushEvent", f"<urn:domEvent>{event}</urn:domEvent>")
    elif shape == "root":
        body = f"<{draw(xml_names)}/>"
    elif shape == "empty":
        body = f'<soapenv:Envelope xmlns:soapenv="{ENV}"><soapenv:Body/></soapenv:Envelope>'
    elif shape == "batch":
        events = "".join(
            f'<batchEvent type="order_confirmation" email="u{i}@example.com"><ctx><n>{i}</n></ctx></batchEvent>'
            for i in range(draw(st.integers(0, 30)))
        )
        inner = f"<urn:domEventCollection><c>{events}</c></urn:domEventCollection>"
        body = envelope("PushEvents", inner, "urn:nms:batchEvent")
    else:
        body = envelope("PushEvent", "<urn:domEvent/>", draw(st.sampled_from(["", "urn:x", "urn:nms:rtEvent"])))
    action = "nms:batchEvent#PushEvents" if shape == "batch" else "nms:rtEvent#PushEvent"
    return Payload(action, body.encode(), kind=shape)


# --- what must come back ------------------------------------------------------------------------------------


@dataclass
class SoapTarget:
    runtime: Runtime
    client: httpx.AsyncClient
    key: str
    tried: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)

    @classmethod
    async def start(cls, settings: Settings) -> SoapTarget:
        runtime = Runtime.create(settings)
        client = await make_client(runtime)
        await create_type(client, "order_confirmation")
        return cls(runtime, client, client.headers["Authorization"])

    async def check(self, payload: Payload) -> None:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": payload.action}
        response = await self.client.post("/nl/jsp/soaprouter.jsp", content=payload.body, headers=headers)
        self.tried[payload.kind] += 1
        assert response.headers["content-type"].startswith("text/xml"), response.text[:300]
        root = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
        assert etree.QName(root).namespace == ENV and etree.QName(root).localname == "Envelope"
        found = {etree.QName(e).localname: e.text or "" for e in root.iter() if isinstance(e.tag, str)}
        if response.status_code == 200:
            self.answers["plId"] += 1
            ids = [int(e.text or "0") for e in root.iter("plId")]
            assert ids and all(i > 0 for i in ids), response.text
            if payload.ctx is not None and payload.action.endswith("#PushEvent"):
                stored = (await self.client.get(f"/api/v1/events/{ids[0]}")).json()
                assert stored["ctx"] == payload.ctx
        else:
            self.answers["fault"] += 1
            assert response.status_code == 500, response.text[:300]
            assert found.get("faultcode") == "SOAP-ENV:Client", response.text[:500]  # Server would be our bug
            assert found.get("faultstring")
            assert not payload.valid, f"a valid event was refused: {found.get('faultstring')}"

    async def close(self) -> None:
        await self.client.aclose()
        await self.runtime.aclose()

    def summary(self, name: str, backend: str) -> str:
        kinds = ", ".join(f"{kind or 'other'}: {n}" for kind, n in sorted(self.tried.items()))
        answers = ", ".join(f"{k}: {n}" for k, n in sorted(self.answers.items()))
        return f"{name} ({backend}): {self.tried.total()} payloads tried, 0 failures ({kinds}; answers {answers})"


def _run(settings: Settings, capsys: pytest.CaptureFixture[str], name: str, strategy: Any, examples: int) -> None:
    with asyncio.Runner() as runner:
        target = runner.run(SoapTarget.start(settings))
        try:

            @fuzz_settings(examples)
            @given(strategy)
            def post(payload: Payload) -> None:
                runner.run(target.check(payload))

            post()
        finally:
            runner.run(target.close())
    with capsys.disabled():
        print(f"\n[hostile input] {target.summary(name, settings.database_url.partition(':')[0])}")
    assert target.tried.total() >= min(examples, 20)


def test_soap_events_with_fuzzed_attributes_and_ctx(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _run(settings, capsys, "SOAP events", push_events(), EXAMPLES)


def test_broken_and_odd_soap_requests_are_client_faults(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _run(settings, capsys, "SOAP broken requests", st.one_of(mutated(), odd_shapes()), EXAMPLES)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # headers are read before any storage
@pytest.mark.parametrize(
    "headers",
    [
        {"SOAPAction": "nms:rtEvent#PushEvent\x01\x1b[31m"},  # control characters, echoed in the fault
        {"SOAPAction": "nms:rtEvent#PushEvent", "Content-Length": "abc"},
        {
            "SOAPAction": "nms:rtEvent#PushEvent",
            "Content-Length": "\u00b2".encode("latin-1"),
        },  # a digit to str.isdigit, not to int
        {"SOAPAction": "nms:rtEvent#PushEvent", "Content-Length": "9" * 5000},
        {"SOAPAction": "\u00e9\u00ff".encode("latin-1")},
    ],
    ids=["control characters", "length abc", "length superscript", "length 5000 digits", "latin-1 action"],
)
async def test_headers_no_toolkit_sends_are_client_faults_too(
    api: httpx.AsyncClient, headers: dict[str, str | bytes]
) -> None:
    body = envelope("PushEvent", "<urn:domEvent/>").encode()
    response = await api.post("/nl/jsp/soaprouter.jsp", content=body, headers={"Content-Type": "text/xml"} | headers)
    root = etree.fromstring(response.content)
    found = {etree.QName(e).localname: e.text or "" for e in root.iter() if isinstance(e.tag, str)}
    assert response.status_code == 500 and found["faultcode"] == "SOAP-ENV:Client", response.text


# --- the mapping alone (no database) ------------------------------------------------------------------------

mapping_tried: Counter[str] = Counter()


@fuzz_settings(EXAMPLES * 5)
@given(
    st.one_of(
        st.binary(max_size=200).map(lambda b: ("bytes", b"<ctx>" + b + b"</ctx>")),
        ctx_elements().map(lambda x: ("tree", f"<ctx>{x}</ctx>".encode())),
        st.integers(1, 400).map(lambda n: ("deep", b"<ctx>" + b"<a>" * n + b"x" + b"</a>" * n + b"</ctx>")),
        st.text(max_size=100).map(lambda t: ("text", t.encode("utf-8", "surrogatepass"))),
    )
)
def test_the_ctx_mapping_raises_only_validation_errors(sample: tuple[str, bytes]) -> None:
    kind, document = sample
    mapping_tried[kind] += 1
    try:
        ctx = ctx_to_json(parse_document(document))
    except ValidationFailed as error:
        assert error.message and error.status_code == 422
        return
    assert isinstance(ctx, dict) and nesting_depth(ctx) <= MAX_NESTING
    assert json.loads(json.dumps(ctx)) == ctx  # storable as JSON, and read back the same


def test_the_mapping_run_reports_its_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the property above (file order): prints how many documents it mapped."""
    with capsys.disabled():
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(mapping_tried.items()))
        print(f"\n[hostile input] ctx XML -> JSON: {mapping_tried.total()} documents tried, 0 failures ({kinds})")
