"""Running Envoi: serve (API and worker), a worker alone, migrations, the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from envoi.access.service import create_api_key, is_valid_key
from envoi.app import create_app
from envoi.bounces.service import load_signing_secret
from envoi.cli.common import console, load_settings, misconfigured, open_runtime
from envoi.db.engine import create_engine, create_sessionmaker
from envoi.db.listen import Listener
from envoi.db.migrate import pending_migrations, upgrade_database
from envoi.delivery.listen import ring_on_new_events
from envoi.delivery.worker import Worker
from envoi.demo import load_demo_data
from envoi.notifications.failures import watch_failure_rates
from envoi.observability.metrics import collect_across_processes
from envoi.providers.config import ProviderConfigError, static_providers
from envoi.providers.routing import hear_provider_changes
from envoi.reports.watch import watch_queue
from envoi.server import serve as serve_app
from envoi.settings import Settings
from envoi.webhooks.sender import WebhookSender
from envoi.workflows.scheduler import Scheduler

app = typer.Typer()


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
    bounce_port: Annotated[
        int | None, typer.Option(help="Receive bounces by SMTP on this port (ENVOI_BOUNCE_LISTEN_PORT).")
    ] = None,
) -> None:
    """Start the API (and the delivery worker), applying migrations and loading demo data first."""
    settings = load_settings()
    if bounce_port is not None:
        settings = settings.model_copy(update={"bounce_listen_port": bounce_port})
    if settings.bounce_listen_port is not None and not settings.bounce_domain:
        console.print("[red]The bounce listener needs ENVOI_BOUNCE_DOMAIN: the domain of its return paths.[/]")
        raise typer.Exit(2)
    try:
        providers = {config.kind.slot: config.name for config in static_providers(settings) if config.role == "default"}
    except ProviderConfigError as error:
        raise misconfigured(error) from None
    api_key = asyncio.run(_prepare(settings))
    # With demo data (the quick start), the key is shown to try the API at once; a production host
    # (ENVOI_LOAD_DEMO_DATA=false) keeps it out of its logs: it is in the file, readable by its owner only.
    key_file = settings.data_dir / "api-key"
    shown_key = api_key if settings.load_demo_data else f"$(cat {key_file})"
    url = f"http://{host}:{port}"
    if "public_url" not in settings.model_fields_set:  # links in emails must reach this server, not the default port
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a comparison)
        settings = settings.model_copy(update={"public_url": f"http://{reachable}:{port}"})
    database = "SQLite " + str(settings.data_dir / "envoi.db") if not settings.database_url else "your database"
    email = f"provider {providers['email']!r}" if "email" in providers else "the built-in outbox (GET /api/v1/outbox)"
    example = (
        f"curl -X POST {url}/api/v1/events -H 'Authorization: Bearer {shown_key}' -H 'Content-Type: application/json' "
        """-d '{"type": "password_reset", "email": "ada@example.com", """
        """"ctx": {"firstName": "Ada", "resetUrl": "https://example.com/r/1"}}'"""
    )
    for line in (
        f"[bold]Envoi[/] is running at {url}  (API docs: {url}/docs)",
        f"API key: [bold green]{api_key}[/]" if settings.load_demo_data else f"API key: in {key_file}",
        f"Database: {database}. Emails go to {email}.",
        f"Worker: {'on' if worker else 'off (run envoi worker)'}. Links in emails lead to {settings.public_url} "
        "(ENVOI_PUBLIC_URL).",
        f"Console: {url}/console/  (an administrator to log in as: echo 'a long password' | "
        "envoi operator create --email you@example.com --name You --group administrators)",
        f"Try it:\n  {example}\n  curl {url}/api/v1/outbox -H 'Authorization: Bearer {shown_key}'",
        *_bounce_lines(settings),
    ):
        console.print(line, soft_wrap=True, highlight=False)
    with collect_across_processes(settings):  # /metrics sums the counts of every process of the host
        serve_app(
            create_app(settings, run_worker=worker),
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,  # the worker's, too
            drain_seconds=settings.shutdown_drain_seconds,
        )


