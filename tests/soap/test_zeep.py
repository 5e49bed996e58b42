"""A real SOAP toolkit (zeep), built from our WSDL, pushes events to a running ``envoi serve``; they are sent."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import requests
import zeep
from lxml import etree

from tests.processes import free_port, start_envoi, wait_for_text


def test_zeep_pushes_single_and_batch_events_that_are_delivered(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    server = start_envoi(["serve", "--port", str(port)], env={}, cwd=tmp_path, output=log.open("ab"))
    try:
        wait_for_text(log, "worker.started")
        key = (tmp_path / ".envoi" / "api-key").read_text().strip()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        url = f"http://127.0.0.1:{port}"
        client = zeep.Client(
            f"{url}/nl/jsp/schemawsdl.jsp?schema=nms:rtEvent", transport=zeep.Transport(session=session)
        )
        single = etree.fromstring(
            '<rtEvent type="password_reset" email="ada@example.com">'
            "<ctx><firstName>Ada</firstName><resetUrl>https://x.test/r/1</resetUrl></ctx></rtEvent>"
        )
        first = client.service.PushEvent(sessiontoken="", domEvent={"_value_1": single})
        batch = etree.fromstring(
            "<events>"
            + "".join(
                f'<rtEvent type="password_reset" email="user{i}@example.com">'
                f"<ctx><firstName>U{i}</firstName><resetUrl>https://x.test/r/{i}</resetUrl></ctx></rtEvent>"
                for i in (2, 3)
            )
            + "</events>"
        )
        others = client.service.PushEvents(sessiontoken="", domEventCollection={"_value_1": batch})
        assert first > 0 and len(others) == 2 and others[0] > first

        headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 15
        while len(outbox := httpx.get(f"{url}/api/v1/outbox", headers=headers).json()) < 3:
            assert time.monotonic() < deadline, outbox
            time.sleep(0.1)
        by_recipient = {mail["to"]: mail for mail in outbox}
        assert "Hello Ada" in by_recipient["ada@example.com"]["text"]
        assert "https://x.test/r/3" in by_recipient["user3@example.com"]["text"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
