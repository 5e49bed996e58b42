"""Sessions an attacker would like to choose, and credentials they would like to guess: a session id planted
before login is never the one after it (console and SOAP), SOAP's Logon shares the console's throttle on failed
logins, and API keys are too many to guess (256 random bits, stored only as their SHA-256)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from sqlalchemy import select

from envoi.access.models import ApiKey
from envoi.runtime import Runtime
from tests.security.callers import PASSWORD, Cast, envelope, make_cast, session_of, soap_texts

WRONG = "not the password at all"


async def _who(cast: Cast, session: str) -> int:
    """The status of /api/v1/me with this session cookie, and the console home's (303: to the login form)."""
    async with cast.client() as client:
        me = await client.get("/api/v1/me", headers={"Cookie": f"envoi_session={session}"})
        home = await client.get("/console/", headers={"Cookie": f"envoi_session={session}"})
    assert (me.status_code == 200) == (home.status_code == 200), (me.status_code, home.status_code)
    return me.status_code


async def test_a_session_id_planted_before_login_is_never_the_one_after(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    chosen = secrets.token_urlsafe(32)  # an attacker sets the victim's cookie to a value they know
    answer = await cast.log_in("admin@example.com", planted=chosen)
    assert answer.status_code == 303 and session_of(answer) != chosen
    assert await _who(cast, chosen) == 401 and await _who(cast, session_of(answer)) == 200

    # Or plants their own live session: the victim's login ends it, and it never becomes the victim's.
    attackers = await cast.session("nobody@example.com")
    victims = session_of(await cast.log_in("admin@example.com", planted=attackers))
    assert victims != attackers and await _who(cast, attackers) == 401
    async with cast.client() as client:
        me = await client.get("/api/v1/me", headers={"Cookie": f"envoi_session={victims}"})
    assert me.json()["actor"] == "admin@example.com"


async def test_soap_logon_makes_its_own_token_whatever_token_it_is_sent(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    chosen = secrets.token_urlsafe(32)
    status, root = await cast.soap_logon("admin@example.com", token=chosen)
    (token,) = soap_texts(root, "pstrSessionToken")
    assert status == 200 and token != chosen

    for candidate, works in ((chosen, False), (token, True)):
        operation = f"<urn:PushEvent><urn:sessiontoken>{candidate}</urn:sessiontoken><urn:domEvent/></urn:PushEvent>"
        _status, root = await cast.soap("nms:rtEvent#PushEvent", envelope(operation))
        # A good token gets past the check, to the (empty) event; a chosen one stops at it.
        assert ("PushEvent needs exactly one event" in soap_texts(root, "faultstring")[0]) == works


async def test_soap_logon_guesses_are_throttled_and_count_with_the_console_logins(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    limit = runtime.settings.console_login_failures_per_login
    for attempt in range(limit):  # the guesser alternates doors: each failure counts against the same login
        if attempt % 2:
            status, root = await cast.soap_logon("editor@example.com", WRONG)
            assert (status, soap_texts(root, "faultstring")) == (500, ["Invalid login or password"])
        else:
            assert (await cast.log_in("editor@example.com", WRONG)).status_code == 401

    status, root = await cast.soap_logon("Editor@Example.com", PASSWORD)  # the right password, too late
    assert status == 500 and soap_texts(root, "faultcode") == ["SOAP-ENV:Client"]
    assert soap_texts(root, "faultstring")[0].startswith("Too many failed logins; try again in 15 minutes")
    assert not soap_texts(root, "pstrSessionToken")
    assert (await cast.log_in("editor@example.com", PASSWORD)).status_code == 429
    assert (await cast.soap_logon("viewer@example.com", PASSWORD))[0] == 200  # other logins are not held up


async def test_api_keys_carry_256_random_bits_and_only_their_hash_is_stored(runtime: Runtime) -> None:
    cast = await make_cast(runtime)
    async with cast.admin() as admin:
        made = [await admin.post("/api/v1/api-keys", json={"name": f"shop-{i}"}) for i in range(3)]
    keys = [answer.json()["key"] for answer in made]
    for key in keys:
        prefix, random_part = key[:6], key[6:]
        assert prefix == "envoi_" and len(base64.urlsafe_b64decode(random_part + "=")) == 32  # 2**256 to guess from
    assert len(set(keys)) == len(keys)

    async with runtime.transaction() as session:
        rows = (await session.scalars(select(ApiKey).where(ApiKey.name.like("shop-%")).order_by(ApiKey.id))).all()
    for row, key in zip(rows, keys, strict=True):
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert row.prefix == key[:12]  # shown in lists to tell keys apart: 36 of the 256 bits
        assert key not in repr([getattr(row, column.key) for column in ApiKey.__table__.columns])
