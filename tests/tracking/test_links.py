"""Tokens, signed click targets and the rewriting of an email's HTML: pure functions, no database."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import lxml.html
import pytest

from envoi.tracking.links import (
    make_token,
    sign_target,
    track_html,
    unsubscribe_headers,
    unsubscribe_url,
    verify_target,
    verify_token,
)

SECRET = b"a secret for tests"
BASE = "https://envoi.example.com"
TOKEN = make_token(1234, SECRET)


def hrefs(html: str) -> list[str]:
    """The links as a browser reads them (entities decoded), by an HTML parser other than ours."""
    return [a.get("href") for a in lxml.html.fromstring(html).iter("a")]


def click_target(href: str) -> tuple[str, str]:
    """The target and signature a tracked link carries, decoded as the endpoint will decode them."""
    query = parse_qs(urlsplit(href).query)
    return query["u"][0], query["s"][0]


def test_a_token_names_its_event_and_only_verifies_with_its_secret() -> None:
    token = make_token(9_007_199_254_740_993, SECRET)
    assert verify_token(token, SECRET) == 9_007_199_254_740_993
    assert verify_token(token, b"another secret") is None
    name, mac = TOKEN.split(".")
    assert len(TOKEN) < 32 and name == "ya"  # 1234 in base 36: short links
    assert verify_token(f"yb.{mac}", SECRET) is None  # another event, this event's mac


@pytest.mark.parametrize(
    "forged", ["", ".", "ya", "YA.{mac}", "0ya.{mac}", "+ya.{mac}", "y_a.{mac}", "ya.{mac}=", "ya.{mac}x", "ya\n.x"]
)
def test_malformed_or_non_canonical_tokens_do_not_verify(forged: str) -> None:
    assert verify_token(forged.format(mac=TOKEN.split(".")[1]), SECRET) is None


def test_event_ids_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make_token(0, SECRET)


def test_a_click_signature_binds_the_target_to_the_token() -> None:
    signature = sign_target(TOKEN, "https://shop.example/a", SECRET)
    assert verify_target(TOKEN, "https://shop.example/a", signature, SECRET)
    assert not verify_target(TOKEN, "https://evil.example/a", signature, SECRET)
    assert not verify_target(make_token(1235, SECRET), "https://shop.example/a", signature, SECRET)
    assert not verify_target(TOKEN, "https://shop.example/a", signature[:-1] + "é", SECRET)


def test_http_and_https_links_go_through_the_signed_redirect() -> None:
    html = "<p><a href=\"https://shop.example/sale\">Sale</a> <A HREF='http://blog.example/'>Blog</A></p>"
    tracked = track_html(html, base_url=BASE, token=TOKEN, secret=SECRET)
    links = hrefs(tracked)
    assert len(links) == 2
    for link, target in zip(links, ["https://shop.example/sale", "http://blog.example/"], strict=True):
        assert link.startswith(f"{BASE}/t/c/{TOKEN}?")
        assert click_target(link) == (target, sign_target(TOKEN, target, SECRET))


def test_other_links_stay_exactly_as_written() -> None:
    untouched = (
        '<a href="mailto:help@example.com">mail</a><a href="tel:+33123456789">call</a><a href="#top">top</a>'
        f'<a href="/relative">rel</a><a href="{BASE}/u/{TOKEN}">Unsubscribe</a><a name="top">anchor</a>'
        '<link rel="stylesheet" href="https://cdn.example/s.css"><div data-href="https://x.example/">d</div>'
        '<a title=\'see href="https://x.example/"\' href="#x">t</a><a href="javascript:alert(1)">js</a>'
    )
    tracked = track_html(f"<html><body>{untouched}</body></html>", base_url=BASE, token=TOKEN, secret=SECRET)
    assert tracked.startswith(f"<html><body>{untouched}<img ")


def test_entity_escaped_query_strings_survive_the_rewrite() -> None:
    html = '<a href="https://shop.example/p?a=1&amp;b=%C3%A9&amp;c=x+y#frag">p</a>'
    (link,) = hrefs(track_html(html, base_url=BASE, token=TOKEN, secret=SECRET))
    target, signature = click_target(link)
    assert target == "https://shop.example/p?a=1&b=%C3%A9&c=x+y#frag"
    assert verify_target(TOKEN, target, signature, SECRET)


def test_unquoted_and_whitespace_padded_hrefs_and_outlook_buttons_are_tracked() -> None:
    html = (
        "<a href=https://a.example/x>a</a><a href=' https://b.example/\n'>b</a>"
        '<!--[if mso]><v:roundrect href="https://c.example/" style="height:40px"></v:roundrect><![endif]-->'
    )
    tracked = track_html(html, base_url=BASE, token=TOKEN, secret=SECRET)
    assert [click_target(link)[0] for link in hrefs(tracked)] == ["https://a.example/x", "https://b.example/"]
    assert f'<v:roundrect href="{BASE}/t/c/{TOKEN}?u=https%3A%2F%2Fc.example%2F&amp;s=' in tracked


def test_the_rest_of_the_html_is_kept_byte_for_byte() -> None:
    html = '<td style="x">Caf&eacute; &nbsp;<!--[if mso]>x<![endif]--><a class=b href="https://a.example/">a</a></td>'
    tracked = track_html(html, base_url=BASE, token=TOKEN, secret=SECRET)
    before, after = tracked.split("href=", 1)
    assert before == '<td style="x">Caf&eacute; &nbsp;<!--[if mso]>x<![endif]--><a class=b '
    assert after.split(">", 1)[1].startswith("a</a></td><img ")


def test_the_open_pixel_goes_before_the_body_end_or_at_the_end() -> None:
    pixel = f'<img src="{BASE}/t/o/{TOKEN}.gif" width="1" height="1" alt="" style="display:none">'
    with_body = track_html("<HTML><BODY><p>x</p></BODY></HTML>", base_url=BASE, token=TOKEN, secret=SECRET)
    assert with_body == f"<HTML><BODY><p>x</p>{pixel}</BODY></HTML>"
    assert track_html("<p>x</p>", base_url=BASE + "/", token=TOKEN, secret=SECRET) == f"<p>x</p>{pixel}"


def test_tracking_twice_does_not_wrap_links_twice() -> None:
    once = track_html('<a href="https://a.example/">a</a>', base_url=BASE, token=TOKEN, secret=SECRET)
    assert hrefs(track_html(once, base_url=BASE, token=TOKEN, secret=SECRET)) == hrefs(once)


@pytest.mark.parametrize("base", ["https://envoi.example.com", "http://127.0.0.1:8000/"])
def test_one_click_unsubscribe_headers(base: str) -> None:
    url = unsubscribe_url(base, TOKEN)
    assert url == f"{base.rstrip('/')}/u/{TOKEN}"
    assert unsubscribe_headers(base, TOKEN) == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
