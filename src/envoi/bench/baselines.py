"""The machine's own limits, measured in the same run: raw inserts with the same driver, and a raw SMTP client.

No Envoi code runs here; only the drivers Envoi itself uses (aiosqlite, psycopg, aiosmtplib)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import aiosqlite
import psycopg

from envoi.bench.workload import event

_COLUMNS = "type, mode, channel, status, email, external_id, ctx, created_at, updated_at, next_attempt_at, error_count"


def _rows(count: int, sqlite: bool) -> list[tuple[Any, ...]]:
    now: Any = datetime.now(UTC)
    if sqlite:
        now = now.replace(tzinfo=None).isoformat(sep=" ")
    rows = []
    for seq in range(count):
        e = event(seq)
        rows.append((e["type"], 0, "email", 0, e["email"], e["externalId"], json.dumps(e["ctx"]), now, now, now, 0))
    return rows


async def insert_baseline(url: str, count: int, chunk: int = 1000) -> float:
    """Rows per second inserting ``count`` event rows in transactions of ``chunk``; the rows are removed after."""
    sqlite = url.startswith("sqlite")
    rows = _rows(count, sqlite)
    started = time.perf_counter()
    if sqlite:
        path = url.split("///", 1)[1]
        placeholders = ", ".join("?" * 11)
        async with aiosqlite.connect(path) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            for start in range(0, count, chunk):
                await db.executemany(
                    f"INSERT INTO events ({_COLUMNS}) VALUES ({placeholders})", rows[start : start + chunk]
                )
                await db.commit()
            elapsed = time.perf_counter() - started
            await db.execute("DELETE FROM events")
            await db.commit()
    else:
        placeholders = ", ".join(["%s"] * 11)
        async with await psycopg.AsyncConnection.connect(url.replace("+psycopg", "")) as conn:
            for start in range(0, count, chunk):
                async with conn.transaction(), conn.cursor() as cursor:
                    await cursor.executemany(
                        f"INSERT INTO events ({_COLUMNS}) VALUES ({placeholders})", rows[start : start + chunk]
                    )
            elapsed = time.perf_counter() - started
            await conn.execute("TRUNCATE events CASCADE")
            await conn.commit()
    return count / elapsed


def bench_messages(count: int) -> list[bytes]:
    """Messages of the same shape and size as the ones Envoi renders from the bench template."""
    messages = []
    for seq in range(count):
        mime = EmailMessage()
        mime["From"] = "Bench Shop <shop@bench.example>"
        mime["To"] = f"customer{seq}@bench.example"
        mime["Reply-To"] = "help@bench.example"
        mime["Subject"] = f"Bench {seq}"
        mime["Message-ID"] = f"<{seq}.bench@envoi.localhost>"
        mime.set_content(f"Thank you Ada!\nYour order A-{seq} is confirmed.\n" + "- 2 x Notebook: €21.00\n" * 3)
        mime.add_alternative(
            f"<html><body><h1>Thank you Ada!</h1><p>Your order <b>A-{seq}</b> is confirmed.</p><table>"
            + "<tr><td>Notebook</td><td>2</td><td>€21.00</td></tr>" * 3
            + "</table><p>Total: €64.50</p><p>See you soon at Bench Shop.</p></body></html>",
            subtype="html",
        )
        messages.append(mime.as_bytes())
    return messages


async def smtp_baseline(port: int, messages: list[bytes], connections: int) -> float:
    """Messages per second from a raw aiosmtplib client over ``connections`` reused connections."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for index, message in enumerate(messages):
        queue.put_nowait((index, message))

    async def blast() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        try:
            while not queue.empty():
                index, message = queue.get_nowait()
                await client.sendmail("shop@bench.example", [f"customer{index}@bench.example"], message)
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(blast() for _ in range(connections)))
    return len(messages) / (time.perf_counter() - started)
