"""The benchmark's SMTP sink, against the SMTP client Envoi uses: every accepted message is logged with its seq
and event id before its 250, commands sent in one write are all answered, and dot-stuffed content is whole."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from envoi.bench import processes
from envoi.bench.chaos_report import messages_per_event
from envoi.bench.scenarios import read_arrivals


def _message(seq: int, event_id: int, body: str) -> EmailMessage:
    mime = EmailMessage()
    mime["From"] = "shop@bench.example"
    mime["To"] = f"customer{seq}@bench.example"
    mime["Subject"] = f"Bench {seq}"
    mime["Message-ID"] = f"<{event_id}.1700000000@envoi.localhost>"
    mime.set_content(body)
    return mime


async def _send_all(port: int) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
        for seq in range(5):
            body = ".a line that starts with a dot\n.\nthe end\n" if seq == 2 else "Thank you Ada!\n"
            _errors, reply = await client.send_message(_message(seq, 100 + seq, body))
            assert "queued" in reply
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # greeting
    # A whole transaction in one write, as a pipelining client sends it: every command gets its reply.
    writer.write(
        b"EHLO me\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
        b"Subject: Bench 9\r\nMessage-ID: <109.1@x>\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    )
    replies = await reader.read()  # until the sink closes after QUIT
    writer.close()
    codes = [line[:3] for line in replies.split(b"\r\n") if line and line[3:4] == b" "]
    assert codes == [b"250", b"250", b"250", b"354", b"250", b"221"]


def test_sink_logs_every_message_it_accepts_with_its_seq_and_event_id(tmp_path: Path) -> None:
    sink, port, log = processes.start_sink(tmp_path)
    try:
        asyncio.run(_send_all(port))
    finally:
        sink.stop()
    assert set(read_arrivals(log)) == {0, 1, 2, 3, 4, 9}
    assert messages_per_event(log) == {100: 1, 101: 1, 102: 1, 103: 1, 104: 1, 109: 1}
