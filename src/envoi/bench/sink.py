"""The benchmark's SMTP sink: a minimal SMTP server in its own process, logging when each message's DATA was
accepted.

Each accepted message appends ``<unix time> <seq> <event id>`` to the log, where seq is read from
``Subject: Bench <seq>`` and the event id from ``Message-ID: <id.…>`` (-1 when absent), so the harness can match
arrivals to the events it pushed and count messages sent twice. A line is written before the message is
answered 250, so whatever kills the sink, every message it accepted is in the log.

It stands in for a relay on another machine, so it must cost the benchmark's shared cores as little as
possible: an asyncio protocol answering EHLO, MAIL, RCPT, DATA, RSET, NOOP and QUIT, about a quarter of the
CPU per message aiosmtpd takes (which parses and validates every command, and is measured in
``envoi bench --workers``'s CPU table).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import IO, cast

import uvloop

_MARK = b"Subject: Bench "
_MESSAGE_ID = b"\r\nMessage-ID: <"
_END_OF_DATA = b"\r\n.\r\n"
_EHLO = b"250-bench-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
_REPLIES = {
    b"HELO": b"250 bench-sink\r\n",
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"RSET": b"250 2.0.0 Ok\r\n",
    b"NOOP": b"250 2.0.0 Ok\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 2.0.0 Bye\r\n",
}


def _number_after(content: bytes, mark: bytes, end: bytes) -> int:
    start = content.find(mark)
    if start < 0:
        return -1
    start += len(mark)
    try:
        return int(content[start : content.find(end, start)])
    except ValueError:
        return -1


class _Session(asyncio.Protocol):
    """One client connection: commands line by line, pipelined or not, and message contents up to ``.``."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.buffer = bytearray()
        self.in_data = False
        self.searched = 0  # bytes of the message already searched for its end
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but has the methods
        self.transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        closing = False
        while self.buffer and not closing:
            if self.in_data:
                if self.buffer.startswith(b".\r\n"):  # an empty message
                    end, content = 0, b""
                else:
                    end = self.buffer.find(_END_OF_DATA, self.searched)
                    if end < 0:
                        self.searched = max(0, len(self.buffer) - len(_END_OF_DATA))
                        break
                    content, end = bytes(self.buffer[: end + 2]), end + 2
                del self.buffer[: end + 3]
                self.in_data, self.searched = False, 0
                replies.append(self._accept(content))
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: line_end + 2]
            if verb == b"EHLO":
                replies.append(_EHLO)
                continue
            replies.append(_REPLIES.get(verb, b"502 5.5.2 Command not recognized\r\n"))
            self.in_data = verb == b"DATA"
            closing = verb == b"QUIT"
        if replies:
            self.transport.write(b"".join(replies))
        if closing:
            self.transport.close()

    def _accept(self, content: bytes) -> bytes:
        seq = _number_after(content, _MARK, b"\r\n")
        event_id = _number_after(content, _MESSAGE_ID, b".")
        self.log.write(f"{time.time():.6f} {seq} {event_id}\n")  # line-buffered: on disk before the 250 leaves
        return b"250 2.0.0 Ok: queued\r\n"


async def serve(port: int, path: str) -> None:
    with open(path, "a", buffering=1) as log:  # noqa: ASYNC230 (one open at start; a write per line)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Session(log), "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()


def main() -> None:
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
