"""REST for administrators: operators, security groups, API keys and the audit log; ``/api/v1/me`` for anyone."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access import groups as group_service
from envoi.access.api import CanManageOperators, RuntimeDep, _bearer, principal_of
from envoi.access.audit import audit, audit_trail
from envoi.access.models import ApiKey, Operator
from envoi.access.operators import create_operator, set_active
from envoi.access.permissions import Permission, Principal
from envoi.access.service import create_api_key, list_api_keys, revoke_api_key
from envoi.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/api/v1", tags=["access"])
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
GroupName = Annotated[str, Path(max_length=64)]


async def _caller(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    return await principal_of(request)


Caller = Annotated[Principal, Depends(_caller)]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class MeOut(_Out):
    actor: str
    operator_id: int | None = Field(alias="operatorId")
    key_id: int | None = Field(alias="keyId")
    permissions: list[str]


class OperatorOut(_Out):
    id: int
    email: str
    name: str
    active: bool
    groups: list[str]
    created_at: datetime = Field(alias="createdAt")


class OperatorCreatedOut(OperatorOut):
    one_time_password: str | None = Field(
        None, alias="oneTimePassword", description="Generated when no password was given; shown once."
    )


class OperatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    password: str | None = Field(None, max_length=1000, description="At least 12 characters; omitted: generated.")
    groups: list[str] = Field(default_factory=list, description="Security group names.")


class OperatorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    active: bool | None = None
    groups: list[str] | None = Field(None, description="The operator's groups from now on (replaces them).")


class GroupOut(_Out):
    name: str
    label: str
    built_in: bool = Field(alias="builtIn")
    permissions: list[str]
    members: list[str] = Field(description="Members' emails.")


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    label: str = Field(max_length=200)
    permissions: list[str]


class GroupPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, max_length=200)
    permissions: list[str] | None = None


class ApiKeyOut(_Out):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart; never the key.")
    operator_id: int | None = Field(alias="operatorId", description="Null: a service account's key.")
    scopes: list[str]
    created_at: datetime = Field(alias="createdAt")
    last_used_at: datetime | None = Field(alias="lastUsedAt", description="To the minute.")
    revoked_at: datetime | None = Field(alias="revokedAt")


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200, description="Who or what uses it (a service account's name).")
    operator_id: int | None = Field(
        None, alias="operatorId", ge=1, le=2**63 - 1, description="The operator it belongs to, if any."
    )
    scopes: list[Permission] = Field(default_factory=lambda: list(Permission))


class AuditOut(_Out):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str = Field(alias="objectType")
    object_id: str = Field(alias="objectId")
    details: dict[str, Any] | None


@router.get("/me", response_model=MeOut)
async def who_am_i(who: Caller) -> MeOut:
    return MeOut(actor=who.actor, operator_id=who.operator_id, key_id=who.key_id, permissions=sorted(who.permissions))


async def _operator_out(session: AsyncSession, operator: Operator) -> OperatorOut:
    groups = [g.name for g in await group_service.groups_of(session, operator.id)]
    return OperatorOut(
        id=operator.id, email=operator.email, name=operator.name, active=operator.active, groups=groups,
        created_at=operator.created_at,
    )  # fmt: skip


async def _operator(session: AsyncSession, operator_id: int) -> Operator:
    operator = await session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist", field="id")
    return operator


@router.get("/operators", response_model=list[OperatorOut])
async def list_operators(runtime: RuntimeDep, _who: CanManageOperators) -> list[OperatorOut]:
    async with runtime.transaction() as session:
        operators = (await session.scalars(select(Operator).order_by(Operator.id))).all()
        return [await _operator_out(session, operator) for operator in operators]


@router.post("/operators", response_model=OperatorCreatedOut, status_code=201)
async def add_operator(body: OperatorIn, runtime: RuntimeDep, who: CanManageOperators) -> OperatorCreatedOut:
    password = body.password or secrets.token_urlsafe(18)
    async with runtime.transaction() as session:
        operator = await create_operator(session, email=body.email, name=body.name, password=password)
        await group_service.set_groups(session, operator.id, body.groups)
        audit(session, who, "created", "operator", operator.id, {"email": operator.email, "groups": body.groups})
        out = await _operator_out(session, operator)
    return OperatorCreatedOut(**out.model_dump(), one_time_password=None if body.password else password)


@router.get("/operators/{operator_id}", response_model=OperatorOut)
async def read_operator(operator_id: Id, runtime: RuntimeDep, _who: CanManageOperators) -> OperatorOut:
    async with runtime.transaction() as session:
        return await _operator_out(session, await _operator(session, operator_id))


@router.patch("/operators/{operator_id}", response_model=OperatorOut)
async def change_operator(
    operator_id: Id, body: OperatorPatch, runtime: RuntimeDep, who: CanManageOperators
) -> OperatorOut:
    changes = body.model_dump(exclude_unset=True)
    async with runtime.transaction() as session:
        operator = await _operator(session, operator_id)
        if changes.get("active") is False and operator_id == who.operator_id:
            raise ValidationFailed("you cannot deactivate yourself", field="active")
        if body.groups is not None and operator_id == who.operator_id and "administrators" not in body.groups:
            mine = [group.name for group in await group_service.groups_of(session, operator_id)]
            if "administrators" in mine:
                raise ValidationFailed("you cannot remove yourself from administrators", field="groups")
        if body.name is not None:
            operator.name = body.name.strip() or operator.name
        if body.active is not None:
            await set_active(session, operator, body.active)
        if body.groups is not None:
            await group_service.set_groups(session, operator.id, body.groups)
        audit(session, who, "changed", "operator", operator.id, changes)
        await session.flush()
        out = await _operator_out(session, operator)
    return out  # deactivated or regrouped: set_active and set_groups had every process forget them at commit


async def _group_out(session: AsyncSession, name: str) -> GroupOut:
    group = await group_service.find_group(session, name)
    members = [operator.email for operator in await group_service.members_of(session, name)]
    return GroupOut(
        name=group.name, label=group.label, built_in=group.built_in, permissions=group.permissions, members=members
    )


@router.get("/groups", response_model=list[GroupOut])
async def list_groups(runtime: RuntimeDep, _who: CanManageOperators) -> list[GroupOut]:
    async with runtime.transaction() as session:
        return [await _group_out(session, group.name) for group in await group_service.list_groups(session)]


@router.post("/groups", response_model=GroupOut, status_code=201)
async def add_group(body: GroupIn, runtime: RuntimeDep, who: CanManageOperators) -> GroupOut:
    async with runtime.transaction() as session:
        group = await group_service.create_group(session, body.name, body.label, body.permissions)
        audit(session, who, "created", "group", group.name, {"permissions": group.permissions})
        return await _group_out(session, group.name)


@router.patch("/groups/{name}", response_model=GroupOut)
async def change_group(name: GroupName, body: GroupPatch, runtime: RuntimeDep, who: CanManageOperators) -> GroupOut:
    async with runtime.transaction() as session:
        await group_service.update_group(session, name, label=body.label, permissions=body.permissions)
        audit(session, who, "changed", "group", name, body.model_dump(exclude_unset=True))
        return await _group_out(session, name)


@router.delete("/groups/{name}", status_code=204)
async def remove_group(name: GroupName, runtime: RuntimeDep, who: CanManageOperators) -> Response:
    async with runtime.transaction() as session:
        await group_service.delete_group(session, name)
        audit(session, who, "deleted", "group", name)
    return Response(status_code=204)


def _key_out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id, "name": key.name, "prefix": key.prefix + "…", "operator_id": key.operator_id,
        "scopes": key.scopes, "created_at": key.created_at, "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }  # fmt: skip


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(runtime: RuntimeDep, _who: CanManageOperators) -> list[ApiKeyOut]:
    async with runtime.transaction() as session:
        return [ApiKeyOut(**_key_out(key)) for key in await list_api_keys(session)]


@router.post("/api-keys", response_model=ApiKeyCreatedOut, status_code=201)
async def add_key(body: ApiKeyIn, runtime: RuntimeDep, who: CanManageOperators) -> ApiKeyCreatedOut:
    async with runtime.transaction() as session:
        if body.operator_id is not None:
            await _operator(session, body.operator_id)
        key, plaintext = await create_api_key(session, body.name, operator_id=body.operator_id, scopes=body.scopes)
        audit(session, who, "created", "api_key", key.id, {"name": key.name, "scopes": key.scopes})
        return ApiKeyCreatedOut(**_key_out(key), key=plaintext)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: Id, runtime: RuntimeDep, who: CanManageOperators) -> Response:
    async with runtime.transaction() as session:
        await revoke_api_key(session, key_id)  # every process refuses it from the commit on
        audit(session, who, "revoked", "api_key", key_id)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditOut])
async def read_audit(
    runtime: RuntimeDep,
    _who: CanManageOperators,
    object_type: Annotated[str | None, Query(alias="objectType", max_length=64)] = None,
    object_id: Annotated[str | None, Query(alias="objectId", max_length=200)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Entries older than this id (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Who created, changed, deleted or revoked what, newest first (templates keep a fuller trail of their own:
    ``/api/v1/templates/{id}/audit``)."""
    async with runtime.transaction() as session:
        entries = await audit_trail(
            session, object_type=object_type, object_id=object_id, before_id=before, limit=limit
        )
    return [AuditOut.model_validate(entry, from_attributes=True) for entry in entries]
