"""DKIM signing: emails sent through the whole pipeline to a real SMTP server arrive signed with the key of their
From domain, and dkimpy (an independent implementation) verifies them; tampering breaks the signature; a domain
without a key goes unsigned; ``envoi dkim generate`` writes a key whose printed record verifies its signatures."""

from __future__ import annotations

import re
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import dkim
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from envoi.channels.base import EmailMessage
from envoi.channels.dkim import DkimKey, DkimKeyError, DkimSigner, load_keys
from envoi.channels.mime import render_mime
from envoi.channels.smtp import SmtpChannel, SmtpSettings
from envoi.cli import app as cli
from envoi.providers.config import ProviderConfigError
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import event, published_template, push
from tests.https_server import HttpsServer, Reply
from tests.smtp_sink import SmtpSink, _make_certificates

PDF = b"%PDF-1.4 invoice \x00\x01 " + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ed25519_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def key_dir(tmp_path: Path, rsa_pem: bytes) -> Path:
    folder = tmp_path / "dkim"
    folder.mkdir()
    (folder / "example.com.envoi.pem").write_bytes(rsa_pem)
    return folder


def dns_of(folder: Path) -> Callable[..., bytes | None]:
    """dkimpy's DNS look-up, answered from the records of the folder's keys."""
    records = {f"{key.dns_name}.".encode(): key.dns_record.encode() for key in load_keys(folder)}
    return lambda name, timeout=5: records.get(name)


def verified(raw: bytes, dnsfunc: Callable[..., bytes | None]) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of the message."""
    checker = dkim.DKIM(raw)

    def verify(index: int) -> bool:
        try:
            return bool(checker.verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException:  # a broken signature, said with the reason
            return False

    return [verify(i) for i in range(len(re.findall(rb"(?:^|\r\n)DKIM-Signature:", raw)))]


def tags(raw: bytes, index: int = 0) -> dict[str, str]:
    """The tags of the message's DKIM-Signature number ``index``, unfolded."""
    found = re.findall(rb"(?:^|(?<=\r\n))DKIM-Signature:(.*?)\r\n(?![ \t])", raw, re.S)[index]
    value = re.sub(rb"\s+", b"", found).decode()
    return dict(item.split("=", 1) for item in value.strip(";").split(";"))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certificates(tmp_path_factory.mktemp("dkim-tls"))


@pytest.fixture
def files(certificates: tuple[Path, Path, Path]) -> AsyncIterator[HttpsServer]:
    _ca, cert, key = certificates
    server = HttpsServer("127.0.0.1", cert, key)
    server.routes["/invoice.pdf"] = Reply(200, PDF, {"Content-Type": "application/pdf"})
    yield server
    server.stop()


class Envoi(NamedTuple):
    api: httpx.AsyncClient
    runtime: Runtime


@pytest.fixture
async def envoi(
    settings: Settings, smtp_sink: SmtpSink, key_dir: Path, certificates: tuple[Path, Path, Path]
) -> AsyncIterator[Envoi]:
    """Emails to the SMTP sink, signed with the keys of ``key_dir``; attachments from our HTTPS server."""
    changes = {
        "smtp_url": SecretStr(smtp_sink.url),
        "dkim_key_dir": key_dir,
        "attachment_allow_private_networks": True,
        "attachment_ca_file": certificates[0],
    }
    runtime = Runtime.create(settings.model_copy(update=changes))
    async with await make_client(runtime) as client:
        yield Envoi(client, runtime)
    await runtime.aclose()


async def test_an_email_through_the_pipeline_verifies_and_tampering_breaks_it(
    envoi: Envoi, smtp_sink: SmtpSink, key_dir: Path
) -> None:
    await published_template(envoi.api, text="Hello {{ ctx.firstName }}")
    event_id = await push(envoi.api, ctx={"orderId": "A-1", "firstName": "Ada"})
    await drain(envoi.runtime)
    assert (await event(envoi.api, event_id))["status"] == "processed"
    (received,) = await smtp_sink.wait_for(1)
    raw, dns = received.raw, dns_of(key_dir)

    assert raw.startswith(b"DKIM-Signature: ") and verified(raw, dns) == [True]
    signature = tags(raw)
    assert (signature["v"], signature["a"], signature["c"]) == ("1", "rsa-sha256", "relaxed/relaxed")
    assert (signature["d"], signature["s"]) == ("example.com", "envoi")
    assert signature["h"].split(":") == [
        "from", "from", "to", "to", "subject", "subject", "date", "message-id", "mime-version", "content-type",
        "reply-to", "reply-to",
    ]  # fmt: skip

    body_at = raw.index(b"\r\n\r\n")
    assert b"Hello Ada" in raw[body_at:]
    tampered = {
        "the body": raw[:body_at] + raw[body_at:].replace(b"Hello Ada", b"Hello Eve"),
        "the subject": raw.replace(b"Subject: Order A-1 confirmed", b"Subject: Order A-2 confirmed"),
        "a From added": raw[:body_at] + b"\r\nFrom: Bank <bank@example.net>" + raw[body_at:],
        "a From put on top": b"From: Bank <bank@example.net>\r\n" + raw,
    }
    for what, changed in tampered.items():
        assert changed != raw, what
        assert verified(changed, dns) == [False], what
    # Relaxed canonicalization: what relays may do to whitespace and header case does not break it.
    relaxed = raw.replace(b"\r\nSubject: ", b"\r\nSUBJECT:   ").replace(b"Hello Ada\r\n", b"Hello  Ada \t\r\n")
    assert verified(relaxed, dns) == [True]


