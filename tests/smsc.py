"""A real SMPP 3.4 SMSC on 127.0.0.1 for tests: the server side of the smpp34 package, recording what it accepts.

``await SmscPeer.start()``; ``peer.refuse(number, status)`` answers every submit to that number with an SMPP
error; ``peer.fail_next(n, status)`` the next n submits; accepted submits get a delivery receipt (DELIVRD, or
``peer.receipt_state[number]``) unless ``peer.receipts`` is off. ``peer.messages()`` puts concatenated parts
back together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

import smpp34

from envoi.channels.sms import decode_sms
from tests.processes import free_port


@dataclass(frozen=True)
class Submit:
    destination: str
    source: str
    source_ton: int
    data_coding: int
    esm_class: int
    short_message: bytes
    message_id: str

    @property
    def concatenated(self) -> tuple[int, int, int] | None:
        """(reference, total, sequence) from the user data header, when the part has one."""
        data = self.short_message
        if self.esm_class & 0x40 and data[:3] == b"\x05\x00\x03":
            return data[3], data[4], data[5]
        return None

    @property
    def text(self) -> str:
        body = self.short_message[6:] if self.concatenated else self.short_message
        return decode_sms(body, self.data_coding)


class SmscPeer:
    def __init__(self) -> None:
        self.port = free_port()
        self.server = smpp34.Server("127.0.0.1", self.port, system_id="TestSMSC")
        self.submits: list[Submit] = []
        self.refused: dict[str, int] = {}
        self.failures: deque[int] = deque()
        self.receipts = True
        self.receipt_state: dict[str, str] = {}
        self.binds = 0
        self._sessions: dict[str, smpp34.Esme] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[object]] = set()

    @property
    def url(self) -> str:
        return f"smpp://envoi:secret@127.0.0.1:{self.port}?source=Shop"

    async def start(self) -> None:
        await self.server.start()
        self._task = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.stop()

    def refuse(self, number: str, status: int = smpp34.ESME_RINVDSTADR) -> None:
        self.refused[number.lstrip("+")] = status

    def fail_next(self, n: int, status: int = smpp34.ESME_RTHROTTLED) -> None:
        self.failures.extend([status] * n)

    def messages(self) -> list[tuple[str, str]]:
        """(destination, text) of every whole message received, parts joined, in the order they completed."""
        whole, pending = [], {}
        for submit in self.submits:
            header = submit.concatenated
            if header is None:
                whole.append((submit.destination, submit.text))
                continue
            reference, total, sequence = header
            parts = pending.setdefault((submit.destination, reference), {})
            parts[sequence] = submit.text
            if len(parts) == total:
                whole.append((submit.destination, "".join(parts[n] for n in range(1, total + 1))))
                del pending[(submit.destination, reference)]
        return whole

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.binds += 1
                self._sessions[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._answer(event)

    def _answer(self, event: smpp34.SubmitSmEvent) -> None:
        status = (self.failures.popleft() if self.failures else 0) or self.refused.get(event.destination_addr, 0)
        if status:
            event.reject(status)
            return
        message_id = f"m{len(self.submits) + 1}"
        event.accept(message_id)
        self.submits.append(
            Submit(
                event.destination_addr,
                event.source_addr,
                event.source_addr_ton,
                event.data_coding,
                event.esm_class,
                event.short_message,
                message_id,
            )
        )
        session = self._sessions.get(event.session_id)
        if self.receipts and event.registered_delivery & 0x01 and session is not None:
            state = self.receipt_state.get(event.destination_addr, "DELIVRD")
            text = f"id:{message_id} sub:001 dlvrd:001 submit date:2611270000 done date:2611270000 stat:{state} err:000"
            receipt = asyncio.ensure_future(
                session.deliver_sm(event.source_addr, text.encode(), source_addr=event.destination_addr, esm_class=0x04)
            )
            self._pending.add(receipt)
            receipt.add_done_callback(self._pending.discard)
