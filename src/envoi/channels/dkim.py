"""DKIM signatures (RFC 6376, relaxed/relaxed; Ed25519 per RFC 8463) on rendered emails, with a key per sender domain.

Signed with OpenSSL through ``cryptography``: an RSA-2048 signature costs about 0.3 ms there, against 7 ms in
dkimpy's pure-Python RSA, which would cost more CPU than everything else a message needs. dkimpy verifies our
signatures in the tests.

Keys are PEM files named ``<domain>.<selector>.pem`` in one directory: RSA (2048 bits advised, 1024 at least)
or Ed25519, at most one of each per domain. A key for ``example.com`` also signs mail from its subdomains that
have none of their own (DMARC's relaxed alignment accepts it); mail from a domain without a key goes unsigned.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept less

# In the order they are hashed; From is required, the rest are signed when the message has them.
SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to",
)  # fmt: skip
# Named once more than they occur, so that a copy added on the way (a second From) breaks the signature.
OVERSIGNED = frozenset({b"from", b"to", b"subject", b"reply-to"})

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")
_WSP_RUN = re.compile(rb"[ \t]+")
_B64_LINE = 76


class DkimKeyError(ValueError):
    """A key file, or the set of them, cannot be used; the message names the file, never its content."""


def domain_name(value: str) -> str:
    """``value`` as a DNS name in ASCII (an internationalized one as its A-labels), or DkimKeyError."""
    name = value.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise DkimKeyError(f"{value!r} is not a domain name") from None
    if len(name) > 253 or not _DOMAIN.fullmatch(name):
        raise DkimKeyError(f"{value!r} is not a domain name")
    return name


def selector_name(value: str) -> str:
    name = value.strip().lower()
    if not _SELECTOR.fullmatch(name):
        raise DkimKeyError(f"{value!r} is not a selector: one DNS label (letters, digits, - and _)")
    return name


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    path: Path | None = None

    @property
    def algorithm(self) -> Algorithm:
        return "ed25519-sha256" if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else "rsa-sha256"

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_record(self) -> str:
        """The TXT record's text, ``v=DKIM1; k=rsa; p=...``: the public key, derived from the private one."""
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):  # RFC 8463: the raw 32 bytes
            kind, data = "ed25519", public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            der = serialization.PublicFormat.SubjectPublicKeyInfo
            kind, data = "rsa", public.public_bytes(serialization.Encoding.DER, der)
        return f"v=DKIM1; k={kind}; p={base64.b64encode(data).decode()}"

    @property
    def zone_line(self) -> str:
        """The record as a zone file line; TXT strings hold 255 characters at most, so a long one is split."""
        record = self.dns_record
        strings = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
        return f"{self.dns_name}. IN TXT {strings}"

    def sign_data(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(hashlib.sha256(data).digest())  # RFC 8463 signs the SHA-256 hash
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def load_key(path: Path) -> DkimKey:
    """The key of one ``<domain>.<selector>.pem`` file (the selector is its last dot-separated part)."""
    if not path.name.endswith(".pem"):
        raise DkimKeyError(f"{path}: a key file is named <domain>.<selector>.pem")
    domain, _, selector = path.name.removesuffix(".pem").rpartition(".")
    if not domain:
        raise DkimKeyError(f"{path}: a key file is named <domain>.<selector>.pem")
    try:
        domain, selector = domain_name(domain), selector_name(selector)
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except DkimKeyError as error:
        raise DkimKeyError(f"{path}: {error}") from None
    except OSError as error:
        raise DkimKeyError(f"{path}: cannot read it ({error.strerror})") from None
    except (ValueError, TypeError):  # not PEM, encrypted, or a key type cryptography does not know
        raise DkimKeyError(f"{path}: not an unencrypted PEM private key") from None
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(f"{path}: an RSA key of {private_key.key_size} bits; DKIM needs {MIN_RSA_BITS} or more")
    elif not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise DkimKeyError(f"{path}: DKIM keys are RSA or Ed25519")
    return DkimKey(domain, selector, private_key, path)


def load_keys(directory: Path) -> list[DkimKey]:
    """Every ``*.pem`` key of ``directory``, sorted by domain; other files are left alone."""
    try:
        paths = sorted(path for path in directory.iterdir() if path.name.endswith(".pem") and not path.is_dir())
    except OSError as error:
        raise DkimKeyError(f"{directory}: cannot list the DKIM key directory ({error.strerror})") from None
    keys = [load_key(path) for path in paths]
    seen: dict[tuple[str, Algorithm], DkimKey] = {}
    for key in keys:
        other = seen.setdefault((key.domain, key.algorithm), key)
        if other is not key:
            raise DkimKeyError(
                f"{directory}: two {key.algorithm.split('-')[0].upper()} keys for {key.domain} "
                f"({other.selector} and {key.selector}); keep only the one whose DNS record is published"
            )
    return sorted(keys, key=lambda key: (key.domain, key.selector))


class DkimSigner:
    """Adds a DKIM-Signature for each key of the From address's domain (or, failing that, of a parent domain)."""

    def __init__(self, keys: Iterable[DkimKey]) -> None:
        self.keys: dict[str, list[DkimKey]] = {}
        for key in keys:
            self.keys.setdefault(key.domain, []).append(key)

    @classmethod
    def from_directory(cls, directory: Path) -> DkimSigner:
        return cls(load_keys(directory))

    def keys_for(self, domain: str) -> Sequence[DkimKey]:
        labels = domain.split(".")
        for start in range(len(labels) - 1):  # the domain itself, then its parents (never a bare TLD)
            if found := self.keys.get(".".join(labels[start:])):
                return found
        return ()

    def sign(self, data: bytes, *, now: int | None = None) -> bytes:
        """``data`` with a DKIM-Signature header (one per key) in front, or unchanged if no key fits."""
        if not self.keys:
            return data
        data = _crlf(data)
        end = data.find(b"\r\n\r\n")
        head, body = (data[: end + 2], data[end + 4 :]) if end >= 0 else (_ended(data), b"")
        fields = _fields(head)
        sender = next((raw for name, raw in fields if name == b"from"), None)
        keys = self.keys_for(_from_domain(sender)) if sender is not None else ()
        if not keys:
            return data
        names, hashed = _signed_fields(fields)
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest()).decode()
        timestamp = int(time.time()) if now is None else now
        signatures = [_signature(key, names, hashed, body_hash, timestamp) for key in keys]
        return b"".join(signatures) + data


