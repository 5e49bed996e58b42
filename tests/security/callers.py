"""Who calls Envoi in the security tests: one application in the test's process (one credential cache, as in a
real process), an operator per built-in group and one in no group, an administrator's API key, and the ways
each door is knocked on (the console's login form, SOAP's Logon)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from lxml import etree

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.app import create_app
from envoi.runtime import Runtime

PASSWORD = "a long enough password"
# One operator per built-in group, and one in no group at all.
OPERATORS = {
    "admin@example.com": "administrators",
    "editor@example.com": "template_editors",
    "workflows@example.com": "workflow_supervisors",
    "deliveries@example.com": "delivery_supervisors",
    "viewer@example.com": "viewers",
    "nobody@example.com": None,
}
SESSION_COOKIE = "envoi_session"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Cast:
    runtime: Runtime
    app: FastAPI
    admin_key: str
    operator_ids: dict[str, int] = field(default_factory=dict)

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://envoi.test", timeout=10)

    def admin(self) -> httpx.AsyncClient:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.admin_key}"
        return client

    async def log_in(self, email: str, password: str = PASSWORD, *, planted: str | None = None) -> httpx.Response:
        """The console's login form as a browser posts it (``planted``: a session cookie it already holds)."""
        async with self.client() as client:
            form = await client.get("/console/login")
            token = _FORM_TOKEN.search(form.text)
            assert token, form.text
            if planted is not None:
                client.cookies.set(SESSION_COOKIE, planted, domain="envoi.test")
            data = {"email": email, "password": password, "csrf_token": token.group(1)}
            return await client.post("/console/login", data=data)

    async def session(self, email: str) -> str:
        answer = await self.log_in(email)
        assert answer.status_code == 303, answer.text
        return session_of(answer)

    async def soap(self, action: str, body: str, **headers: str) -> tuple[int, etree._Element]:
        async with self.client() as client:
            answer = await client.post(
                "/nl/jsp/soaprouter.jsp",
                content=body.encode(),
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action, **headers},
            )
        return answer.status_code, etree.fromstring(answer.content)

    async def soap_logon(self, login: str, password: str = PASSWORD, *, token: str = "") -> tuple[int, etree._Element]:
        return await self.soap("xtk:session#Logon", logon(login, password, token=token))


def session_of(answer: httpx.Response) -> str:
    """The session token a login answer sets."""
    for header in answer.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION_COOKIE}="):
            return header.split(";")[0].partition("=")[2]
    raise AssertionError(f"no session cookie in {answer.headers}")


def envelope(operation: str, namespace: str = "urn:nms:rtEvent") -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:urn="{namespace}">'
        f"<soapenv:Body>{operation}</soapenv:Body></soapenv:Envelope>"
    )


def logon(login: str, password: str, *, token: str = "") -> str:
    return envelope(
        f"<urn:Logon><urn:sessiontoken>{token}</urn:sessiontoken><urn:strLogin>{login}</urn:strLogin>"
        f"<urn:strPassword>{password}</urn:strPassword><urn:elemParameters/></urn:Logon>",
        "urn:xtk:session",
    )


def soap_texts(root: etree._Element, name: str) -> list[str]:
    return [e.text or "" for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == name]


async def make_cast(runtime: Runtime) -> Cast:
    async with runtime.transaction() as session:
        ids = {}
        for email, group in OPERATORS.items():
            operator = await create_operator(session, email=email, name=email.split("@")[0].title(), password=PASSWORD)
            if group:
                await add_member(session, group, operator.id)
            ids[email] = operator.id
        _key, admin_key = await create_api_key(session, "admin", operator_id=ids["admin@example.com"])
    return Cast(runtime, create_app(runtime.settings, run_worker=False, runtime=runtime), admin_key, ids)
