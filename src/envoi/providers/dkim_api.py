"""REST: the DKIM keys that sign outgoing email (``/api/v1/dkim``), with the DNS record to publish for each."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from envoi.access.api import CanManageDeliveries, RuntimeDep
from envoi.providers.dkim import dkim_keys

router = APIRouter(prefix="/api/v1/dkim", tags=["providers"])


class DkimKeyOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    domain: str = Field(description="Mail from this domain, and from its subdomains without a key, is signed.")
    selector: str
    algorithm: str = Field(description="rsa-sha256 or ed25519-sha256.")
    dns_name: str = Field(alias="dnsName", examples=["envoi._domainkey.example.com"])
    record: str = Field(description="The TXT record's value, derived from the private key's public key.")
    key_file: str | None = Field(alias="keyFile")
    providers: list[str] = Field(description="The SMTP providers that sign with it (none: emails go to the outbox).")


class DkimOut(BaseModel):
    keys: list[DkimKeyOut]
    problems: list[str] = Field(description="Key folders that cannot be used now, and why.")


@router.get("", response_model=DkimOut)
async def list_dkim_keys(runtime: RuntimeDep, _who: CanManageDeliveries) -> DkimOut:
    async with runtime.transaction() as session:
        found = await dkim_keys(session, runtime.settings, runtime.providers.static)
    keys = [
        DkimKeyOut(
            domain=used.key.domain,
            selector=used.key.selector,
            algorithm=used.key.algorithm,
            dns_name=used.key.dns_name,
            record=used.key.dns_record,
            key_file=str(used.key.path) if used.key.path else None,
            providers=used.providers,
        )
        for used in found.keys
    ]
    return DkimOut(keys=keys, problems=found.problems)