def _signature(key: DkimKey, names: list[bytes], hashed: bytes, body_hash: str, timestamp: int) -> bytes:
    header = (
        f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain}; s={key.selector};\r\n"
        f" t={timestamp}; h={b':'.join(names).decode()};\r\n bh={body_hash};\r\n b="
    ).encode()
    # Hashed as it will read, its b= empty and without the final line break (RFC 6376, 3.7).
    signature = base64.b64encode(key.sign_data(hashed + _relaxed_header(header)[:-2]))
    folded = b"\r\n ".join(signature[i : i + _B64_LINE] for i in range(0, len(signature), _B64_LINE))
    return header + folded + b"\r\n"


def _crlf(data: bytes) -> bytes:
    """Line breaks as CRLF, as they go over SMTP (aiosmtplib converts bare ones too) and so as verifiers see them."""
    crlf = data.count(b"\r\n")
    if crlf == data.count(b"\n") == data.count(b"\r"):
        return data
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def _ended(head: bytes) -> bytes:
    return head if head.endswith(b"\r\n") else head + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Each header field as (lowercase name, the field as written, continuation lines included, CRLF dropped)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head[:-2].split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0].strip(b" \t").lower(), line))
    return fields


def _signed_fields(fields: list[tuple[bytes, bytes]]) -> tuple[list[bytes], bytes]:
    """The h= names and the canonical fields they hash; a name used n times is signed from the bottom up."""
    names: list[bytes] = []
    hashed: list[bytes] = []
    for wanted in SIGNED_HEADERS:
        instances = [raw for name, raw in fields if name == wanted]
        for raw in reversed(instances):
            names.append(wanted)
            hashed.append(_relaxed_header(raw))
        if instances and wanted in OVERSIGNED:
            names.append(wanted)  # no instance left: it hashes nothing, but one added later would count
    return names, b"".join(hashed)


def _relaxed_header(raw: bytes) -> bytes:
    """RFC 6376, 3.4.2: name in lowercase, unfolded, runs of whitespace as one space, none around the colon."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376, 3.4.4: runs of whitespace as one space, none at line ends, no empty lines at the end."""
    if not body.endswith(b"\r\n"):
        body += b"\r\n"  # a last line without its line break is a line all the same
    body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", b"\r\n").rstrip(b"\r\n")  # only CRLF pairs: see _crlf
    return body + b"\r\n" if body else b""


@functools.lru_cache(maxsize=1024)
def _from_domain(raw: bytes) -> str:
    """The domain of a From field's address, as its key is named; a template's sender repeats, hence the cache."""
    address = parseaddr(raw.partition(b":")[2].replace(b"\r\n", b"").decode("utf-8", "replace"))[1]
    try:
        return domain_name(address.rpartition("@")[2]) if "@" in address else ""
    except DkimKeyError:
        return ""
