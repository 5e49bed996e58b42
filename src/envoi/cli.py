"""The ``envoi`` command: serve, worker, migrate, apikey."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from envoi.access.groups import add_member
from envoi.access.operators import create_operator, find_operator
from envoi.access.permissions import Permission
from envoi.access.service import create_api_key, is_valid_key, list_api_keys, revoke_api_key
from envoi.app import create_app
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.db.migrate import pending_migrations, upgrade_database
from envoi.delivery.listen import listen_for_events
from envoi.delivery.worker import Worker
from envoi.demo import load_demo_data
from envoi.errors import EnvoiError
from envoi.notifications.failures import watch_failure_rates
from envoi.observability.logging import configure_logging
from envoi.providers.config import ProviderConfigError, static_providers
from envoi.runtime import Runtime
from envoi.server import serve as serve_app
from envoi.settings import Settings

_PERMISSIONS = ", ".join(p.value for p in Permission)
app = typer.Typer(help="Envoi: transactional messaging. Events in, personalized email out.", no_args_is_help=True)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
console = Console()


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _runtime(settings: Settings) -> Runtime:
    """The process's runtime; a provider configured wrongly stops the command with what is wrong."""
    try:
        return Runtime.create(settings)
    except ProviderConfigError as error:
        raise _misconfigured(error) from None


def _misconfigured(error: ProviderConfigError) -> typer.Exit:
    console.print(f"[red]Provider configuration: {error}[/]", soft_wrap=True, highlight=False)
    return typer.Exit(2)


async def _prepare(settings: Settings) -> str:
    """Migrate, load the demo once, and return an API key to print (kept in data_dir between runs)."""
    engine = create_engine(settings)
    try:
        await upgrade_database(engine)
        sessionmaker = create_sessionmaker(engine)
        key_file = settings.data_dir / "api-key"
        async with sessionmaker.begin() as session:
            if settings.load_demo_data:
                await load_demo_data(session)
            if key_file.exists() and await is_valid_key(session, key_file.read_text().strip()):
                return key_file.read_text().strip()
            _key, plaintext = await create_api_key(session, "envoi serve")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(plaintext + "\n")
        return plaintext
    finally:
        await engine.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Run the delivery worker too.")] = True,
) -> None:
    """Start the API (and the delivery worker), applying migrations and loading demo data first."""
    settings = _settings()
    try:
        providers = {config.kind.slot: config.name for config in static_providers(settings) if config.role == "default"}
    except ProviderConfigError as error:
        raise _misconfigured(error) from None
    api_key = asyncio.run(_prepare(settings))
    url = f"http://{host}:{port}"
    database = "SQLite " + str(settings.data_dir / "envoi.db") if not settings.database_url else "your database"
    email = f"provider {providers['email']!r}" if "email" in providers else "the built-in outbox (GET /api/v1/outbox)"
    example = (
        f"curl -X POST {url}/api/v1/events -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' "
        """-d '{"type": "password_reset", "email": "ada@example.com", """
        """"ctx": {"firstName": "Ada", "resetUrl": "https://example.com/r/1"}}'"""
    )
    for line in (
        f"[bold]Envoi[/] is running at {url}  (API docs: {url}/docs)",
        f"API key: [bold green]{api_key}[/]",
        f"Database: {database}. Emails go to {email}.",
        f"Worker: {'on' if worker else 'off (run envoi worker)'}",
        f"Console: {url}/console/  (an administrator to log in as: echo 'a long password' | "
        "envoi operator create --email you@example.com --name You --group administrators)",
        f"Try it:\n  {example}\n  curl {url}/api/v1/outbox -H 'Authorization: Bearer {api_key}'",
    ):
        console.print(line, soft_wrap=True, highlight=False)
    serve_app(
        create_app(settings, run_worker=worker),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.worker_lease_seconds // 4) or 1,
    )


@app.command(name="worker")
def run_worker() -> None:
    """Run the delivery worker alone (for deployments with several processes on PostgreSQL)."""
    settings = _settings()
    uvloop.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    runtime = _runtime(settings)
    try:
        if pending := await pending_migrations(runtime.engine):
            console.print(f"[red]The database needs migrating ({', '.join(pending)}): run envoi migrate.[/]")
            raise typer.Exit(1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(settings, runtime.sessionmaker, runtime.channels, runtime.outbound, runtime.wakeup)
        listener = None
        if not settings.is_sqlite:
            url = settings.resolved_database_url()
            listener = asyncio.create_task(listen_for_events(url, runtime.wakeup, stop))
        alerts = asyncio.create_task(watch_failure_rates(settings, runtime.sessionmaker, stop))
        await worker.run(stop)
        await alerts
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    finally:
        await runtime.aclose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings)
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print("Database is up to date.")


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
    settings = _settings()
    try:
        scopes = [Permission(value) for value in scope] if scope else list(Permission)
    except ValueError:
        console.print(f"[red]--scope is one of {_PERMISSIONS}[/]")
        raise typer.Exit(2) from None

    async def run() -> str:
        runtime = _runtime(settings)
        try:
            await upgrade_database(runtime.engine)
            async with runtime.transaction() as session:
                owner = await find_operator(session, operator) if operator else None
                operator_id = owner.id if owner else None
                _key, plaintext = await create_api_key(session, name, operator_id=operator_id, scopes=scopes)
            return plaintext
        finally:
            await runtime.aclose()

    try:
        plaintext = asyncio.run(run())
    except EnvoiError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"Created API key '{name}'. It is shown once; keep it somewhere safe:", soft_wrap=True)
    print(plaintext)


