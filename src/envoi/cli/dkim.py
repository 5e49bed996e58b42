"""DKIM keys: ``envoi dkim generate DOMAIN`` writes a private key and prints the DNS record to publish for it."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from rich.markup import escape

from envoi.channels.dkim import DkimKey, DkimKeyError, domain_name, load_key, load_keys, selector_name
from envoi.cli.common import console
from envoi.settings import Settings

dkim_app = typer.Typer(help="DKIM keys, which sign outgoing email for their sender domains.", no_args_is_help=True)


class KeyType(enum.StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"


DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The key folder. Default: ENVOI_DKIM_KEY_DIR, or dkim/ in ENVOI_DATA_DIR."),
]


def _key_dir(settings: Settings, given: Path | None) -> Path:
    return (given or settings.dkim_key_dir or settings.data_dir / "dkim").absolute()


@dkim_app.command()
def generate(
    domain: Annotated[str, typer.Argument(help="The domain of the From addresses to sign: example.com.")],
    selector: Annotated[str, typer.Option(help="The key's name in DNS: <selector>._domainkey.<domain>.")] = "envoi",
    directory: DirOption = None,
    key_type: Annotated[
        KeyType, typer.Option("--type", help="rsa (2048 bits), which every receiver checks; ed25519 beside it.")
    ] = KeyType.RSA,
) -> None:
    """Write a new private key (readable by its owner only; never over an existing file) and print its DNS record."""
    settings = Settings()  # not load_settings(): nothing here logs, what it prints is the point
    try:
        domain, selector = domain_name(domain), selector_name(selector)
    except DkimKeyError as error:
        raise typer.BadParameter(str(error)) from None
    folder = _key_dir(settings, directory)
    path = folder / f"{domain}.{selector}.pem"  # both checked: a DNS name and a label, so no / and no ..
    private_key = (
        ed25519.Ed25519PrivateKey.generate()
        if key_type is KeyType.ED25519
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key = DkimKey(domain, selector, private_key, path)
    _refuse_a_second_key(folder, key)
    _write_private(path, private_key)
    console.print(f"Wrote the private key {escape(str(path))} (mode 600). Keep it secret.", soft_wrap=True)
    console.print("\n1. Publish this TXT record in the DNS zone of the domain:", soft_wrap=True)
    print(key.zone_line)
    console.print(
        "   (in a DNS provider's form, name and value: the value as one string, it splits it itself)", soft_wrap=True
    )
    print(f"   {key.dns_name}")
    print(f"   {key.dns_record}")
    console.print(f"   Check it once published: dig +short TXT {key.dns_name}", soft_wrap=True, highlight=False)
    if settings.dkim_key_dir is not None and settings.dkim_key_dir.absolute() == folder:
        console.print("\n2. Restart Envoi: it signs mail from this domain with the new key.", soft_wrap=True)
    else:
        console.print(
            "\n2. Set this for every envoi serve and envoi worker process, then restart them:", soft_wrap=True
        )
        print(f"   ENVOI_DKIM_KEY_DIR={folder}")


@dkim_app.command()
def records(directory: DirOption = None) -> None:
    """Print the DNS record of every key of the key folder."""
    folder = _key_dir(Settings(), directory)
    try:
        keys = load_keys(folder)
    except DkimKeyError as error:
        console.print(f"[red]{escape(str(error))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    if not keys:
        console.print(f"No DKIM key in {escape(str(folder))}: envoi dkim generate DOMAIN writes one.", soft_wrap=True)
    for key in keys:
        print(key.zone_line)


def _refuse_a_second_key(folder: Path, new: DkimKey) -> None:
    """Envoi signs with one key per domain and type: a second one in the folder would stop it at start."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"{new.domain}.*.pem")):
        try:
            other = load_key(path)
        except DkimKeyError:
            continue  # not a key of this domain after all (a subdomain's name), or one Envoi will name at start
        if other.domain == new.domain and other.algorithm == new.algorithm and other.path != new.path:
            kind = new.algorithm.split("-")[0].upper()
            console.print(
                f"[red]{escape(str(path))} is already an {kind} key for {new.domain}.[/] "
                "To replace it, write the new one elsewhere (--dir), publish its record, wait a day for DNS caches, "
                "then move it into the folder in place of the old one and restart Envoi.",
                soft_wrap=True,
            )
            raise typer.Exit(1)


def _write_private(path: Path, private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: never over an existing file (nor through a link planted there); 0600 from the first byte.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        console.print(f"[red]{escape(str(path))} already exists: it is left as it is.[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    except OSError as error:
        console.print(f"[red]Cannot write {escape(str(path))}: {escape(error.strerror or '')}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
