"""The checks of ``envoi doctor`` that reach out: each provider (an SMTP session up to AUTH, then QUIT without
sending; a TCP connection for the others), the DKIM records and the bounce domain's MX in DNS. Every one is
bounded by the doctor's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.channels.dkim import DkimKey, DkimKeyError, load_keys
from envoi.channels.smtp import SmtpSettings, make_tls_context
from envoi.cli.doctor_checks import Doctor, Finding
from envoi.providers.config import ProviderConfig, ProviderConfigError, static_providers
from envoi.providers.dkim import dkim_keys
from envoi.providers.kinds import SLOTS
from envoi.providers.service import all_providers

_SOURCES = {"environment": "the environment", "file": "the providers file", "api": "the API"}


def _static(doctor: Doctor) -> tuple[list[ProviderConfig], list[Finding]]:
    try:
        return static_providers(doctor.settings), []
    except ProviderConfigError as error:
        return [], [Finding("error", f"Provider {field}", message) for field, message in error.problems]


async def _providers(doctor: Doctor, static: Sequence[ProviderConfig]) -> tuple[list[ProviderConfig], list[Finding]]:
    """Those of the environment, the file and, when the database answered, the API's table."""
    if doctor.engine is None or not doctor.schema_current:
        note = Finding("warning", "Providers", "those configured through the API not checked: no usable database")
        return list(static), [note]
    async with asyncio.timeout(doctor.timeout), AsyncSession(doctor.engine) as session:
        return await all_providers(session, static), []


async def check_providers(doctor: Doctor) -> list[Finding]:
    static, findings = _static(doctor)
    configs, notes = await _providers(doctor, static)
    findings += notes
    for config in configs:
        subject = f"Provider {config.name}"
        role = config.role or "unused"
        where = f"({config.kind.name}, {config.kind.slot} {role}, from {_SOURCES[config.source]})"
        try:
            status, said = await _probe(config.kind.name, config.settings, doctor.timeout)
        except Exception as error:  # a check must report, never stop the others
            status, said = "error", f"could not be checked: {type(error).__name__}"
        findings.append(Finding(status, subject, f"{said} {where}"))
    served = {config.kind.slot for config in configs if config.role is not None}
    # Not push: many installations send none, and a warning on every run would teach people to skip warnings.
    for channel in (slot for slot in SLOTS if slot in ("email", "sms") and slot not in served):
        said = f"no {channel} provider: {channel} messages stay in the built-in outbox, nothing leaves this machine"
        findings.append(Finding("warning", "Outbox", said))
    return findings


async def _probe(kind: str, settings: BaseModel, within: float) -> tuple[Any, str]:
    if isinstance(settings, SmtpSettings):
        return await probe_smtp(settings, within)
    endpoints = _endpoints(kind, settings)
    if not endpoints:
        return "ok", "configuration valid (its endpoints are the subscriptions' push services)"
    for host, port in endpoints:
        if (problem := await _reach(host, port, within)) is not None:
            return "error", problem
    return "ok", f"configuration valid, {', '.join(f'{h}:{p}' for h, p in endpoints)} reachable"


def _endpoints(kind: str, settings: BaseModel) -> list[tuple[str, int]]:
    if kind == "smpp":
        return [(getattr(settings, "host"), getattr(settings, "port"))]  # noqa: B009 (one model among several)
    urls = [getattr(settings, name) for name in ("sendsms_url", "url", "token_uri") if hasattr(settings, name)]
    found = []
    for url in urls:
        parts = urlsplit(str(url))
        if parts.hostname:
            found.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    return found


async def _reach(host: str, port: int, within: float) -> str | None:
    try:
        async with asyncio.timeout(within):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"{host}:{port} did not answer within {within:g} s"
    except OSError as error:
        return f"cannot connect to {host}:{port}: {os.strerror(error.errno).lower() if error.errno else error}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def probe_smtp(settings: SmtpSettings, within: float) -> tuple[Any, str]:
    """Connect, EHLO, STARTTLS when configured, AUTH when it has credentials, QUIT: everything but a message."""
    place = f"{settings.host}:{settings.port}"
    context = make_tls_context(settings.ca_file)  # as the channel checks the server
    client = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=within, use_tls=settings.mode == "tls",
        start_tls=False, tls_context=context,
    )  # fmt: skip
    done, stage, offers_tls = ["connected to " + place], "connect", False
    try:
        async with asyncio.timeout(within):
            await client.connect()
            stage = "EHLO"
            await client.ehlo()
            if settings.mode == "starttls":
                stage = "STARTTLS"
                await client.starttls()
                done.append("STARTTLS")
            elif settings.mode == "tls":
                done.append("TLS")
            if settings.username:
                stage = "AUTH"
                password = settings.password.get_secret_value() if settings.password else ""
                await client.login(settings.username, password)
                done.append(f"AUTH as {settings.username}")
            offers_tls = client.supports_extension("starttls")
            stage = "QUIT"
            await client.quit()
    except aiosmtplib.SMTPAuthenticationError as error:
        return "error", f"{place} refused the login as {settings.username} ({error.code} {error.message}): check it"
    except TimeoutError:
        return "error", f"{place}: no answer to {stage} within {within:g} s"
    except (aiosmtplib.SMTPException, OSError) as error:  # OSError: refused, unreachable, TLS (ssl.SSLError)
        return "error", f"{place}: {stage} failed: {_smtp_reason(error)}"
    finally:
        client.close()
    if settings.mode == "plain" and offers_tls:
        return "warning", f"{', '.join(done)}; the server offers STARTTLS: add ?starttls=true to use it"
    return "ok", ", ".join(done)


