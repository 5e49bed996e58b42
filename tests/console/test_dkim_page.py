"""The DKIM page and ``GET /api/v1/dkim``: each key that signs outgoing email, the providers signing with it and the
DNS record to publish, derived from the private key; a key folder that cannot be used is shown, not hidden."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import SecretStr

from envoi.channels.dkim import load_keys
from envoi.settings import Settings
from tests.console.conftest import InProcess

NO_PEM = serialization.NoEncryption()


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dkim"
    folder.mkdir()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NO_PEM
    (folder / "example.com.envoi.pem").write_bytes(rsa_key.private_bytes(*pem))
    (folder / "example.com.ed.pem").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(*pem))
    return folder


@pytest.fixture
def settings(settings: Settings, key_dir: Path, tmp_path: Path) -> Settings:
    """An SMTP relay (never reached: nothing is sent here), the DKIM keys of ``key_dir``, and the test's folder as
    the one whose files providers made through the API may name."""
    changes = {"smtp_url": SecretStr("smtp://127.0.0.1:9"), "dkim_key_dir": key_dir, "provider_files_dir": tmp_path}
    return settings.model_copy(update=changes)


async def test_the_dkim_page_shows_the_record_to_publish_for_each_key(in_process: InProcess, key_dir: Path) -> None:
    rsa_key, ed_key = sorted(load_keys(key_dir), key=lambda key: key.algorithm, reverse=True)
    assert rsa_key.algorithm == "rsa-sha256"

    admin = await in_process.log_in("admin@example.com")
    page = await admin.get("/console/dkim")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert '<a href="/console/dkim" aria-current="page">DKIM</a>' in page.text
    for key in (rsa_key, ed_key):
        assert key.dns_name in text and key.dns_record in text and key.zone_line in text
    assert str(key_dir) in text
    rows = page.text.split('data-dkim="example.com"')
    assert len(rows) == 3 and all(">smtp<" in row for row in rows[1:])  # the ENVOI_SMTP_URL provider signs

    supervisor = await in_process.log_in("deliveries@example.com")
    assert (await supervisor.get("/console/dkim")).status_code == 200
    viewer = await in_process.log_in("viewer@example.com")
    assert (await viewer.get("/console/dkim")).status_code == 403
    assert 'href="/console/dkim"' not in (await viewer.get("/console/")).text


async def test_the_api_lists_the_keys_and_the_folders_that_cannot_be_used(
    in_process: InProcess, key_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "shop.example.s1.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    async with in_process.api() as api:
        listed = await api.get("/api/v1/dkim")
        assert listed.status_code == 200
        body = listed.json()
        assert body["problems"] == []
        by_algorithm = {key["algorithm"]: key for key in body["keys"]}
        rsa_key = next(key for key in load_keys(key_dir) if key.algorithm == "rsa-sha256")
        assert by_algorithm["rsa-sha256"] == {
            "domain": "example.com",
            "selector": "envoi",
            "algorithm": "rsa-sha256",
            "dnsName": "envoi._domainkey.example.com",
            "record": rsa_key.dns_record,
            "keyFile": str(key_dir / "example.com.envoi.pem"),
            "providers": ["smtp"],
        }
        assert by_algorithm["ed25519-sha256"]["record"].startswith("v=DKIM1; k=ed25519; p=")

        # A provider made through the API may name a folder of its own; one that cannot be used is reported.
        made = await api.post(
            "/api/v1/providers",
            json={
                "name": "relay-b",
                "kind": "smtp",
                "settings": {"url": "smtp://127.0.0.1:9", "dkim_key_dir": str(broken)},
            },
        )
        assert made.status_code == 201, made.text
        body = (await api.get("/api/v1/dkim")).json()
        assert len(body["keys"]) == 2
        assert body["problems"] == [f"{broken / 'shop.example.s1.pem'}: not an unencrypted PEM private key"]

    admin = await in_process.log_in("admin@example.com")
    assert "shop.example.s1.pem: not an unencrypted PEM private key" in (await admin.get("/console/dkim")).text
