"""Signed tracking links: the token naming a sent email's event, click redirects signed against open-redirect
abuse, the open pixel and the one-click unsubscribe headers (RFC 8058). Pure functions: no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from html import escape, unescape
from urllib.parse import quote

_MAC_BYTES = 16  # 128 bits: forging one needs 2**128 tries, and keeps links short
_TOKEN = re.compile(r"([1-9a-z][0-9a-z]{0,12})\.([A-Za-z0-9_-]{22})")  # canonical base36 id, 16-byte mac
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

# A tag that can carry a clickable link: <a>, <area>, and Outlook's VML buttons (<v:roundrect href>) that sit in
# conditional comments. Quoted values may hold ">", so the tag is read attribute by attribute.
_LINK_TAG = re.compile(r"""<(?:a|area|v:[a-z]+)(?=[\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""(\s+)([^\s"'>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_URL_NOISE = re.compile(r"[\t\n\r]")  # browsers drop these from URLs (WHATWG URL parser)


def _mac(secret: bytes, *parts: str) -> str:
    message = "\x00".join(parts).encode("utf-8")  # NUL cannot occur in a token: no part can spill into another
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _base36(number: int) -> str:
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
        if not number:
            return "".join(reversed(digits))


def make_token(event_id: int, secret: bytes) -> str:
    """``<base36 event id>.<mac>``: names the event whose email carries it, unforgeable without the secret."""
    if event_id <= 0:
        raise ValueError("event ids are positive")
    name = _base36(event_id)
    return f"{name}.{_mac(secret, 'event', name)}"


def verify_token(token: str, secret: bytes) -> int | None:
    """The event id a token names, or None when it was not made with this secret."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    name, given = match.groups()
    if not hmac.compare_digest(given.encode("ascii"), _mac(secret, "event", name).encode("ascii")):
        return None
    return int(name, 36)


def sign_target(token: str, target: str, secret: bytes) -> str:
    """The signature of a click redirect: only targets Envoi put in an email are redirected to."""
    return _mac(secret, "click", token, target)


def verify_target(token: str, target: str, signature: str, secret: bytes) -> bool:
    expected = sign_target(token, target, secret).encode("ascii")
    return hmac.compare_digest(signature.encode("utf-8"), expected)


def click_url(base_url: str, token: str, target: str, secret: bytes) -> str:
    base = base_url.rstrip("/")
    return f"{base}/t/c/{token}?u={quote(target, safe='')}&s={sign_target(token, target, secret)}"


def open_pixel_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/t/o/{token}.gif"


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def unsubscribe_headers(base_url: str, token: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscription. The RFC wants an https URI: an http ``public_url`` (a development
    install) still gets the headers, which mailbox providers then ignore."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(base_url, token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def track_html(html: str, *, base_url: str, token: str, secret: bytes) -> str:
    """Every http(s) link through the click redirect, and the open pixel before ``</body>``.

    Only the ``href`` values of link tags change; every other byte stays as written, because email HTML
    relies on markup a parser would normalize away (Outlook's conditional comments, VML, odd entities)."""
    base = base_url.rstrip("/")
    untouched = (f"{base}/u/", f"{base}/t/")  # the unsubscribe link, and links tracked already

    def rewrite_href(value: str) -> str | None:
        target = _URL_NOISE.sub("", unescape(value)).strip()
        scheme = target[:8].lower()
        if not (scheme.startswith("http://") or scheme.startswith("https://")) or target.startswith(untouched):
            return None
        return '"' + escape(click_url(base, token, target, secret), quote=True) + '"'

    def rewrite_tag(tag: re.Match[str]) -> str:
        source = tag.group(0)
        for attribute in _ATTRIBUTE.finditer(source):  # whole attributes: an href inside a quoted value is skipped
            if attribute.group(2).lower() != "href":
                continue
            quoted = attribute.group(4)
            if quoted is None:
                return source
            value = quoted[1:-1] if quoted[0] in "\"'" else quoted
            replacement = rewrite_href(value)
            if replacement is None:
                return source
            return source[: attribute.start(4)] + replacement + source[attribute.end(4) :]  # the first href wins
        return source

    tracked = _LINK_TAG.sub(rewrite_tag, html)
    pixel = f'<img src="{open_pixel_url(base, token)}" width="1" height="1" alt="" style="display:none">'
    at = tracked.lower().rfind("</body")
    return tracked + pixel if at < 0 else tracked[:at] + pixel + tracked[at:]