@apikey_app.command("list")
def apikey_list() -> None:
    """Keys by id, name and prefix; never the keys themselves."""
    settings = _settings()

    async def run() -> Table:
        runtime = _runtime(settings)
        try:
            async with runtime.transaction() as session:
                keys = await list_api_keys(session)
        finally:
            await runtime.aclose()
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
        return table

    console.print(asyncio.run(run()))


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[int, typer.Argument(help="The id shown by envoi apikey list.")]) -> None:
    settings = _settings()

    async def run() -> None:
        runtime = _runtime(settings)
        try:
            async with runtime.transaction() as session:
                await revoke_api_key(session, key_id)
        finally:
            await runtime.aclose()

    asyncio.run(run())
    console.print(f"API key {key_id} is revoked.")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: under 2 minutes.")] = False,
    backend: Annotated[
        list[str] | None, typer.Option(help="sqlite or postgresql; repeat for both (the default).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of benchmarks/results/.")] = None,
    pg_url: Annotated[
        str, typer.Option(envvar="ENVOI_BENCH_PG_URL", help="A PostgreSQL database to create the bench database from.")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
) -> None:
    """Measure Envoi against this machine's own limits (raw inserts, raw SMTP) on SQLite and PostgreSQL."""
    from envoi.bench.main import run_bench

    run_bench(quick=quick, backends=backend or ["sqlite", "postgresql"], out=out, pg_admin_url=pg_url, console=console)


operator_app = typer.Typer(help="Operators: the people who log on to the SOAP API and, later, the console.")
app.add_typer(operator_app, name="operator")


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
    settings = _settings()
    given = "" if sys.stdin.isatty() else sys.stdin.read().strip()
    password = given or secrets.token_urlsafe(18)

    async def run() -> None:
        runtime = _runtime(settings)
        try:
            await upgrade_database(runtime.engine)
            async with runtime.transaction() as session:
                created = await create_operator(session, email=email, name=name, password=password)
                for group_name in group or ():
                    await add_member(session, group_name, created.id)
        finally:
            await runtime.aclose()

    try:
        asyncio.run(run())
    except EnvoiError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
    joined = f" in {', '.join(group)}" if group else "; in no group yet, so allowed nothing (see --group)"
    console.print(f"Created operator {email}{joined}.")
    if not given:
        console.print("One-time password (shown once):")
        print(password)


template_app = typer.Typer(help="Templates: import from Adobe Campaign.")
app.add_typer(template_app, name="template")


@template_app.command("import-adobe")
def template_import_adobe(
    html_file: Annotated[Path, typer.Argument(help="The Adobe template's HTML, with JST expressions.")],
    event_type: Annotated[str, typer.Option("--event-type", help="The event type it is for.")],
    name: Annotated[str, typer.Option(help="The new template's name.")],
    sender: Annotated[str, typer.Option("--from", help="From header, e.g. 'Shop <shop@example.com>'.")],
    subject: Annotated[str, typer.Option(help="Subject, JST allowed.")],
) -> None:
    """Create a draft email template from an Adobe Campaign one; what cannot be converted is listed."""
    from envoi.templates.schemas import AdobeImportIn
    from envoi.templates.service import convert_adobe, create_template

    settings = _settings()
    data = AdobeImportIn.model_validate(
        {
            "name": name,
            "eventType": event_type,
            "email": {"from": sender, "subject": subject, "html": html_file.read_text()},
        }
    )
    converted, left = convert_adobe(data)

    async def run() -> int:
        runtime = _runtime(settings)
        try:
            await upgrade_database(runtime.engine)
            async with runtime.transaction() as session:
                return (await create_template(session, converted, actor="cli")).id
        finally:
            await runtime.aclose()

    try:
        template_id = asyncio.run(run())
    except EnvoiError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"Created draft template {template_id} ('{name}'). Publish it once you have checked it.")
    for field, snippet in left:
        console.print(f"  not converted in {field}: {snippet}", soft_wrap=True, highlight=False, markup=False)


# --- notifications -----------------------------------------------------------------------------------------


@app.command()
def notify(
    title: Annotated[str, typer.Option(help="What it is about, in a few words.")],
    body: Annotated[str, typer.Option(help="The message.")],
    group: Annotated[
        list[str] | None, typer.Option(help="Notify every active member of this security group; repeatable.")
    ] = None,
    operator: Annotated[list[str] | None, typer.Option(help="Notify this operator (login email); repeatable.")] = None,
    link: Annotated[str | None, typer.Option(help="A console path (/console/templates/4) or an address.")] = None,
    category: Annotated[str, typer.Option(help="action_required or info.")] = "info",
    email: Annotated[
        bool, typer.Option("--email", help="Send each an email copy too (to the outbox without SMTP).")
    ] = False,
) -> None:
    """Notify operators in the console (open consoles show it within a second), and by email with --email."""
    from envoi.notifications.email import EmailCopy
    from envoi.notifications.service import Category, Recipients
    from envoi.notifications.service import notify as notify_operators

    settings = _settings()
    if not group and not operator:
        console.print("[red]Say whom to notify: --group and/or --operator.[/]")
        raise typer.Exit(2)
    if category not in {c.value for c in Category}:
        console.print("[red]--category is action_required or info[/]")
        raise typer.Exit(2)

    async def run() -> int:
        runtime = _runtime(settings)
        try:
            async with runtime.transaction() as session:
                notified = await notify_operators(
                    session,
                    Recipients(operators=operator or (), groups=group or ()),
                    title=title,
                    body=body,
                    category=Category(category),
                    link=link,
                    email=EmailCopy.of(settings) if email else None,
                )
            return len(notified)
        finally:
            await runtime.aclose()

    try:
        count = asyncio.run(run())
    except EnvoiError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
    emailed = " and emailed them" if email and count else ""
    console.print(f"Notified {count} operator{'s' if count != 1 else ''}{emailed}.")
