"""Security groups and their members, and what an operator or a key may do. Services never commit; each change
to what someone may do is announced, so that every process's access cache forgets it at commit."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.cache import EVERYTHING, announce_access_change, operator_change
from envoi.access.models import ApiKey, GroupMember, Operator, SecurityGroup
from envoi.access.permissions import Permission, Principal
from envoi.errors import Conflict, NotFound, Unauthorized, ValidationFailed

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


async def list_groups(session: AsyncSession) -> list[SecurityGroup]:
    return list((await session.scalars(select(SecurityGroup).order_by(SecurityGroup.id))).all())


async def find_group(session: AsyncSession, name: str) -> SecurityGroup:
    group = await session.scalar(select(SecurityGroup).where(SecurityGroup.name == name))
    if group is None:
        raise NotFound(f"no security group is named {name!r}", field="group")
    return group


def _permissions(values: Iterable[str]) -> list[str]:
    try:
        return sorted({Permission(value).value for value in values})
    except ValueError:
        known = ", ".join(p.value for p in Permission)
        raise ValidationFailed(f"permissions are among {known}", field="permissions") from None


async def create_group(session: AsyncSession, name: str, label: str, permissions: Iterable[str]) -> SecurityGroup:
    if not _NAME.match(name):
        raise ValidationFailed("lowercase letters, digits, - and _, at most 64", field="name")
    if await session.scalar(select(SecurityGroup.id).where(SecurityGroup.name == name)) is not None:
        raise Conflict(f"a security group is already named {name!r}", field="name")
    group = SecurityGroup(name=name, label=label.strip() or name, permissions=_permissions(permissions))
    session.add(group)
    await session.flush()
    return group


async def update_group(
    session: AsyncSession, name: str, *, label: str | None = None, permissions: Iterable[str] | None = None
) -> SecurityGroup:
    group = await find_group(session, name)
    if group.built_in and permissions is not None:
        raise Conflict(f"{group.label} is built in: its permissions do not change", field="permissions")
    if label is not None:
        group.label = label.strip() or group.label
    if permissions is not None:
        group.permissions = _permissions(permissions)
        await announce_access_change(session, [EVERYTHING])  # rare: simpler than naming every member's keys
    await session.flush()
    return group


async def delete_group(session: AsyncSession, name: str) -> None:
    group = await find_group(session, name)
    if group.built_in:
        raise Conflict(f"{group.label} is built in and cannot be deleted", field="group")
    await session.delete(group)
    await session.flush()
    await announce_access_change(session, [EVERYTHING])


async def add_member(session: AsyncSession, group_name: str, operator_id: int) -> None:
    group = await find_group(session, group_name)
    exists = await session.get(GroupMember, (group.id, operator_id))
    if exists is None:
        session.add(GroupMember(group_id=group.id, operator_id=operator_id))
        await session.flush()
        await announce_access_change(session, [operator_change(operator_id)])


async def remove_member(session: AsyncSession, group_name: str, operator_id: int) -> None:
    group = await find_group(session, group_name)
    await session.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.operator_id == operator_id)
    )
    await announce_access_change(session, [operator_change(operator_id)])


async def set_groups(session: AsyncSession, operator_id: int, names: list[str]) -> None:
    """The operator's groups from now on: joins the named ones, leaves the others."""
    for group in await groups_of(session, operator_id):
        if group.name not in names:
            await remove_member(session, group.name, operator_id)
    for name in names:
        await add_member(session, name, operator_id)


async def groups_of(session: AsyncSession, operator_id: int) -> list[SecurityGroup]:
    rows = await session.scalars(
        select(SecurityGroup)
        .join(GroupMember, GroupMember.group_id == SecurityGroup.id)
        .where(GroupMember.operator_id == operator_id)
        .order_by(SecurityGroup.id)
    )
    return list(rows.all())


async def members_of(session: AsyncSession, group_name: str) -> list[Operator]:
    """The active operators of a group."""
    rows = await session.scalars(
        select(Operator)
        .join(GroupMember, GroupMember.operator_id == Operator.id)
        .join(SecurityGroup, SecurityGroup.id == GroupMember.group_id)
        .where(SecurityGroup.name == group_name, Operator.active.is_(True))
        .order_by(Operator.id)
    )
    return list(rows.all())


async def operator_permissions(session: AsyncSession, operator_id: int) -> frozenset[Permission]:
    found: set[Permission] = set()
    for group in await groups_of(session, operator_id):
        found.update(Permission(value) for value in group.permissions)
    return frozenset(found)


async def operator_principal(session: AsyncSession, operator: Operator) -> Principal:
    permissions = await operator_permissions(session, operator.id) if operator.active else frozenset()
    return Principal(operator.email, permissions, operator_id=operator.id)


async def key_principal(session: AsyncSession, key: ApiKey) -> Principal:
    """A key does what its scopes say; an operator's key, no more than the operator may, and once the operator is
    deactivated it is nobody's (401, as their console sessions)."""
    scopes = frozenset(Permission(scope) for scope in key.scopes if scope in Permission._value2member_map_)
    if key.operator_id is None:
        return Principal(f"api key {key.id} ({key.name})", scopes, key_id=key.id)
    operator = await session.get(Operator, key.operator_id)
    if operator is None or not operator.active:
        raise Unauthorized("the API key's operator is no longer active")
    allowed = await operator_permissions(session, key.operator_id)
    actor = f"{operator.email} (api key {key.id})"
    return Principal(actor, scopes & allowed, operator_id=key.operator_id, key_id=key.id)
