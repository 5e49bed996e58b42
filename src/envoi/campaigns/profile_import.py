"""Importing profiles: a CSV file's rows, created or updated a thousand at a time, deduplicated by external id,
else by email. A blank cell means "not given": it never erases a stored value. Services never commit."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.models import Profile
from envoi.campaigns.profiles import (
    BY_API,
    BY_IMPORT,
    CHUNK,
    COLUMNS,
    NO,
    STORED,
    TEXT_FIELDS,
    YES,
    clean_text,
    slices,
)
from envoi.db.base import utcnow
from envoi.errors import ValidationFailed
from envoi.events.validation import text_problem


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int  # of the file, 1 being the header
    fields: dict[str, str]  # profile field (email, first_name, subscribed…) -> cell
    attributes: dict[str, str]  # any other column -> cell
    problem: tuple[str, str] | None = None  # (field, reason) when the row could not be read at all


@dataclass(frozen=True, slots=True)
class SkippedRow:
    line: int
    field: str
    reason: str


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # matched a profile and changed nothing: importing a file twice gives only these
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[SkippedRow] = field(default_factory=list)  # imported, but something in it was not applied

    def add(self, other: ImportResult) -> None:
        self.created, self.updated = self.created + other.created, self.updated + other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.warnings += other.warnings


def read_csv(lines: Iterable[str], *, delimiter: str = ",") -> Iterator[ImportRow]:
    """The rows of a CSV file whose first line names the columns (a UTF-8 BOM is ignored). Raises
    ValidationFailed (field ``header``) when the header is unusable, csv.Error on malformed quoting."""
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ValidationFailed("the file is empty: its first line must name the columns", field="header")
    names = [cell.strip() for cell in header]
    names[0] = names[0].removeprefix("\ufeff").strip()
    known = [COLUMNS.get(name.lower()) for name in names]
    for index, name in enumerate(names):
        if not name:
            raise ValidationFailed(f"column {index + 1} of the header has no name", field="header")
        if known[index] is None and len(name) > 100:
            raise ValidationFailed(f"column {index + 1}: attribute names have at most 100 characters", field="header")
    keys = [k or n for k, n in zip(known, names, strict=True)]
    if duplicate := next((k for i, k in enumerate(keys) if k in keys[:i]), None):
        raise ValidationFailed(f"the header names {duplicate!r} twice", field="header")
    if "email" not in keys and "external_id" not in keys:
        raise ValidationFailed("the header needs an email or an external_id column", field="header")
    last = reader.line_num
    for cells in reader:
        line, last = last + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(names):
            reason = f"{len(cells)} cells but the header names {len(names)} columns"
            yield ImportRow(line, {}, {}, problem=("row", reason))
            continue
        fields = {k: c for k, c, f in zip(keys, cells, known, strict=False) if f}
        attributes = {k: c for k, c, f in zip(keys, cells, known, strict=False) if not f}
        yield ImportRow(line, fields, attributes)


class _Clash(Exception):
    """A row that names two different profiles."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(slots=True)
class _Target:
    """A profile an import row goes to: one stored (id) or one this chunk creates (line)."""

    values: dict[str, Any]
    id: int | None = None
    line: int = 0
    dirty: bool = False

    def __str__(self) -> str:
        return f"profile {self.id}" if self.id is not None else f"the profile of line {self.line}"


def _row_values(row: ImportRow, region: str | None, result: ImportResult) -> dict[str, Any] | None:
    """The row's given values, checked; None (and the row skipped) at its first problem."""
    if row.problem:
        result.skipped.append(SkippedRow(row.line, *row.problem))
        return None
    values: dict[str, Any] = {}
    for name, cell in row.fields.items():
        try:
            if name == "subscribed":
                word = cell.strip().lower()
                if word and word not in YES | NO:
                    raise ValueError("expected true, false, yes, no, 1 or 0")
                if word:
                    values[name] = word in YES
            elif (text := clean_text(name, cell, region)) is not None:
                values[name] = text
        except ValueError as error:
            result.skipped.append(SkippedRow(row.line, name, f"{cell.strip()!r} is not valid: {error}"))
            return None
    attributes = {key: cell.strip() for key, cell in row.attributes.items() if cell.strip()}
    if problem := text_problem(attributes, "attributes"):
        result.skipped.append(SkippedRow(row.line, problem[0].partition(".")[2] or "attributes", problem[1]))
        return None
    if "email" not in values and "external_id" not in values:
        result.skipped.append(SkippedRow(row.line, "email", "the row has neither an email nor an external id"))
        return None
    values["attributes"] = attributes
    return values


