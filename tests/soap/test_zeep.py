"""A real SOAP toolkit (zeep), built from our WSDL, pushes real-time and batch events to a running
``envoi serve``; a real SMTP server receives them, personalized from the ctx XML."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import requests
import zeep
from lxml import etree

from tests.processes import free_port, start_envoi, wait_for_port, wait_for_text
from tests.smtp_sink import start_sink


def _event(kind: str, email: str, name: str) -> str:
    return (
        f'<{kind} type="password_reset" email="{email}">'
        f"<ctx><firstName>{name}</firstName><resetUrl>https://x.test/r/{name}</resetUrl></ctx></{kind}>"
    )


def test_zeep_pushes_realtime_and_batch_events_that_reach_an_smtp_server(tmp_path: Path) -> None:
    sink = start_sink()
    port, log = free_port(), tmp_path / "serve.log"
    server = start_envoi(
        ["serve", "--port", str(port)], env={"ENVOI_SMTP_URL": sink.url}, cwd=tmp_path, output=log.open("ab")
    )
    try:
        wait_for_text(log, "worker.started")
        wait_for_port(port)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {(tmp_path / '.envoi' / 'api-key').read_text().strip()}"
        transport = zeep.Transport(session=session)
        wsdl = f"http://127.0.0.1:{port}/nl/jsp/schemawsdl.jsp?schema="
        realtime = zeep.Client(wsdl + "nms:rtEvent", transport=transport)
        batch = zeep.Client(wsdl + "nms:batchEvent", transport=transport)

        first = realtime.service.PushEvent(
            sessiontoken="", domEvent={"_value_1": etree.fromstring(_event("rtEvent", "ada@example.com", "Ada"))}
        )
        collection = etree.fromstring(
            "<events>" + "".join(_event("batchEvent", f"u{i}@example.com", f"U{i}") for i in (1, 2, 3)) + "</events>"
        )
        others = batch.service.PushEvents(sessiontoken="", domEventCollection={"_value_1": collection})
        assert first > 0 and len(others) == 3 and sorted(others) == others

        received = asyncio.run(sink.wait_for(4, timeout=20))
        by_recipient = {mail.rcpt_tos[0]: mail.message for mail in received}
        assert set(by_recipient) == {"ada@example.com", "u1@example.com", "u2@example.com", "u3@example.com"}
        text = by_recipient["u3@example.com"].get_body(("plain",)).get_content()
        assert "Hello U3" in text and "https://x.test/r/U3" in text
        assert by_recipient["ada@example.com"]["Subject"] == "Reset your password"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        sink.stop()
