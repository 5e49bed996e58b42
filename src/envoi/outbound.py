"""Outbound HTTP to addresses that callers chose (attachment URLs, later webhooks), guarded against SSRF.

The guard sits in the network backend, below TLS and HTTP: every connection resolves the host, refuses it if any
address is not public, then connects to the address it checked, so DNS cannot answer differently in between.
TLS still verifies the certificate for the name in the URL, and the Host header carries that name.
"""

from __future__ import annotations

import asyncio
import email.message
import ipaddress
import mimetypes
import re
import socket
import ssl
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpcore
import httpx

from envoi.channels.base import media_type, safe_filename

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundError(Exception):
    """A request to a caller-chosen URL did not produce a usable answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboundRefused(OutboundError):
    """Permanent: asking again will not help (bad URL, forbidden address, too big, 4xx, redirect loop)."""


class OutboundUnavailable(OutboundError):
    """Temporary: try again later, no sooner than ``retry_after`` seconds when the server said so."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class FetchedFile:
    """A downloaded body. ``url`` is the one asked for; ``filename`` is never empty and has no path in it."""

    url: str
    content_type: str
    filename: str
    data: bytes


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet: not private, loopback, link-local, multicast, reserved..."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone such as fe80::1%eth0
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the kernel connects to the IPv4 address itself
            return is_public_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None and not is_public_address(str(ip.sixtofour)):
            return False
        if ip.is_site_local:  # fec0::/10: deprecated, yet still routed inside some networks
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address; TLS is started on top by httpcore as usual."""

    def __init__(self, *, allow_private: bool, allowed_networks: Collection[IPNetwork]) -> None:
        self._allow_private = allow_private
        self._allowed_networks = tuple(allowed_networks)
        self._inner = httpcore.AnyIOBackend()

    def _permitted(self, address: str) -> bool:
        if self._allow_private or is_public_address(address):
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return any(ip in network for network in self._allowed_networks)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundUnavailable(f"cannot resolve {host}: {exc}") from None
        except TimeoutError:
            raise OutboundUnavailable(f"cannot resolve {host}: timed out") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        forbidden = [address for address in addresses if not self._permitted(address)]
        if forbidden or not addresses:
            raise OutboundRefused(f"{host} resolves to {', '.join(forbidden) or 'nothing'}, not a public address")
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # try the next address, as a browser would
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("unix sockets are not reachable from outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundClient:
    """GETs caller-chosen URLs: HTTPS only, public addresses only, at most ``max_bytes``, within ``timeout``.

    ``allowed_networks`` (CIDR strings) admits chosen non-public networks while ``allow_private`` stays off.
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        allow_private: bool = False,
        allow_http: bool = False,
        ca_file: Path | None = None,
        allowed_networks: Collection[str] = (),
        max_connections: int = 10,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._schemes = ("https", "http") if allow_http else ("https",)
        # As for SMTP: the system store plus the extra CA file, not the CA file instead of it.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        backend = GuardedBackend(
            allow_private=allow_private, allowed_networks=[ipaddress.ip_network(n) for n in allowed_networks]
        )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=max_connections, network_backend=backend, retries=0
        )

    async def fetch(self, url: str) -> FetchedFile:
        """The body at ``url``, following up to three redirects; raises OutboundRefused or OutboundUnavailable."""
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise OutboundRefused(f"not a valid URL: {exc}") from None
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(target)
        except TimeoutError:
            raise OutboundUnavailable(f"{_shown(target)}: no complete answer within {self.timeout:g}s") from None
        except httpcore.TimeoutException:
            raise OutboundUnavailable(f"{_shown(target)}: timed out") from None
        except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
            raise OutboundUnavailable(f"{_shown(target)}: {type(exc).__name__}: {exc}") from None
        except (httpcore.ProtocolError, httpx.InvalidURL) as exc:  # a request that cannot be sent (bad redirect)
            raise OutboundRefused(f"{_shown(target)}: {exc}") from None

    async def _follow(self, original: httpx.URL) -> FetchedFile:
        target = original
        for _hop in range(MAX_REDIRECTS + 1):
            if target.scheme not in self._schemes or not target.host:
                raise OutboundRefused(f"{_shown(target)}: only {' and '.join(self._schemes)} URLs are fetched")
            request_url = httpcore.URL(
                scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
            )
            headers = [(b"Host", target.netloc), (b"User-Agent", b"Envoi"), (b"Accept-Encoding", b"identity")]
            timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)
            async with self._pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as r:
                status = r.status
                if status in _REDIRECTS:
                    location = _header(r, b"location")
                    if not location:
                        raise OutboundRefused(f"{_shown(target)}: HTTP {status} without a Location")
                    target = target.join(location)
                    continue
                _check_status(status, target, _header(r, b"retry-after"))
                data = await self._read(r, target)
                filename = _filename(_header(r, b"content-disposition"), original)
                return FetchedFile(str(original), _content_type(_header(r, b"content-type"), filename), filename, data)
        raise OutboundRefused(f"{_shown(original)}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpcore.Response, target: httpx.URL) -> bytes:
        too_big = OutboundRefused(f"{_shown(target)}: larger than {self.max_bytes} bytes")
        declared = _header(response, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise too_big
        chunks, size = [], 0
        async for chunk in response.aiter_stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_big  # leaving the stream closes the connection: the rest is never read
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _check_status(status: int, target: httpx.URL, retry_after: str | None) -> None:
    if 200 <= status < 300:
        return
    if status in (408, 429) or 500 <= status < 600:
        raise OutboundUnavailable(f"{_shown(target)}: HTTP {status}", retry_after_seconds(retry_after))
    raise OutboundRefused(f"{_shown(target)}: HTTP {status}")


def _header(response: httpcore.Response, name: bytes) -> str | None:
    value = next((v for k, v in response.headers if k.lower() == name), None)
    return value.decode("latin-1").strip() if value is not None else None


def _shown(url: httpx.URL) -> str:
    """The URL for logs and errors: no query string or credentials, which often carry signatures."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def retry_after_seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds, from either of its forms (delay in seconds, or HTTP date)."""
    if not retry_after:
        return None
    if re.fullmatch(r"[0-9]{1,10}", retry_after.strip()):
        return float(retry_after)
    try:
        moment = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _filename(disposition: str | None, url: httpx.URL) -> str:
    """Content-Disposition's filename (RFC 6266, with RFC 2231 filename*), else the URL path's last segment."""
    name = None
    if disposition:
        parsed = email.message.Message()
        parsed["Content-Disposition"] = disposition
        name = parsed.get_filename()
    if not name:
        name = url.path.rsplit("/", 1)[-1]
    return safe_filename(name)


def _content_type(header: str | None, filename: str) -> str:
    found = media_type(header)
    if found and found != "application/octet-stream":
        return found
    return mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"
