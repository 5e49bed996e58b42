"""The benchmark's SMTP sink: aiosmtpd in its own process, logging when each message's DATA was accepted.

Each accepted message appends ``<unix time> <seq> <event id>`` to the log, where seq is read from
``Subject: Bench <seq>`` and the event id from ``Message-ID: <id.…>`` (-1 when absent), so the harness can match
arrivals to the events it pushed and count messages sent twice. A line is written before the message is
answered 250, so whatever kills the sink, every message it accepted is in the log.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop
from aiosmtpd.smtp import SMTP

_MARK = b"Subject: Bench "
_MESSAGE_ID = b"\r\nMessage-ID: <"


def _number_after(content: bytes, mark: bytes, end: bytes) -> int:
    start = content.find(mark)
    if start < 0:
        return -1
    start += len(mark)
    try:
        return int(content[start : content.find(end, start)])
    except ValueError:
        return -1


class _Recorder:
    def __init__(self, log: Any) -> None:
        self.log = log

    async def handle_DATA(self, _server: SMTP, _session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        seq = _number_after(content, _MARK, b"\r\n")
        event_id = _number_after(content, _MESSAGE_ID, b".")
        self.log.write(f"{time.time():.6f} {seq} {event_id}\n")
        return "250 2.0.0 Ok: queued"


async def serve(port: int, path: str) -> None:
    with open(path, "a", buffering=1) as log:  # noqa: ASYNC230 (one open at start; a write per line)
        recorder = _Recorder(log)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(recorder, hostname="bench-sink", enable_SMTPUTF8=True, data_size_limit=None),
            "127.0.0.1",
            port,
        )
        print("ready", flush=True)
        async with server:
            await server.serve_forever()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
