"""``envoi doctor`` against real parts: a migrated database, an SMTP server (aiosmtpd), an SMSC, and a DNS server
started here on 127.0.0.1 that serves the DKIM record and the bounce domain's MX. All ✓, then each thing broken
in turn: one ✗ line that says what is wrong in plain words, and exit status 1."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner, Result

from envoi.channels.dkim import load_key
from envoi.cli import app
from envoi.cli.doctor_checks import Doctor, check_pooler
from envoi.db.partitions import DAYS_AHEAD, PARTITIONED
from envoi.observability.health import expected_revision
from envoi.settings import Settings
from tests.conftest import pg_database
from tests.processes import free_port
from tests.smsc import SmscPeer
from tests.smtp_sink import SmtpSink, start_sink

DOMAIN, SELECTOR, BOUNCES = "shop.example", "envoi", "bounces.shop.example"
PASSWORD = "smtp-password-not-in-output"


@dataclass
class DnsServer:
    """A tiny authoritative server on UDP 127.0.0.1: ``records[(name, type)]`` are its answers, NXDOMAIN otherwise."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, client = self.socket.recvfrom(4096)
            except OSError:  # closed: the test is over
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            texts = self.records.get((name, dns.rdatatype.to_text(question.rdtype)))
            if texts is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                kind = dns.rdatatype.to_text(question.rdtype)
                response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", kind, texts))
            self.socket.sendto(response.to_wire(), client)

    def close(self) -> None:
        self.socket.close()


def txt(record: str) -> str:
    """A TXT record's text in zone syntax: strings of 255 characters at most."""
    return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))


