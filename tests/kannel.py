"""A real Kannel on 127.0.0.1 for tests: bearerbox, smsbox and Kannel's own fake SMSC (``fakesmsc``), from
Debian's ``kannel`` and ``kannel-extras`` packages, with a configuration written for the test.

``await KannelPeer.start()``; ``peer.sendsms_url``; ``peer.messages()`` is what reached the fake SMSC, long
texts put back together from their concatenated parts; ``peer.parts`` the parts as they came. Numbers
starting with +999 are black-listed by the sendsms user (Kannel answers 400), numbers outside +33 and +44 have
no route (403 "Not routable"). ``stop_smsbox()`` / ``start_smsbox()`` take the HTTP interface down and up.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

import httpx

from tests.processes import free_port

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (.*)>$")


@dataclass(frozen=True)
class Part:
    source: str
    destination: str
    udh: bytes
    data: bytes
    ucs2: bool

    @property
    def concatenated(self) -> tuple[int, int, int] | None:
        if self.udh[:3] == b"\x05\x00\x03":
            return self.udh[3], self.udh[4], self.udh[5]
        return None


def _bytes(field: str) -> bytes:
    return unquote_to_bytes(field.replace("+", "%20"))


def _part(line: str) -> Part | None:
    found = _GOT.search(line)
    if found is None:
        return None
    source, destination, rest = found.groups()
    kind, _, value = rest.partition(" ")
    if kind == "udh":  # "udh <udh> data <data>"
        udh, _, tail = value.partition(" ")
        _data_kind, _, data = tail.partition(" ")
        payload = _bytes(data)
        # UCS-2 parts come as "data" too: UTF-16-BE, recognisable by the high bytes of Cyrillic, Greek... text
        ucs2 = len(payload) % 2 == 0 and all(b in (0, 3, 4, 0x20) for b in payload[::2])
        return Part(source, destination, _bytes(udh), payload, ucs2)
    if kind == "ucs-2":
        return Part(source, destination, b"", _bytes(value), True)
    return Part(source, destination, b"", value.encode(), False)  # "text <plain text>"


class KannelPeer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.admin_port, self.box_port, self.smsc_port, self.sendsms_port = (free_port() for _ in range(4))
        self.parts: list[Part] = []
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._reader: asyncio.Task[None] | None = None
        self.config = directory / "kannel.conf"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def messages(self) -> list[tuple[str, str]]:
        """(destination, text) of each message, parts joined in order."""
        whole: list[tuple[str, str]] = []
        pending: dict[tuple[str, int], dict[int, Part]] = {}
        for part in self.parts:
            if part.concatenated is None:
                whole.append((part.destination, _text([part])))
                continue
            reference, total, sequence = part.concatenated
            group = pending.setdefault((part.destination, reference), {})
            group[sequence] = part
            if len(group) == total:
                del pending[(part.destination, reference)]
                ordered = [group[n] for n in sorted(group)]
                whole.append((part.destination, _text(ordered)))
        return whole

    async def start(self) -> None:
        self._write_config()
        await self._spawn("bearerbox", BEARERBOX, str(self.config))
        await self._wait_for_port(self.admin_port)
        await self._spawn("fakesmsc", FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-m", "0", reader=True)
        await self.start_smsbox()
        await self._wait_for_smsc()

    async def start_smsbox(self) -> None:
        await self._spawn("smsbox", SMSBOX, str(self.config))
        await self._wait_for_port(self.sendsms_port)
        # smsbox listens before it has joined bearerbox; a message sent in between is not accepted.
        await self._wait_for_status(r"smsbox:.*on-line", "smsbox did not join bearerbox")

    async def stop_smsbox(self) -> None:
        await self._terminate("smsbox")

    async def stop(self) -> None:
        for name in ("smsbox", "fakesmsc", "bearerbox"):
            await self._terminate(name)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _spawn(self, name: str, *command: str, reader: bool = False) -> None:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,  # fakesmsc reads messages to send from stdin, and stops at its end
            stdout=asyncio.subprocess.PIPE if reader else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT if reader else asyncio.subprocess.DEVNULL,
            cwd=self.directory,
        )
        self._processes[name] = process
        if reader:
            self._reader = asyncio.create_task(self._read(process))

    async def _terminate(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            part = _part(raw.decode("utf-8", "replace").rstrip("\n"))
            if part is not None:
                self.parts.append(part)

    async def _wait_for_port(self, port: int) -> None:
        for _ in range(600):  # 30 s: on a loaded 2-core machine bearerbox took more than 10 to listen
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"Kannel did not open port {port}; see {self.directory}")

    async def _wait_for_smsc(self) -> None:
        """Until bearerbox reports its fake SMSC online, so a first message is sent, not queued."""
        await self._wait_for_status(r"fake\[fake\].*online", "Kannel's fake SMSC did not come online")

    async def _wait_for_status(self, pattern: str, failure: str) -> None:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password=admin"
        async with httpx.AsyncClient() as client:
            for _ in range(400):  # 20 s
                with contextlib.suppress(httpx.HTTPError):
                    if re.search(pattern, (await client.get(url)).text):
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{failure}; see {self.directory}")

    def _write_config(self) -> None:
        d = self.directory
        (d / "spool").mkdir(exist_ok=True)
        self.config.write_text(
            f"""
group = core
admin-port = {self.admin_port}
admin-password = admin
status-password = admin
smsbox-port = {self.box_port}
box-allow-ip = "127.0.0.1"
admin-allow-ip = "127.0.0.1"
log-file = "{d}/bearerbox.log"
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {self.smsc_port}
connect-allow-ip = "127.0.0.1"
allowed-prefix = "+33;+44"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
log-file = "{d}/smsbox.log"
log-level = 1

group = sendsms-user
username = envoi
password = secret
concatenation = true
max-messages = 10
black-list-regex = "^[+]?999"

group = sms-service
keyword = default
text = "No service"
catch-all = true
omit-empty = true
"""
        )


def _text(parts: list[Part]) -> str:
    data = b"".join(part.data for part in parts)
    return data.decode("utf-16-be") if parts[0].ucs2 else data.decode("utf-8", "replace")
