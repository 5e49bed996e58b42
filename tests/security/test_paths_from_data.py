"""Names that come from data never become paths outside where they belong.

The CLI commands that take a file or a folder (``template import-adobe FILE``, ``profiles import FILE``,
``dkim generate/records --dir``, ``bench --out``) read and write what the operator running them names: that
is their job, not a traversal. What matters is a name taken from data and turned into a path: a DKIM domain
or selector becomes a key file's name; a key folder holds files whose names are read back as domains; a
snippet or layout name in a template is looked up by name. Attachment file names (from ctx or from a
server's Content-Disposition) are covered in tests/channels/test_mime.py and tests/test_outbound.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from envoi.cli import app as cli
from tests.helpers import create_type

HOSTILE_DOMAINS = [
    "../../outside",
    "..",
    "shop.example/../../outside",
    "shop.example/x",
    "shop.example\\..\\outside",
    "\uff0e\uff0e\uff0foutside",  # full-width dots and solidus, which IDNA folds to "../"
    "%2e%2e%2foutside",
    "shop.example\x00.pem",
    "/absolute.example",
    "a" * 300 + ".example",
]
HOSTILE_SELECTORS = ["../outside", "..", "s1/../../outside", "s1\\x", "s1.pem", "/tmp", "s\x00"]


def _envoi(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"ENVOI_DATA_DIR": str(tmp_path), "ENVOI_DKIM_KEY_DIR": None})


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.mark.parametrize("domain", HOSTILE_DOMAINS)
def test_a_dkim_domain_never_becomes_a_path(tmp_path: Path, domain: str) -> None:
    folder = tmp_path / "data" / "keys"
    before = _files(tmp_path)
    result = _envoi(tmp_path / "data", "dkim", "generate", domain, "--type", "ed25519", "--dir", str(folder))
    assert result.exit_code == 2 and "is not a domain name" in result.output, result.output
    assert _files(tmp_path) == before  # nothing written, not even the folder


@pytest.mark.parametrize("selector", HOSTILE_SELECTORS)
def test_a_dkim_selector_never_becomes_a_path(tmp_path: Path, selector: str) -> None:
    folder = tmp_path / "keys"
    result = _envoi(tmp_path, "dkim", "generate", "shop.example", "--selector", selector, "--dir", str(folder))
    assert result.exit_code == 2 and "is not a selector" in result.output, result.output
    assert _files(tmp_path) == set()


def test_key_file_names_read_back_from_a_folder_are_checked_and_a_planted_link_is_not_shown(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    made = _envoi(tmp_path, "dkim", "generate", "shop.example", "--type", "ed25519", "--dir", str(folder))
    assert made.exit_code == 0, made.output
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the content of a file that is not a key\n")
    os.symlink(secret, folder / "evil.example.s1.pem")  # a link planted among the keys, to a file not a key
    listed = _envoi(tmp_path, "dkim", "records", "--dir", str(folder))
    assert (
        listed.exit_code == 1 and "evil.example.s1.pem" in listed.output and "not an unencrypted PEM" in listed.output
    )
    assert "root:x" not in listed.output  # the file is named, its content never shown

    (folder / "evil.example.s1.pem").unlink()
    (folder / "...pem").write_text("x")  # a name whose domain part would be ".." and nothing
    listed = _envoi(tmp_path, "dkim", "records", "--dir", str(folder))
    assert listed.exit_code == 1 and "...pem" in listed.output, listed.output


def test_a_new_key_is_never_written_through_a_link_planted_in_its_place(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    target = tmp_path / "elsewhere.txt"
    os.symlink(target, folder / "shop.example.envoi.pem")  # dangling: it points where the key would land
    result = _envoi(tmp_path, "dkim", "generate", "shop.example", "--type", "ed25519", "--dir", str(folder))
    assert result.exit_code == 1 and "already exists" in result.output, result.output
    assert not target.exists()


PATH_LIKE_NAMES = ["../../../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "file:///etc/passwd"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # names are looked up, never opened
async def test_snippet_and_layout_names_in_templates_are_looked_up_never_opened(api: httpx.AsyncClient) -> None:
    await create_type(api, "order_confirmation")
    for name in PATH_LIKE_NAMES:
        for tag in ("render", "include"):
            html = f"<p>{{% {tag} '{name}' %}}</p>"
            created = await api.post(
                "/api/v1/templates",
                json={
                    "name": "t",
                    "eventType": "order_confirmation",
                    "email": {"from": "a@example.com", "subject": "s", "html": html},
                },
            )
            assert created.status_code == 201, created.text
            preview = await api.post(f"/api/v1/templates/{created.json()['id']}/preview", json={"ctx": {}})
            assert preview.status_code == 422, preview.text
            assert "does not exist" in preview.text and "root:" not in preview.text
        snippet = await api.put(f"/api/v1/snippets/{name.replace('/', '%2F')}", json={"source": "x"})
        assert snippet.status_code in (404, 422), (name, snippet.status_code)
        layout = await api.post(
            "/api/v1/templates",
            json={
                "name": "l",
                "eventType": "order_confirmation",
                "layout": name,
                "email": {"from": "a@example.com", "subject": "s", "html": "x"},
            },
        )
        assert layout.status_code in (404, 422), (name, layout.text)