def _bounce_lines(settings: Settings) -> list[str]:
    if settings.bounce_listen_port is None:
        return []
    where = f"{settings.bounce_listen_host}:{settings.bounce_listen_port}"
    return [f"Bounces: SMTP on {where} takes reports for bounce+…@{settings.bounce_domain} (its MX must lead here)."]


@app.command(name="worker")
def run_worker() -> None:
    """Run the delivery worker alone (for deployments with several processes on PostgreSQL)."""
    settings = load_settings()
    with collect_across_processes(settings):  # what this worker sends shows on /metrics of the host's API
        uvloop.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    runtime = open_runtime(settings)
    try:
        if pending := await pending_migrations(runtime.engine):
            console.print(f"[red]The database needs migrating ({', '.join(pending)}): run envoi migrate.[/]")
            raise typer.Exit(1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await load_signing_secret(runtime.sessionmaker, settings)  # emails get their VERP return path
        worker = Worker(settings, runtime.sessionmaker, runtime.channels, runtime.outbound, runtime.wakeup)
        listener = None
        if not settings.is_sqlite:  # one LISTEN connection: new events, and providers changed over the API
            listening = Listener(settings.resolved_direct_url())
            ring_on_new_events(listening, runtime.wakeup)
            hear_provider_changes(listening, runtime.providers)
            listener = asyncio.create_task(listening.run(stop))
        alerts = asyncio.create_task(watch_failure_rates(settings, runtime.sessionmaker, stop))
        watching = asyncio.create_task(watch_queue(settings, runtime.sessionmaker, stop))
        webhooks = asyncio.create_task(WebhookSender(settings, runtime.sessionmaker).run(stop))
        # On SQLite, envoi serve runs the scheduler: without PostgreSQL's lock, two processes would both run it.
        scheduler = None
        if settings.scheduler and not settings.is_sqlite:
            scheduler = asyncio.create_task(Scheduler(settings, runtime.sessionmaker).run(stop))
        await worker.run(stop)
        await alerts
        await watching
        await webhooks
        if scheduler is not None:
            await scheduler
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    finally:
        await runtime.aclose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()

    async def run() -> None:
        engine = create_engine(settings)
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print("Database is up to date.")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: under 2 minutes.")] = False,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos", help="Instead: kill workers mid-batch and take the SMTP sink down, on PostgreSQL (see README)."
        ),
    ] = False,
    backend: Annotated[
        list[str] | None, typer.Option(help="sqlite or postgresql; repeat for both (the default).")
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            help="Instead: end-to-end throughput on PostgreSQL per number of worker processes, e.g. 1,2,4, "
            "with CPU per process kind.",
        ),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            envvar="ENVOI_BENCH_PROFILE",
            help="With --workers: profile one worker per count (cProfile) into this folder.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of benchmarks/results/.")] = None,
    pg_url: Annotated[
        str, typer.Option(envvar="ENVOI_BENCH_PG_URL", help="A PostgreSQL database to create the bench database from.")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
) -> None:
    """Measure Envoi against this machine's own limits (raw inserts, raw SMTP) on SQLite and PostgreSQL."""
    from envoi.bench.main import parse_worker_counts, run_bench, run_chaos, run_scaling

    if workers is not None:
        if chaos or (backend and backend != ["postgresql"]):
            console.print("[red]--workers runs alone, on PostgreSQL: several worker processes share its queue.[/]")
            raise typer.Exit(2)
        run_scaling(
            quick=quick,
            counts=parse_worker_counts(workers),
            out=out,
            pg_admin_url=pg_url,
            profile_dir=profile,
            console=console,
        )
        return
    if chaos:
        if backend and backend != ["postgresql"]:
            console.print("[red]The chaos run needs PostgreSQL: several worker processes share its queue.[/]")
            raise typer.Exit(2)
        run_chaos(quick=quick, out=out, pg_admin_url=pg_url, console=console)
        return
    run_bench(quick=quick, backends=backend or ["sqlite", "postgresql"], out=out, pg_admin_url=pg_url, console=console)
