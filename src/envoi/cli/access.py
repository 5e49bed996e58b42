"""Who may use Envoi: API keys and operators."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.cache import CACHE_SECONDS
from envoi.access.groups import add_member
from envoi.access.operators import create_operator, find_operator
from envoi.access.permissions import Permission
from envoi.access.service import create_api_key, list_api_keys, revoke_api_key
from envoi.cli.common import console, in_transaction, load_settings

_PERMISSIONS = ", ".join(p.value for p in Permission)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
operator_app = typer.Typer(help="Operators: the people who log on to the console and the SOAP API.")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what will use the key (a service account's name).")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"A permission it carries; repeat for several. Default: all. One of {_PERMISSIONS}."),
    ] = None,
    operator: Annotated[
        str | None, typer.Option(help="The email of the operator it belongs to; it never does more than they may.")
    ] = None,
) -> None:
    """Create a key; it is printed once, on the last line, and stored only as a hash."""
    settings = load_settings()
    try:
        scopes = [Permission(value) for value in scope] if scope else list(Permission)
    except ValueError:
        console.print(f"[red]--scope is one of {_PERMISSIONS}[/]")
        raise typer.Exit(2) from None

    async def create(session: AsyncSession) -> str:
        owner = await find_operator(session, operator) if operator else None
        _key, plaintext = await create_api_key(session, name, operator_id=owner.id if owner else None, scopes=scopes)
        return plaintext

    plaintext = in_transaction(settings, create, migrate=True)
    console.print(f"Created API key '{name}'. It is shown once; keep it somewhere safe:", soft_wrap=True)
    print(plaintext)


@apikey_app.command("list")
def apikey_list() -> None:
    """Keys by id, name and prefix; never the keys themselves."""
    keys = in_transaction(load_settings(), list_api_keys)
    table = Table("id", "name", "operator", "scopes", "prefix", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            str(k.operator_id or "-"),
            "all" if set(k.scopes) >= set(Permission) else ", ".join(k.scopes),
            k.prefix + "…",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[int, typer.Argument(help="The id shown by envoi apikey list.")]) -> None:
    settings = load_settings()
    in_transaction(settings, lambda session: revoke_api_key(session, key_id))  # announced to running servers
    when = f"within {CACHE_SECONDS:g} seconds" if settings.is_sqlite else "at once"
    console.print(f"API key {key_id} is revoked: running servers refuse it {when}.")


@operator_app.command("create")
def operator_create(
    email: Annotated[str, typer.Option(help="The operator's login.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    group: Annotated[
        list[str] | None,
        typer.Option(help="A security group to join (administrators, template_editors, viewers...); repeatable."),
    ] = None,
) -> None:
    """Create an operator. The password is read from standard input; with none given, a one-time password is
    generated and printed."""
    settings = load_settings()
    given = "" if sys.stdin.isatty() else sys.stdin.read().strip()
    password = given or secrets.token_urlsafe(18)

    async def create(session: AsyncSession) -> None:
        created = await create_operator(session, email=email, name=name, password=password)
        for group_name in group or ():
            await add_member(session, group_name, created.id)

    in_transaction(settings, create, migrate=True)
    joined = f" in {', '.join(group)}" if group else "; in no group yet, so allowed nothing (see --group)"
    console.print(f"Created operator {email}{joined}.")
    if not given:
        console.print("One-time password (shown once):")
        print(password)