def write_key(folder: Path) -> str:
    """A DKIM key for DOMAIN in ``folder``; returns the TXT record to publish for it."""
    folder.mkdir(parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / f"{DOMAIN}.{SELECTOR}.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return load_key(path).dns_record


@dataclass
class Setup:
    env: dict[str, str]
    dns: DnsServer
    sink: SmtpSink
    record: str  # the DKIM record that matches the key

    def run(self, **changes: str) -> Result:
        return run_doctor(self.env | changes, self.dns.address)


def run_doctor(env: dict[str, str], dns_server: str) -> Result:
    """In-process, with exactly these ENVOI_* variables (none of the test runner's)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("ENVOI_")}
    for key in saved:
        del os.environ[key]
    try:
        return CliRunner().invoke(app, ["doctor", "--dns-server", dns_server, "--timeout", "3"], env=env)
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="module")
def smsc() -> Iterator[SmscPeer]:
    """A real SMSC, on an event loop of its own: the doctor runs its own loop in the test's thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    peer = SmscPeer()
    asyncio.run_coroutine_threadsafe(peer.start(), loop).result(10)
    yield peer
    asyncio.run_coroutine_threadsafe(peer.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def setup(database_url: str, tmp_path: Path, smsc: SmscPeer) -> Iterator[Setup]:
    sink = start_sink(tls=True, username="envoi", password=PASSWORD)  # STARTTLS, then AUTH
    record = write_key(tmp_path / "dkim")
    dns_server = DnsServer(
        {
            (f"{SELECTOR}._domainkey.{DOMAIN}", "TXT"): [txt(record)],
            (BOUNCES, "MX"): ["10 mx.shop.example."],
        }
    )
    env = {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_DATA_DIR": str(tmp_path),
        "ENVOI_SMTP_URL": sink.url,
        "ENVOI_SMTP_CA_FILE": str(sink.ca_file),
        "ENVOI_SMPP_URL": smsc.url,
        "ENVOI_DKIM_KEY_DIR": str(tmp_path / "dkim"),
        "ENVOI_BOUNCE_DOMAIN": BOUNCES,
        "ENVOI_PUBLIC_URL": "https://envoi.shop.example",
        "ENVOI_TRACKING_SECRET": "t" * 40,
        "ENVOI_METRICS_DIR": f"/dev/shm/envoi-doctor-{uuid.uuid4().hex[:8]}",  # a tmpfs
    }
    yield Setup(env, dns_server, sink, record)
    dns_server.close()
    sink.stop()


def lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line[:2] in ("✓ ", "! ", "✗ ")]


def line_of(result: Result, subject: str) -> str:
    found = [line for line in lines(result) if line[2:].startswith(subject + ":")]
    assert len(found) == 1, result.output
    return found[0]


def test_all_checks_pass_on_a_good_configuration(setup: Setup) -> None:
    result = setup.run()
    assert result.exit_code == 0, result.output
    assert all(line.startswith("✓ ") for line in lines(result)), result.output
    assert "0 errors, 0 warnings." in result.output
    assert line_of(result, "Schema").endswith(f"at revision {expected_revision()}, the one this Envoi expects")
    if setup.env["ENVOI_DATABASE_URL"].startswith("postgresql"):
        assert line_of(result, "Partitions").endswith("events can be received for 7 more days after today")
    smtp = line_of(result, "Provider smtp")
    assert f"connected to 127.0.0.1:{setup.sink.port}, STARTTLS, AUTH as envoi" in smtp
    assert "reachable" in line_of(result, "Provider smpp")
    assert f"the TXT record at {SELECTOR}._domainkey.{DOMAIN} carries this key" in line_of(result, f"DKIM {DOMAIN}")
    assert line_of(result, f"Bounce domain {BOUNCES}").endswith("MX mx.shop.example")
    assert setup.sink.messages == []  # checked, never sent
    assert PASSWORD not in result.output


def test_a_wrong_smtp_password_is_named(setup: Setup) -> None:
    result = setup.run(ENVOI_SMTP_URL=setup.sink.url.replace(PASSWORD, "not-the-password"))
    assert result.exit_code == 1, result.output
    smtp = line_of(result, "Provider smtp")
    assert smtp.startswith("✗ ") and "refused the login as envoi (535" in smtp, smtp
    assert "not-the-password" not in result.output
    assert [line[:1] for line in lines(result)].count("✗") == 1, result.output


def test_a_closed_smtp_port_is_named(setup: Setup) -> None:
    port = free_port()
    result = setup.run(ENVOI_SMTP_URL=f"smtp://127.0.0.1:{port}")
    assert result.exit_code == 1, result.output
    smtp = line_of(result, "Provider smtp")
    assert smtp.startswith("✗ ") and f"127.0.0.1:{port}: connect failed: connection refused" in smtp, smtp


def test_a_missing_dkim_record_is_named_with_the_record_to_publish(setup: Setup) -> None:
    del setup.dns.records[(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT")]
    result = setup.run()
    assert result.exit_code == 1, result.output
    assert line_of(result, f"DKIM {DOMAIN}") == f"✗ DKIM {DOMAIN}: no TXT record at {SELECTOR}._domainkey.{DOMAIN}"
    assert f"{SELECTOR}._domainkey.{DOMAIN}. IN TXT " in result.output  # the zone line to publish
    assert setup.record[-40:] in result.output.replace('" "', "")


def test_a_dkim_record_of_another_key_is_named(setup: Setup, tmp_path: Path) -> None:
    other = write_key(tmp_path / "other")
    setup.dns.records[(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT")] = [txt(other)]
    result = setup.run()
    assert result.exit_code == 1, result.output
    dkim = line_of(result, f"DKIM {DOMAIN}")
    assert dkim == f"✗ DKIM {DOMAIN}: the TXT record at {SELECTOR}._domainkey.{DOMAIN} carries another public key"


def test_a_bounce_domain_without_mx_is_named(setup: Setup) -> None:
    del setup.dns.records[(BOUNCES, "MX")]
    result = setup.run()
    assert result.exit_code == 1, result.output
    assert line_of(result, f"Bounce domain {BOUNCES}").startswith(f"✗ Bounce domain {BOUNCES}: no MX record")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_day_partitions_running_out_are_an_error(setup: Setup) -> None:
    url = setup.env["ENVOI_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as connection:  # as if no purge had run for a week
        for table in PARTITIONED:
            for day in range(1, DAYS_AHEAD + 1):
                connection.execute(f"DROP TABLE {table}_{datetime.now(UTC).date() + timedelta(days=day):%Y%m%d}")
    result = setup.run()
    assert result.exit_code == 1, result.output
    assert line_of(result, "Partitions") == (
        "✗ Partitions: events can be received for 0 more days after today: run envoi migrate (it makes them), "
        "and check that the purge workflow runs daily"
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_not_migrated_says_run_envoi_migrate(setup: Setup) -> None:
    with pg_database("envoi_doctor") as empty:
        result = setup.run(ENVOI_DATABASE_URL=empty)
    assert result.exit_code == 1, result.output
    assert line_of(result, "Database").startswith("✓ Database: PostgreSQL ")
    assert line_of(result, "Schema") == "✗ Schema: the database has no Envoi schema: run envoi migrate"
    assert "those configured through the API not checked" in line_of(result, "Providers")


def test_unreachable_database_and_bad_settings_in_plain_words(setup: Setup) -> None:
    port = free_port()
    result = setup.run(ENVOI_DATABASE_URL=f"postgresql://envoi:secret-pw@127.0.0.1:{port}/envoi")
    assert result.exit_code == 1, result.output
    database = line_of(result, "Database")
    assert database.startswith(f"✗ Database: cannot use 127.0.0.1:{port}/envoi: ") and "refused" in database
    assert "secret-pw" not in result.output
    result = setup.run(ENVOI_DATABASE_POOL_SIZE="0", ENVOI_PUBLIC_URL="http://envoi.shop.example")
    assert result.exit_code == 1, result.output
    assert lines(result) == ["✗ ENVOI_DATABASE_POOL_SIZE: Input should be greater than or equal to 1 (given: '0')"]
    result = setup.run(ENVOI_PUBLIC_URL="http://envoi.shop.example")
    assert result.exit_code == 0, result.output  # a warning is not an error
    assert line_of(result, "ENVOI_PUBLIC_URL").startswith("! ENVOI_PUBLIC_URL: http://envoi.shop.example is not https")


async def test_a_pooler_url_without_a_direct_url_is_a_warning(tmp_path: Path) -> None:
    pooled = Settings(database_url="postgresql://envoi@db.internal:6432/envoi", data_dir=tmp_path)
    [finding] = await check_pooler(Doctor(pooled, timeout=1))
    assert finding.status == "warning" and "set ENVOI_DATABASE_DIRECT_URL" in finding.text
    direct = pooled.model_copy(update={"database_direct_url": "postgresql://envoi@db.internal:5432/envoi"})
    assert [f.status for f in await check_pooler(Doctor(direct, timeout=1))] == ["ok"]
    assert await check_pooler(Doctor(Settings(data_dir=tmp_path), timeout=1)) == []  # SQLite: no pooler