class _Chunk:
    """Up to CHUNK rows matched against the stored profiles and each other, then written in bulk."""

    def __init__(self, result: ImportResult, now: datetime) -> None:
        self.result, self.now = result, now
        self.by_key: dict[tuple[str, str], _Target] = {}  # ("email" or "external_id", value) -> target
        self.targets: list[_Target] = []
        self.loaded: set[int] = set()

    async def load(self, session: AsyncSession, rows: list[tuple[int, dict[str, Any]]]) -> None:
        stored = [getattr(Profile, name) for name in STORED]
        for name in ("external_id", "email"):
            wanted = {values[name] for _, values in rows if name in values}
            query = select(Profile.id, *stored).where(getattr(Profile, name).in_(wanted))
            for row in (await session.execute(query)).all() if wanted else ():
                if row.id in self.loaded:
                    continue  # found by both its external id and its email: one target
                self.loaded.add(row.id)
                target = _Target({name: getattr(row, name) for name in STORED}, id=row.id)
                self._index(target)

    def _index(self, target: _Target) -> None:
        self.targets.append(target)
        for name in ("email", "external_id"):
            if target.values[name] is not None:
                self.by_key[name, target.values[name]] = target

    def match(self, values: dict[str, Any]) -> _Target | None:
        """The profile the row goes to (external id first, else email); None for a new one. Raises _Clash when
        the row names two different profiles."""
        ext, email = values.get("external_id"), values.get("email")
        by_ext = self.by_key.get(("external_id", ext)) if ext else None
        by_email = self.by_key.get(("email", email)) if email else None
        if by_ext and by_email and by_ext is not by_email:
            raise _Clash("email", f"external id {ext!r} is {by_ext}'s but email {email!r} is {by_email}'s")
        if by_ext is None and by_email and ext and by_email.values["external_id"] not in (None, ext):
            known = by_email.values["external_id"]
            raise _Clash("external_id", f"email {email!r} is {by_email}'s, whose external id is {known!r}")
        return by_ext or by_email

    def apply(self, line: int, target: _Target, values: dict[str, Any]) -> bool:
        """The row's values onto the target; True if anything changed."""
        stored, changed = target.values, False
        for name in TEXT_FIELDS:
            if name in values and stored[name] != values[name]:
                if name in ("email", "external_id"):
                    if stored[name] is not None:
                        self.by_key.pop((name, stored[name]), None)
                    self.by_key[name, values[name]] = target
                stored[name], changed = values[name], True
        merged = stored["attributes"] | values["attributes"]
        if merged != stored["attributes"]:
            stored["attributes"], changed = merged, True
        subscribed = values.get("subscribed")
        if subscribed is False and stored["subscribed"]:
            stored.update(subscribed=False, unsubscribed_at=self.now, unsubscribed_how=BY_IMPORT)
            changed = True
        elif subscribed and not stored["subscribed"]:
            if stored["unsubscribed_how"] in (BY_IMPORT, BY_API):
                stored.update(subscribed=True, unsubscribed_at=None, unsubscribed_how=None)
                changed = True
            else:  # they unsubscribed themselves: only an operator's resubscribe (API) undoes that
                how = stored["unsubscribed_how"]
                reason = f"{target} unsubscribed themselves ({how}): an import does not subscribe them again"
                self.result.warnings.append(SkippedRow(line, "subscribed", reason))
        target.dirty |= changed
        return changed

    def add(self, line: int, values: dict[str, Any]) -> None:
        target = _Target({name: None for name in STORED} | {"attributes": {}, "subscribed": True}, line=line)
        self._index(target)
        self.apply(line, target, values)
        self.result.created += 1

    async def write(self, session: AsyncSession, originals: dict[int, tuple[Any, Any]]) -> None:
        changed = [t for t in self.targets if t.id is not None and t.dirty]
        moved = [{"id": t.id, "email": None, "external_id": None} for t in changed if _moved(t, originals)]
        if moved:  # free the emails and external ids that change first: another profile may take one over
            await session.execute(update(Profile), moved)
        if changed:
            rows = [{"id": t.id, "updated_at": self.now, **t.values} for t in changed]
            await session.execute(update(Profile), rows)
        new = [t.values | {"created_at": self.now, "updated_at": self.now} for t in self.targets if t.id is None]
        if new:
            await session.execute(insert(Profile), new)


def _moved(target: _Target, originals: dict[int, tuple[Any, Any]]) -> bool:
    assert target.id is not None
    return originals[target.id] != (target.values["email"], target.values["external_id"])


async def _upsert_chunk(
    session: AsyncSession, rows: list[ImportRow], region: str | None, now: datetime, result: ImportResult
) -> None:
    checked = [(row.line, values) for row in rows if (values := _row_values(row, region, result)) is not None]
    chunk = _Chunk(result, now)
    await chunk.load(session, checked)
    originals = {t.id: (t.values["email"], t.values["external_id"]) for t in chunk.targets if t.id is not None}
    for line, values in checked:
        try:
            target = chunk.match(values)
        except _Clash as clash:
            result.skipped.append(SkippedRow(line, clash.field, clash.reason))
            continue
        if target is None:
            chunk.add(line, values)
        elif chunk.apply(line, target, values):
            result.updated += 1
        else:
            result.unchanged += 1
    await chunk.write(session, originals)


async def upsert_profiles(
    session: AsyncSession, rows: Iterable[ImportRow], *, region: str | None = None, now: datetime | None = None
) -> ImportResult:
    """Create or update a profile per row, CHUNK rows per round of queries. A row goes to the profile with its
    external id, else to the one with its email; a row naming two different profiles is skipped, never merged.
    Blank cells leave stored values alone; attribute columns are merged into the stored attributes (as text);
    subscribed=false unsubscribes (``how``: import); true subscribes again only those an import or the API
    unsubscribed."""
    result = ImportResult()
    for batch in slices(rows, CHUNK):
        await _upsert_chunk(session, batch, region, now or utcnow(), result)
    await session.flush()
    return result
