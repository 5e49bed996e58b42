"""The benchmark's SMTP sink: aiosmtpd in its own process, logging when each message's DATA was accepted.

Each accepted message appends ``<unix time> <seq>`` to the log, where seq is read from ``Subject: Bench <seq>``
(-1 when absent), so the harness can match arrivals to the events it pushed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop
from aiosmtpd.smtp import SMTP

_MARK = b"Subject: Bench "


class _Recorder:
    def __init__(self, log: Any) -> None:
        self.log = log

    async def handle_DATA(self, _server: SMTP, _session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        start = content.find(_MARK)
        seq = -1
        if start >= 0:
            end = content.find(b"\r\n", start)
            try:
                seq = int(content[start + len(_MARK) : end])
            except ValueError:
                seq = -1
        self.log.write(f"{time.time():.6f} {seq}\n")
        return "250 2.0.0 Ok: queued"


async def serve(port: int, path: str) -> None:
    with open(path, "a", buffering=1 << 16) as log:  # noqa: ASYNC230 (one open at start)
        recorder = _Recorder(log)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(recorder, hostname="bench-sink", enable_SMTPUTF8=True, data_size_limit=None),
            "127.0.0.1",
            port,
        )
        print("ready", flush=True)
        async with server:
            while True:
                await asyncio.sleep(0.05)
                log.flush()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