def _smtp_reason(error: BaseException) -> str:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPConnectError) else error
    if isinstance(cause, OSError) and cause.errno:  # asyncio's own text repeats the address
        return os.strerror(cause.errno).lower()
    if isinstance(error, aiosmtplib.SMTPException):
        return error.message
    return f"{type(error).__name__}: {error}"


def resolver(doctor: Doctor) -> dns.asyncresolver.Resolver:
    if doctor.dns_server is None:
        found = dns.asyncresolver.Resolver()
    else:
        found = dns.asyncresolver.Resolver(configure=False)
        found.nameservers = [doctor.dns_server[0]]
        found.port = doctor.dns_server[1]
    found.lifetime = doctor.timeout
    return found


async def _dkim_keys(doctor: Doctor) -> tuple[list[DkimKey], list[Finding]]:
    static, _problems = _static(doctor)  # check_providers reports those
    if doctor.engine is not None and doctor.schema_current:
        async with asyncio.timeout(doctor.timeout), AsyncSession(doctor.engine) as session:
            found = await dkim_keys(session, doctor.settings, static)
        return [used.key for used in found.keys], [Finding("error", "DKIM", problem) for problem in found.problems]
    if doctor.settings.dkim_key_dir is None:
        return [], []
    try:
        return load_keys(doctor.settings.dkim_key_dir), []
    except DkimKeyError as error:
        return [], [Finding("error", "DKIM", str(error))]


async def check_dkim(doctor: Doctor) -> list[Finding]:
    keys, findings = await _dkim_keys(doctor)
    if not keys and not findings:
        return [Finding("ok", "DKIM", "no key: mail goes unsigned (envoi dkim generate DOMAIN makes one)")]
    dns_resolver = resolver(doctor)
    for key in keys:
        findings.append(await _check_dkim_record(dns_resolver, key))
    return findings


async def _check_dkim_record(dns_resolver: dns.asyncresolver.Resolver, key: DkimKey) -> Finding:
    subject = f"DKIM {key.domain}"
    publish = ("publish this TXT record:", key.zone_line)
    try:
        answer = await dns_resolver.resolve(key.dns_name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Finding("error", subject, f"no TXT record at {key.dns_name}", publish)
    except dns.exception.DNSException as error:
        return Finding("error", subject, f"the TXT record at {key.dns_name} cannot be read: {_dns_reason(error)}")
    wanted = _public_key(key.dns_record)
    published = [b"".join(record.strings).decode(errors="replace") for record in answer]
    if any(_public_key(record) == wanted for record in published):
        return Finding("ok", subject, f"the TXT record at {key.dns_name} carries this key ({key.selector})")
    return Finding("error", subject, f"the TXT record at {key.dns_name} carries another public key", publish)


def _public_key(record: str) -> str:
    """The p= tag of a DKIM record, whitespace removed (RFC 6376 allows it inside the base64)."""
    for tag in record.split(";"):
        name, _, value = tag.partition("=")
        if name.strip() == "p":
            return "".join(value.split())
    return ""


def _dns_reason(error: dns.exception.DNSException) -> str:
    if isinstance(error, dns.exception.Timeout):
        return "DNS did not answer in time"
    if isinstance(error, dns.resolver.NoNameservers):
        return "no DNS server answered"
    return type(error).__name__


async def check_bounce_domain(doctor: Doctor) -> list[Finding]:
    domain = doctor.settings.bounce_domain
    if not domain:
        return []
    subject = f"Bounce domain {domain}"
    try:
        answer = await resolver(doctor).resolve(domain, "MX")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        said = "no MX record: reports to bounce+…@ addresses never reach the bounce listener; publish one"
        return [Finding("error", subject, said)]
    except dns.exception.DNSException as error:
        return [Finding("error", subject, f"its MX cannot be read: {_dns_reason(error)}")]
    hosts = sorted((record.preference, str(record.exchange).rstrip(".")) for record in answer)
    return [Finding("ok", subject, f"MX {', '.join(host for _, host in hosts)}")]
