"""Notifying operators, and each operator's inbox: list, count, mark read. Services never commit.

Ids are what streams resume from (``Last-Event-ID``), so each operator's notifications must become visible in
the order of their ids. SQLite writes one transaction at a time; on PostgreSQL, ``notify`` takes a lock per
recipient until its transaction ends, so a notification with a smaller id can never commit after a larger one
of the same operator was read.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.groups import find_group, members_of
from envoi.access.models import Operator
from envoi.access.operators import find_operator
from envoi.db.base import utcnow
from envoi.errors import NotFound, ValidationFailed
from envoi.notifications.email import EmailCopy, send_email_copies
from envoi.notifications.hub import announce
from envoi.notifications.models import Notification
from envoi.notifications.objects import ObjectRef, console_link, operators_in_roles

_LOCK_SPACE = 0x6E6F  # first key of pg_advisory_xact_lock(int, int): the second is the operator


class Category(enum.StrEnum):
    ACTION_REQUIRED = "action_required"  # something waits for them
    INFO = "info"  # something they should know


@dataclass(frozen=True)
class Recipients:
    """Whom to notify: operators (by id or login), every active member of security groups, and the operators
    holding a role on objects (see objects.py). Someone named twice gets one notification."""

    operators: Sequence[int | str] = ()
    groups: Sequence[str] = ()
    roles_of: Sequence[ObjectRef] = field(default_factory=tuple)


async def recipients_of(session: AsyncSession, recipients: Recipients) -> list[Operator]:
    """The active operators named, in id order, each once. An unknown login or group is a NotFound."""
    found: dict[int, Operator] = {}
    for who in recipients.operators:
        if isinstance(who, int):
            operator = await session.get(Operator, who)
            if operator is None:
                raise NotFound(f"operator {who} does not exist", field="operators")
        else:
            operator = await find_operator(session, who)
        if operator.active:
            found[operator.id] = operator
    for group in recipients.groups:
        await find_group(session, group)
        found.update((operator.id, operator) for operator in await members_of(session, group))
    for ref in recipients.roles_of:
        found.update((operator.id, operator) for operator in await operators_in_roles(session, ref))
    return [found[operator_id] for operator_id in sorted(found)]


def _checked_link(link: str | None) -> str | None:
    """A console path or a web address: what the console opens on a click must not be javascript: or data:."""
    if not link:
        return None
    link = link.strip()
    if len(link) > 2000:
        raise ValidationFailed("a link has at most 2,000 characters", field="link")
    unsafe = "\\" in link or any(ord(c) < 0x20 or ord(c) == 0x7F for c in link)
    if not unsafe and (
        (link.startswith("/") and not link.startswith("//")) or link.lower().startswith(("https://", "http://"))
    ):
        return link
    raise ValidationFailed("a link is a console path (/console/...) or an http(s) address", field="link")


async def notify(
    session: AsyncSession,
    recipients: Recipients,
    *,
    title: str,
    body: str,
    category: Category = Category.INFO,
    link: str | None = None,
    about: ObjectRef | None = None,
    email: EmailCopy | None = None,
) -> list[Notification]:
    """Store one notification per recipient (open consoles show it within a second of the commit) and, with
    ``email`` (``EmailCopy.of(settings)``), send each a copy through the delivery pipeline. ``link`` defaults to
    the console page of ``about``."""
    title, body = title.strip(), body.strip()
    if not title or len(title) > 300:
        raise ValidationFailed("a title has 1 to 300 characters", field="title")
    if len(body) > 10_000:
        raise ValidationFailed("a body has at most 10,000 characters", field="body")
    category = Category(category)
    link = _checked_link(link if link is not None or about is None else console_link(about))
    operators = await recipients_of(session, recipients)
    if not operators:
        return []
    if session.get_bind().dialect.name == "postgresql":
        for operator in operators:  # in id order, so that two notifiers cannot deadlock
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:space, :operator)"),
                {"space": _LOCK_SPACE, "operator": operator.id % 2**31},
            )
    now = utcnow()
    rows = [
        Notification(
            operator_id=operator.id,
            category=category.value,
            title=title,
            body=body,
            link=link,
            object_type=about.type if about else None,
            object_id=about.id if about else None,
            created_at=now,
        )
        for operator in operators
    ]
    session.add_all(rows)
    await session.flush()
    await announce(session, (row.operator_id for row in rows))
    if email is not None:
        await send_email_copies(session, rows, {operator.id: operator for operator in operators}, email)
    return rows


# --- an operator's inbox -----------------------------------------------------------------------------------


async def inbox_owner(session: AsyncSession, operator_id: int | None) -> int | None:
    """The operator whose inbox a caller reads: none for a service account's key or a deactivated operator."""
    if operator_id is None:
        return None
    operator = await session.get(Operator, operator_id)
    return operator_id if operator is not None and operator.active else None


async def list_notifications(
    session: AsyncSession, operator_id: int, *, before_id: int | None = None, unread_only: bool = False, limit: int = 50
) -> list[Notification]:
    """Newest first; ``before_id`` pages back."""
    query = (
        select(Notification)
        .where(Notification.operator_id == operator_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list((await session.scalars(query)).all())


async def newer_than(session: AsyncSession, operator_id: int, after_id: int, *, limit: int = 100) -> list[Notification]:
    """Oldest first: what a stream sends next."""
    rows = await session.scalars(
        select(Notification)
        .where(Notification.operator_id == operator_id, Notification.id > after_id)
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(rows.all())


async def newest_id(session: AsyncSession, operator_id: int) -> int:
    found = await session.scalar(select(func.max(Notification.id)).where(Notification.operator_id == operator_id))
    return int(found or 0)


async def unread_count(session: AsyncSession, operator_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.operator_id == operator_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def mark_read(session: AsyncSession, operator_id: int, notification_id: int) -> Notification:
    """Mark one of the operator's notifications read (again: it keeps its first time). Another operator's is
    a NotFound, as if it did not exist."""
    notification = await session.get(Notification, notification_id)
    if notification is None or notification.operator_id != operator_id:
        raise NotFound(f"notification {notification_id} does not exist")
    if notification.read_at is None:
        notification.read_at = utcnow()
        await announce(session, [operator_id])
    return notification


async def mark_all_read(session: AsyncSession, operator_id: int, *, up_to_id: int | None = None) -> int:
    """Mark the operator's unread notifications read, up to ``up_to_id`` (the newest one they saw) if given;
    returns how many changed."""
    query = (
        update(Notification)
        .where(Notification.operator_id == operator_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if up_to_id is not None:
        query = query.where(Notification.id <= up_to_id)
    changed = (await session.execute(query)).rowcount  # type: ignore[attr-defined]
    if changed:
        await announce(session, [operator_id])
    return int(changed or 0)