async def test_a_domain_without_a_key_is_sent_unsigned_and_a_subdomain_uses_its_parents_key(
    envoi: Envoi, smtp_sink: SmtpSink, key_dir: Path
) -> None:
    await published_template(envoi.api, "unsigned", **{"from": "News <news@other.example>"})
    await published_template(envoi.api, "subdomain", **{"from": "Shop <shop@mail.Example.com>"})
    await push(envoi.api, type="unsigned")
    await push(envoi.api, type="subdomain")
    await drain(envoi.runtime)
    received = {message.message["From"]: message.raw for message in await smtp_sink.wait_for(2)}

    unsigned = received["News <news@other.example>"]
    assert b"DKIM-Signature" not in unsigned and unsigned.startswith(b"From: ")
    subdomain = received["Shop <shop@mail.Example.com>"]
    assert tags(subdomain)["d"] == "example.com" and verified(subdomain, dns_of(key_dir)) == [True]


async def test_html_text_an_attachment_non_ascii_and_long_headers_verify(
    envoi: Envoi, smtp_sink: SmtpSink, key_dir: Path, files: HttpsServer
) -> None:
    long_name = "Boutique Éléphant & Compagnie, service des commandes " * 3
    await published_template(
        envoi.api,
        **{"from": f'"{long_name.strip()}" <shop@example.com>', "replyTo": "Service client <help@example.com>"},
        subject="{{ ctx.subject | default: 'Order' }}",
        html="<p>Bonjour {{ ctx.firstName }}   </p>\n\n<p>{{ ctx.long }}</p>\n\n\n",
        text="Bonjour {{ ctx.firstName }}\t \n{{ ctx.long }}\n\n\n",
    )
    long_text = "une très longue ligne sans fin " * 60
    attachment = [{"url": files.url("/invoice.pdf"), "name": "facture été 2024.pdf"}]
    subjects = [
        "Commande A-1 — merci Zoë, votre colis est en route ✈ " * 4,  # RFC 2047 encoded words, folded
        "Order A-2 " + "confirmed " * 120,  # ASCII over 900 characters, folded at spaces
    ]
    for subject in subjects:
        await push(envoi.api, ctx={"orderId": "A", "firstName": "Zoë", "subject": subject, "long": long_text,
                                   "attachmentURL": attachment})  # fmt: skip
    await drain(envoi.runtime)

    for received in await smtp_sink.wait_for(2):
        mail = received.message
        assert mail.get_content_type() == "multipart/mixed"
        assert [part.get_content() for part in mail.iter_attachments()] == [PDF]
        assert mail["Subject"] in [subject.strip() for subject in subjects]
        assert max(len(line) for line in received.raw.split(b"\r\n")) <= 998
        assert verified(received.raw, dns_of(key_dir)) == [True]


