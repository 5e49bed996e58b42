"""REST: the providers (``/api/v1/providers``), and the delivery-report calls providers make
(``/receipts/<provider>``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from envoi.access.api import CanManageDeliveries, RuntimeDep
from envoi.access.audit import audit
from envoi.errors import Forbidden, NotFound
from envoi.providers.config import ProviderConfig
from envoi.providers.kinds import KINDS
from envoi.providers.routing import announce_providers_changed
from envoi.providers.service import all_providers, create_provider, delete_provider, find_provider, update_provider

router = APIRouter(prefix="/api/v1/providers", tags=["providers"])
# Outside /api/v1: providers call it without an API key (see provider_receipt).
receipts_router = APIRouter(prefix="/receipts", tags=["providers"])
Name = Annotated[str, Path(max_length=64)]
Role = Literal["default", "backup"] | None


class ProviderOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    kind: str
    channel: str
    platform: str | None = Field(description="Push: the devices this provider reaches (ios, android, web).")
    role: Role = Field(description="default or backup for its channel (push: its platform); null: unused.")
    source: Literal["environment", "file", "api"] = Field(
        description="Where it is configured; only api ones change here."
    )
    settings: dict[str, Any] = Field(description="The kind's settings; secrets show as **********.")


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, examples=["relay-eu"])
    kind: str = Field(examples=["smtp"], description="See GET /api/v1/providers/kinds.")
    role: Role = None
    settings: dict[str, Any] = Field(
        default_factory=dict, examples=[{"url": "smtp://envoi:secret@relay.example.net:587?starttls=true"}]
    )


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = None
    settings: dict[str, Any] | None = Field(
        None, description="Only the fields given change; a secret left out or sent back as ********** is kept."
    )


class KindOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    kind: str
    channel: str
    platform: str | None
    description: str
    settings_schema: dict[str, Any] = Field(alias="settingsSchema", description="JSON Schema of the settings.")


def _out(config: ProviderConfig) -> ProviderOut:
    return ProviderOut(
        name=config.name,
        kind=config.kind.name,
        channel=config.kind.channel,
        platform=config.kind.platform,
        role=config.role,
        source=config.source,
        settings=config.settings.model_dump(mode="json"),
    )


@router.get("", response_model=list[ProviderOut])
async def list_providers(runtime: RuntimeDep, _who: CanManageDeliveries) -> list[ProviderOut]:
    async with runtime.transaction() as session:
        return [_out(config) for config in await all_providers(session, runtime.providers.static)]


@router.get("/kinds", response_model=list[KindOut])
async def list_kinds(_who: CanManageDeliveries) -> list[KindOut]:
    return [
        KindOut(
            kind=kind.name,
            channel=kind.channel,
            platform=kind.platform,
            description=kind.description,
            settings_schema=kind.settings_model().model_json_schema(),
        )
        for kind in KINDS.values()
    ]


@router.get("/{name}", response_model=ProviderOut)
async def read_provider(name: Name, runtime: RuntimeDep, _who: CanManageDeliveries) -> ProviderOut:
    async with runtime.transaction() as session:
        return _out(await find_provider(session, runtime.providers.static, name))


@router.post("", response_model=ProviderOut, status_code=201)
async def add_provider(body: ProviderIn, runtime: RuntimeDep, who: CanManageDeliveries) -> ProviderOut:
    async with runtime.transaction() as session:
        config = await create_provider(
            session,
            runtime.providers.static,
            body.name,
            body.kind,
            body.role,
            body.settings,
            runtime.settings.provider_files_dir,
        )
        audit(session, who, "created", "provider", body.name, {"kind": body.kind, "role": body.role})
        await announce_providers_changed(session)  # the other processes read them again at commit
    await runtime.providers.refresh(force=True)
    return _out(config)


@router.patch("/{name}", response_model=ProviderOut)
async def change_provider(
    name: Name, body: ProviderPatch, runtime: RuntimeDep, who: CanManageDeliveries
) -> ProviderOut:
    changes = body.model_dump(exclude_unset=True)
    async with runtime.transaction() as session:
        config = await update_provider(
            session, runtime.providers.static, name, changes, runtime.settings.provider_files_dir
        )
        shown = {"role": changes["role"]} if "role" in changes else {}  # never the settings: they hold secrets
        audit(session, who, "changed", "provider", name, shown | {"fields": sorted(changes.get("settings") or {})})
        await announce_providers_changed(session)
    await runtime.providers.refresh(force=True)
    return _out(config)


@router.delete("/{name}", status_code=204)
async def remove_provider(name: Name, runtime: RuntimeDep, who: CanManageDeliveries) -> Response:
    async with runtime.transaction() as session:
        await delete_provider(session, runtime.providers.static, name)
        audit(session, who, "deleted", "provider", name)
        await announce_providers_changed(session)
    await runtime.providers.refresh(force=True)
    return Response(status_code=204)


@receipts_router.get("/{name}", status_code=204, response_class=Response, operation_id="provider_receipt_get")
@receipts_router.post("/{name}", status_code=204, response_class=Response, operation_id="provider_receipt_post")
async def provider_receipt(name: Name, request: Request, runtime: RuntimeDep) -> Response:
    """A provider's delivery report (Kannel's dlr-url). Not an API key but the signature Envoi put in the URL
    it gave the provider proves the call."""
    live = runtime.providers.live.get(name)
    if live is None:
        await runtime.providers.refresh(force=True, at_most_every=1.0)  # added moments ago, by another process
        live = runtime.providers.live.get(name)
    receipt_from = getattr(live.channel, "receipt_from", None) if live and live.config else None
    if live is None or live.config is None or receipt_from is None:
        raise NotFound(f"no provider named {name!r} takes delivery reports", field="name")
    query = dict(request.query_params)
    if request.method == "POST":
        query |= {k: v for k, v in (await request.form(max_files=0, max_fields=50)).items() if isinstance(v, str)}
    try:
        receipt = receipt_from(query)
    except PermissionError as error:
        raise Forbidden(str(error)) from None
    if receipt is not None:
        await runtime.receipts.record(live.config.kind.channel, name, receipt)
    return Response(status_code=204)
