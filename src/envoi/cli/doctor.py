"""``envoi doctor``: checks a configuration as the running processes see it (the same ENVOI_* variables) and says
what is wrong in plain words, one line per check: ✓ fine, ! worth a look, ✗ broken (exit status 1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.markup import escape

from envoi.cli.common import console
from envoi.cli.doctor_checks import (
    Doctor,
    Finding,
    check_connections,
    check_database,
    check_metrics_dir,
    check_partitions,
    check_pooler,
    check_public_url,
    check_schema,
    check_tracking_secret,
    settings_problems,
)
from envoi.cli.doctor_network import check_bounce_domain, check_dkim, check_providers
from envoi.settings import Settings

Check = Callable[[Doctor], Awaitable[list[Finding]]]
# In this order: later checks read what earlier ones found (the database once reached).
CHECKS: tuple[Check, ...] = (
    check_database,
    check_schema,
    check_partitions,
    check_connections,
    check_pooler,
    check_providers,
    check_dkim,
    check_bounce_domain,
    check_public_url,
    check_tracking_secret,
    check_metrics_dir,
)
SYMBOLS = {"ok": "[green]✓[/]", "warning": "[yellow]![/]", "error": "[red]✗[/]"}

app = typer.Typer()


def dns_server(value: str | None) -> tuple[str, int] | None:
    """HOST, HOST:PORT, or [IPv6]:PORT."""
    if value is None:
        return None
    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{value!r}: expected HOST or HOST:PORT")
    return host, int(port)


@app.command()
def doctor(
    dns: Annotated[
        str | None,
        typer.Option("--dns-server", help="HOST[:PORT] of the DNS server to ask. Default: the system's resolver."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each network check may take.", min=0.1)] = 5.0,
) -> None:
    """Check the configuration (ENVOI_* variables): database, schema, providers, DKIM records, and say what is wrong."""
    server = dns_server(dns)
    try:
        settings = Settings()  # not load_settings(): nothing here logs, what it prints is the point
    except ValidationError as error:
        findings = settings_problems(error)
    except SettingsError as error:  # a list or JSON variable that does not parse
        findings = [Finding("error", "Settings", str(error))]
    else:
        findings = asyncio.run(run_checks(Doctor(settings, timeout, server)))
    for finding in findings:
        show(finding)
    errors = sum(finding.status == "error" for finding in findings)
    warnings = sum(finding.status == "warning" for finding in findings)
    console.print(
        f"\n{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}.",
        highlight=False,
    )
    if errors:
        raise typer.Exit(1)


async def run_checks(doctor: Doctor) -> list[Finding]:
    """Every check, one after the other; a check that fails unexpectedly is reported and the others still run."""
    findings: list[Finding] = []
    try:
        for check in CHECKS:
            try:
                findings += await check(doctor)
            except Exception as error:
                name = check.__name__.removeprefix("check_").replace("_", " ")
                reason = "no answer in time" if isinstance(error, TimeoutError) else type(error).__name__
                findings.append(Finding("error", name.capitalize(), f"could not be checked: {reason}"))
    finally:
        await doctor.aclose()
    return findings


def show(finding: Finding) -> None:
    line = f"{SYMBOLS[finding.status]} [bold]{escape(finding.subject)}[/]: {escape(finding.text)}"
    console.print(line, soft_wrap=True, highlight=False)
    for detail in finding.details:
        console.print(f"    {escape(detail)}", soft_wrap=True, highlight=False)