async def test_list_unsubscribe_headers_are_signed(key_dir: Path, smtp_sink: SmtpSink) -> None:
    channel = SmtpChannel(SmtpSettings.from_url(smtp_sink.url).model_copy(update={"dkim_key_dir": key_dir}))
    unsubscribe = f"<https://shop.example.com/u/{'x' * 940}>, <mailto:unsubscribe@example.com?subject=stop>"
    message = EmailMessage(
        ref=1, sender="shop@example.com", to="ada@example.com", subject="News", html="<p>News</p>",
        message_id="<1.x@envoi.localhost>",
        headers={"List-Unsubscribe": unsubscribe, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )  # fmt: skip
    try:
        [outcome] = await channel.send_many([message])
    finally:
        await channel.aclose()
    assert outcome.provider_id  # type: ignore[union-attr]
    (received,) = await smtp_sink.wait_for(1)
    assert "list-unsubscribe:list-unsubscribe-post" in tags(received.raw)["h"]
    assert verified(received.raw, dns_of(key_dir)) == [True]
    forged = received.raw.replace(b"shop.example.com/u/", b"evil.example.net/u/")
    assert verified(forged, dns_of(key_dir)) == [False]


def test_rsa_and_ed25519_keys_of_one_domain_both_sign(key_dir: Path) -> None:
    (key_dir / "example.com.ed.pem").write_bytes(_ed25519_pem())
    message = EmailMessage(ref=1, sender="Shop <shop@example.com>", to="ada@example.com", subject="Hi", text="Hi\n")
    # Bare line feeds and trailing blanks, as a hand-made message may have: signed as SMTP will carry them.
    data = render_mime(message).replace(b"\r\n", b"\n") + b"  \n\n"
    signed = DkimSigner.from_directory(key_dir).sign(data)
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert {tags(signed, 0)["a"], tags(signed, 1)["a"]} == {"rsa-sha256", "ed25519-sha256"}
    assert verified(signed, dns_of(key_dir)) == [True, True]
    assert "k=ed25519" in next(key for key in load_keys(key_dir) if key.selector == "ed").dns_record


def test_a_key_folder_that_cannot_be_used_stops_envoi_naming_it(
    settings: Settings, key_dir: Path, rsa_pem: bytes
) -> None:
    (key_dir / "example.com.s2.pem").write_bytes(rsa_pem)
    with pytest.raises(DkimKeyError, match=r"two RSA keys for example\.com"):
        load_keys(key_dir)
    with pytest.raises(ProviderConfigError, match="ENVOI_DKIM_KEY_DIR"):
        Runtime.create(settings.model_copy(update={"dkim_key_dir": key_dir}))
    (key_dir / "example.com.s2.pem").write_text("not a key")
    with pytest.raises(DkimKeyError, match=r"example\.com\.s2\.pem: not an unencrypted PEM private key"):
        load_keys(key_dir)
    (key_dir / "example.com.s2.pem").unlink()
    other_kind = ec.generate_private_key(ec.SECP256R1())
    (key_dir / "ec.example.s1.pem").write_bytes(
        other_kind.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(DkimKeyError, match="DKIM keys are RSA or Ed25519"):
        load_keys(key_dir)


def _envoi(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"ENVOI_DATA_DIR": str(tmp_path), "ENVOI_DKIM_KEY_DIR": None})


def test_the_cli_writes_a_key_whose_printed_record_verifies_its_signatures(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    result = _envoi(tmp_path, "dkim", "generate", "Shop.Example", "--selector", "s2024", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    path = folder / "shop.example.s2024.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = next(line for line in result.output.splitlines() if " IN TXT " in line)
    name, strings = line.split(" IN TXT ")
    assert name == "s2024._domainkey.shop.example."
    parts = re.findall(r'"([^"]*)"', strings)
    assert len(parts) == 2 and all(len(part) <= 255 for part in parts)  # an RSA-2048 record is longer than 255
    record = "".join(parts)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    assert f"ENVOI_DKIM_KEY_DIR={folder}" in result.output

    message = EmailMessage(ref=1, sender="shop@shop.example", to="ada@example.com", subject="Hi", text="Hi")
    signed = DkimSigner([DkimKey("shop.example", "s2024", _load(path))]).sign(render_mime(message))
    assert dkim.verify(signed, dnsfunc=lambda n, timeout=5: record.encode() if n == name.encode() else None)

    before = path.read_bytes()
    again = _envoi(tmp_path, "dkim", "generate", "shop.example", "--selector", "s2024", "--dir", str(folder))
    assert again.exit_code == 1 and "already exists" in again.output and path.read_bytes() == before
    second = _envoi(tmp_path, "dkim", "generate", "shop.example", "--selector", "s2025", "--dir", str(folder))
    assert second.exit_code == 1 and "already an RSA key" in second.output
    for bad in (["../etc"], ["shop.example", "--selector", "../x"]):
        refused = _envoi(tmp_path, "dkim", "generate", *bad, "--dir", str(folder))
        assert refused.exit_code == 2 and "is not a" in refused.output
    assert sorted(p.name for p in folder.iterdir()) == ["shop.example.s2024.pem"]
    listed = _envoi(tmp_path, "dkim", "records", "--dir", str(folder))
    assert listed.exit_code == 0 and line in listed.output


def _load(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key
