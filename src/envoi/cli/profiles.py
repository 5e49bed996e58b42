"""Profiles from the command line: import a CSV file (with a progress bar), count them."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
from itertools import islice
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.audit import audit
from envoi.access.permissions import Principal
from envoi.campaigns.audiences import count_audience, list_audiences
from envoi.campaigns.profile_import import ImportResult, read_csv, upsert_profiles
from envoi.campaigns.profiles import CHUNK
from envoi.cli.common import console, in_transaction, load_settings, open_runtime
from envoi.db.migrate import upgrade_database
from envoi.errors import EnvoiError, NotFound
from envoi.settings import Settings

profiles_app = typer.Typer(help="Profiles: import a CSV file, count them.", no_args_is_help=True)
COMMAND_LINE = Principal(actor="command line (envoi profiles import)", permissions=frozenset())
SHOWN = 10  # skipped rows printed; the rest are counted


class ReadFailed(Exception):
    """The file could not be read to the end: what was imported before stays."""


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/]", soft_wrap=True, highlight=False)
    return typer.Exit(1)


def _codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise _fail(f"Unknown encoding {encoding!r} (try utf-8, latin-1, cp1252).") from None
    return "utf-8-sig" if name == "utf-8" else name  # a BOM, as spreadsheets write, is not part of the header


@profiles_app.command("import")
def import_profiles(
    file: Annotated[Path, typer.Argument(help="A CSV file whose first line names the columns.")],
    delimiter: Annotated[str, typer.Option(help="The character between cells (';' from some spreadsheets).")] = ",",
    encoding: Annotated[str, typer.Option(help="The file's character encoding.")] = "utf-8",
) -> None:
    """Create or update a profile per row: the one with its external_id, else the one with its email.

    Columns: email, phone, first_name (or firstName), last_name (or lastName), language, external_id (or
    externalId), subscribed (true/false/yes/no/1/0); any other column is an attribute. Blank cells keep the
    stored value. Rows are committed 1,000 at a time, so an interrupted import can simply be run again."""
    if not file.exists():
        raise _fail(f"No file at {file}.")
    if file.is_dir():
        raise _fail(f"{file} is a directory: give a CSV file.")
    if len(delimiter) != 1:
        raise _fail(f"The delimiter is one character, not {delimiter!r}.")
    codec = _codec(encoding)
    settings = load_settings()
    try:
        stream = file.open("rb")
    except OSError as error:
        raise _fail(f"Cannot read {file}: {error.strerror or error}.") from None
    with stream:
        try:
            result = asyncio.run(_import(settings, stream, file, codec, delimiter))
        except ReadFailed as failure:
            raise _fail(str(failure)) from None
        except EnvoiError as error:
            raise _fail(f"{file}: {error.message}") from None
    _report(result)


async def _import(settings: Settings, stream: BinaryIO, file: Path, codec: str, delimiter: str) -> ImportResult:
    runtime = open_runtime(settings)
    result = ImportResult()
    size = os.fstat(stream.fileno()).st_size
    text = io.TextIOWrapper(stream, encoding=codec, newline="")
    rows = read_csv(text, delimiter=delimiter)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    try:
        await upgrade_database(runtime.engine)
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"Importing {file.name}", total=size)
            while True:
                try:
                    batch = list(islice(rows, CHUNK))
                except (UnicodeDecodeError, csv.Error, OSError) as error:
                    raise ReadFailed(_why(file, codec, error, result)) from None
                if not batch:
                    break
                async with runtime.transaction() as session:  # one transaction per chunk: progress is kept
                    result.add(await upsert_profiles(session, batch, region=settings.default_region))
                progress.update(task, completed=stream.tell())
    finally:
        if result.created or result.updated or result.skipped:
            async with runtime.transaction() as session:
                counts = {"created": result.created, "updated": result.updated, "skipped": len(result.skipped)}
                audit(session, COMMAND_LINE, "imported", "profiles", file.name, counts)
        await runtime.aclose()
    return result


def _why(file: Path, codec: str, error: Exception, done: ImportResult) -> str:
    kept = f"{done.created} created and {done.updated} updated before that are kept"
    if isinstance(error, UnicodeDecodeError):
        return f"{file} is not {codec.removesuffix('-sig')} text: try --encoding latin-1 or cp1252 ({kept})."
    if isinstance(error, csv.Error):
        return f"{file} is not valid CSV: {error} ({kept})."
    return f"Cannot read {file}: {error} ({kept})."


def _report(result: ImportResult) -> None:
    console.print(
        f"Created {result.created}, updated {result.updated}, unchanged {result.unchanged}, "
        f"skipped {len(result.skipped)}.",
        highlight=False,
    )
    for title, rows in (("Skipped rows", result.skipped), ("Imported, with a warning", result.warnings)):
        if not rows:
            continue
        table = Table("line", "column", "reason", title=title, title_justify="left")
        for row in rows[:SHOWN]:
            table.add_row(str(row.line), escape(row.field), escape(row.reason))
        console.print(table)
        if len(rows) > SHOWN:
            console.print(f"… and {len(rows) - SHOWN} more.", highlight=False)


@profiles_app.command("count")
def count_profiles(
    audience: Annotated[str | None, typer.Option(help="Only the profiles of this audience (its name).")] = None,
) -> None:
    """How many profiles there are (in an audience), subscribed, and reachable by a marketing email."""
    settings = load_settings()

    async def count(session: AsyncSession) -> dict[str, int]:
        filters = []
        if audience is not None:
            found = [a for a in await list_audiences(session) if a.name == audience]
            if not found:
                raise NotFound(f"no audience is named {audience!r}")
            filters = found[0].filters
        return await count_audience(session, filters)

    counts = in_transaction(settings, count, migrate=True)
    console.print(
        f"{counts['total']} profiles, {counts['subscribed']} subscribed, "
        f"{counts['reachable']} reachable by a marketing email (subscribed, with an email).",
        highlight=False,
    )
