"""Profiles through the REST API (create, change, delete, unsubscribe, 409s naming the field) and the CSV import
(BOM, quoting, unicode, duplicates, updates by external id, skipped lines, attributes, a second run that creates
nothing, conflicts never merged, 20,000 rows)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from envoi.access.models import AuditEntry
from envoi.campaigns import profiles_api
from envoi.campaigns.models import Profile
from envoi.campaigns.profile_import import ImportRow, read_csv, upsert_profiles
from envoi.campaigns.profiles import profile_ids_by_external_id, profiles_by_id
from envoi.runtime import Runtime


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/profiles", json=fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


async def upload(api: httpx.AsyncClient, text: str | bytes, **params: str) -> dict[str, Any]:
    body = text.encode() if isinstance(text, str) else text
    response = await api.post(
        "/api/v1/profiles/import", content=body, headers={"Content-Type": "text/csv"}, params=params
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def stored(runtime: Runtime) -> dict[str, Profile]:
    """Every profile, by email (or external id when it has none)."""
    async with runtime.transaction() as session:
        rows = (await session.scalars(select(Profile))).all()
        return {str(p.email or p.external_id): p for p in rows}


async def audit_actions(runtime: Runtime, object_type: str) -> list[str]:
    async with runtime.transaction() as session:
        query = select(AuditEntry.action).where(AuditEntry.object_type == object_type).order_by(AuditEntry.id)
        return list((await session.scalars(query)).all())


# -- the API ---------------------------------------------------------------------------------------------------------


async def test_a_profile_is_created_read_changed_and_deleted(api: httpx.AsyncClient, runtime: Runtime) -> None:
    ada = await create(
        api,
        email=" Ada@Example.COM ",
        phone="+33 6 12 34 56 78",
        firstName="Ada",
        externalId="C-1",
        attributes={"city": "Lyon", "points": 120},
    )
    assert (ada["email"], ada["phone"], ada["firstName"], ada["externalId"]) == (
        "ada@example.com",
        "+33612345678",
        "Ada",
        "C-1",
    )
    assert ada["subscribed"] is True and ada["unsubscribedAt"] is None
    assert (await api.get(f"/api/v1/profiles/{ada['id']}")).json() == ada

    changed = await api.patch(
        f"/api/v1/profiles/{ada['id']}",
        json={"lastName": "Lovelace", "phone": None, "attributes": {"points": 130, "city": None, "tier": "gold"}},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["lastName"], body["phone"], body["firstName"]) == ("Lovelace", None, "Ada")
    assert body["attributes"] == {"points": 130, "tier": "gold"}  # merged; null removed city

    assert (await api.delete(f"/api/v1/profiles/{ada['id']}")).status_code == 204
    assert error(await api.get(f"/api/v1/profiles/{ada['id']}"), 404)["field"] == "id"
    assert await audit_actions(runtime, "profile") == ["created", "updated", "deleted"]


async def test_an_email_or_external_id_of_another_profile_is_a_409_naming_the_field(api: httpx.AsyncClient) -> None:
    ada = await create(api, email="ada@example.com", externalId="C-1")
    bob = await create(api, email="bob@example.com")

    same_email = error(await api.post("/api/v1/profiles", json={"email": "ADA@example.com"}), 409)
    assert same_email["field"] == "email" and str(ada["id"]) in same_email["message"]
    same_id = error(await api.post("/api/v1/profiles", json={"email": "new@example.com", "externalId": "C-1"}), 409)
    assert same_id["field"] == "externalId"
    taken = error(await api.patch(f"/api/v1/profiles/{bob['id']}", json={"email": "ada@example.com"}), 409)
    assert taken["field"] == "email"
    same_again = await api.patch(f"/api/v1/profiles/{ada['id']}", json={"email": "ADA@example.com"})
    assert same_again.status_code == 200, same_again.text  # its own email is not a conflict

    assert error(await api.post("/api/v1/profiles", json={"email": "not an email"}), 422)["field"] == "email"
    assert error(await api.post("/api/v1/profiles", json={"firstName": "Nobody"}), 422)["field"] == "email"
    assert (
        error(await api.post("/api/v1/profiles", json={"email": "x@example.com", "phone": "call me"}), 422)["field"]
        == "phone"
    )
    unnamed = await api.patch(f"/api/v1/profiles/{bob['id']}", json={"email": None})
    assert error(unnamed, 422)["message"] == "a profile needs an email or an external id"


async def test_profiles_are_listed_by_id_filtered_and_paged(api: httpx.AsyncClient) -> None:
    ids = [(await create(api, email=f"p{i}@example.com", externalId=f"E{i}"))["id"] for i in range(5)]
    await api.post(f"/api/v1/profiles/{ids[3]}/unsubscribe")

    first = (await api.get("/api/v1/profiles", params={"limit": 2})).json()
    second = (await api.get("/api/v1/profiles", params={"limit": 2, "after": first[-1]["id"]})).json()
    assert [p["id"] for p in first + second] == ids[:4]
    assert [p["id"] for p in (await api.get("/api/v1/profiles", params={"email": "P2@Example.com"})).json()] == [ids[2]]
    assert [p["id"] for p in (await api.get("/api/v1/profiles", params={"externalId": "E4"})).json()] == [ids[4]]
    assert [p["id"] for p in (await api.get("/api/v1/profiles", params={"subscribed": "false"})).json()] == [ids[3]]


async def test_unsubscribing_records_when_and_how_and_resubscribing_clears_it(api: httpx.AsyncClient) -> None:
    ada = await create(api, email="ada@example.com")
    out = (await api.post(f"/api/v1/profiles/{ada['id']}/unsubscribe")).json()
    assert (out["subscribed"], out["unsubscribedHow"]) == (False, "api") and out["unsubscribedAt"]
    again = (await api.post(f"/api/v1/profiles/{ada['id']}/unsubscribe")).json()
    assert again["unsubscribedAt"] == out["unsubscribedAt"]  # the first time is kept
    back = (await api.post(f"/api/v1/profiles/{ada['id']}/resubscribe")).json()
    assert (back["subscribed"], back["unsubscribedAt"], back["unsubscribedHow"]) == (True, None, None)
    created_off = await create(api, email="bob@example.com", subscribed=False)
    assert (created_off["subscribed"], created_off["unsubscribedHow"]) == (False, "api")


# -- the import ------------------------------------------------------------------------------------------------------

FILE = (
    "\ufeffemail,firstName,last_name,external_id,subscribed,Loyalty tier,points\n"
    'ada@example.com,Ada,"Lovelace, Countess",C-1,yes,gold,120\n'
    "zoë@example.com,Zoë,Ørsted,,,silver,\n"
    "ADA@EXAMPLE.COM,Ada,,,,platinum,\n"
    "not-an-email,Bad,,C-9,,,\n"
    "\n"
    "carl@example.com,Carl,,C-2,no,,7\n"
)


async def test_a_csv_file_creates_profiles_and_names_the_lines_it_skipped(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await create(api, externalId="C-2", firstName="Charles", attributes={"since": "2019"})

    result = await upload(api, FILE)

    assert (result["created"], result["updated"], result["unchanged"]) == (2, 2, 0)
    assert result["skipped"] == [
        {"line": 5, "field": "email", "reason": result["skipped"][0]["reason"]},
    ]
    assert "'not-an-email' is not valid" in result["skipped"][0]["reason"]
    found = await stored(runtime)
    assert set(found) == {"ada@example.com", "zoë@example.com", "carl@example.com"}
    ada, zoe, carl = found["ada@example.com"], found["zoë@example.com"], found["carl@example.com"]
    assert (ada.first_name, ada.last_name, ada.external_id) == ("Ada", "Lovelace, Countess", "C-1")
    assert ada.attributes == {"Loyalty tier": "platinum", "points": "120"}  # line 4 is Ada again
    assert (zoe.first_name, zoe.last_name, zoe.attributes) == ("Zoë", "Ørsted", {"Loyalty tier": "silver"})
    # Carl was found by external id: email, name and points set, his older attribute kept
    assert (carl.external_id, carl.first_name, carl.attributes) == ("C-2", "Carl", {"since": "2019", "points": "7"})
    assert (carl.subscribed, carl.unsubscribed_how) == (False, "import")
    assert await audit_actions(runtime, "profiles") == ["imported"]


async def test_importing_the_same_file_twice_creates_nothing_the_second_time(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await upload(api, FILE)
    before = {email: (p.id, p.first_name, p.attributes) for email, p in (await stored(runtime)).items()}
    second = await upload(api, FILE)
    assert first["created"] == 3
    # Ada's two lines set her tier to gold then platinum again: the other two change nothing
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 2, 2)
    assert {email: (p.id, p.first_name, p.attributes) for email, p in (await stored(runtime)).items()} == before
    plain = "email,first_name\nada@example.com,Ada\nzoë@example.com,Zoë\n"
    assert (await upload(api, plain))["unchanged"] == 2


async def test_blank_cells_keep_values_and_a_row_naming_two_profiles_is_skipped(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    x = await create(api, email="x@example.com", externalId="X", firstName="Xavier", phone="+33612345678")
    y = await create(api, email="y@example.com", externalId="Y")
    result = await upload(api, "external_id,email,first_name,phone\nX,y@example.com,Mixed,\nX,,,\n")
    assert result["skipped"][0]["line"] == 2
    reason = result["skipped"][0]["reason"]
    assert f"profile {x['id']}" in reason and f"profile {y['id']}" in reason
    assert (result["updated"], result["unchanged"]) == (0, 1)
    found = await stored(runtime)
    assert (found["x@example.com"].first_name, found["x@example.com"].phone) == ("Xavier", "+33612345678")

    other_id = await upload(api, "email,external_id\ny@example.com,Z\n")  # y is Y, not Z: never re-keyed
    assert other_id["skipped"][0]["field"] == "external_id" and "'Y'" in other_id["skipped"][0]["reason"]


async def test_emails_and_ids_can_move_between_profiles_in_one_file(api: httpx.AsyncClient, runtime: Runtime) -> None:
    # A1 comes first in the index and in the table, so its update is written first: B1 must let go of s@ before
    await create(api, email="r@example.com", externalId="A1")
    await create(api, email="s@example.com", externalId="B1")
    result = await upload(api, "external_id,email\nB1,new@example.com\nA1,s@example.com\n")
    assert (result["updated"], result["skipped"]) == (2, [])
    found = await stored(runtime)
    assert (found["s@example.com"].external_id, found["new@example.com"].external_id) == ("A1", "B1")
    assert "r@example.com" not in found


async def test_an_import_never_resubscribes_who_unsubscribed_themselves(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await upload(api, "email,subscribed\nimported@example.com,false\n")
    clicked = await create(api, email="clicked@example.com")
    async with runtime.transaction() as session:
        profile = await session.get(Profile, clicked["id"])
        assert profile is not None
        profile.subscribed, profile.unsubscribed_how = False, "link"
    result = await upload(api, "email,subscribed\nimported@example.com,true\nclicked@example.com,1\n")
    assert result["warnings"][0]["line"] == 3 and "unsubscribed themselves (link)" in result["warnings"][0]["reason"]
    found = await stored(runtime)
    assert found["imported@example.com"].subscribed and not found["clicked@example.com"].subscribed
    bad = await upload(api, "email,subscribed\nimported@example.com,maybe\n")
    assert bad["skipped"][0]["field"] == "subscribed"


async def test_the_upload_takes_a_form_file_and_refuses_what_it_cannot_read(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = await api.post(
        "/api/v1/profiles/import", files={"file": ("people.csv", b"email;language\nada@example.com;fr\n", "text/csv")}
    )
    assert error(form, 422)["field"] == "header"  # ';' needs ?delimiter=;
    semicolons = await api.post(
        "/api/v1/profiles/import",
        params={"delimiter": ";"},
        files={"file": ("people.csv", b"email;language\nada@example.com;fr\n", "text/csv")},
    )
    assert semicolons.status_code == 200 and semicolons.json()["created"] == 1
    assert error(await api.post("/api/v1/profiles/import", files={"other": ("a.csv", b"x")}), 422)["field"] == "file"
    latin = "email,first_name\nzoe@example.com,Zoë\n".encode("latin-1")
    assert error(await api.post("/api/v1/profiles/import", content=latin), 422)["message"].startswith(
        "the file is not utf-8 text (line 2)"
    )
    as_latin = await api.post(
        "/api/v1/profiles/import", content=latin, headers={"Content-Type": "text/csv; charset=latin-1"}
    )
    assert as_latin.json()["created"] == 1
    assert error(await api.post("/api/v1/profiles/import", content=b"first_name\nAda\n"), 422)["field"] == "header"
    monkeypatch.setattr(profiles_api, "MAX_IMPORT_BYTES", 100)
    too_big = error(await api.post("/api/v1/profiles/import", content=b"email\n" + b"a@example.com\n" * 10), 413)
    assert (too_big["code"], too_big["field"]) == ("payload_too_large", "file")


async def test_lookups_by_external_id_and_by_id(api: httpx.AsyncClient, runtime: Runtime) -> None:
    a = await create(api, email="a@example.com", externalId="A")
    b = await create(api, externalId="B")
    async with runtime.transaction() as session:
        assert await profile_ids_by_external_id(session, ["A", "B", "nobody"]) == {"A": a["id"], "B": b["id"]}
        found = await profiles_by_id(session, [a["id"], b["id"], 999_999])
        assert {pid: p.external_id for pid, p in found.items()} == {a["id"]: "A", b["id"]: "B"}


async def test_twenty_thousand_rows_are_all_imported(runtime: Runtime, database_url: str) -> None:
    count = 20_000
    lines = ["email,external_id,first_name,city"]
    lines += [f"user{i}@example.com,U{i},User {i},{'Paris' if i % 2 else 'Lyon'}" for i in range(count)]
    lines.append("USER1500@example.com,,Again,")  # a duplicate far from its first row: another chunk
    rows: list[ImportRow] = list(read_csv(lines))
    started = time.perf_counter()
    async with runtime.transaction() as session:
        result = await upsert_profiles(session, rows)
    elapsed = time.perf_counter() - started
    print(f"\n{database_url.partition(':')[0]}: {count} rows in {elapsed:.2f} s ({count / elapsed:,.0f} rows/s)")
    assert (result.created, result.updated, result.skipped) == (count, 1, [])
    async with runtime.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Profile)) == count
        again = await session.scalar(select(Profile).where(Profile.external_id == "U1500"))
        assert again is not None and (again.first_name, again.attributes) == ("Again", {"city": "Lyon"})
        last = await session.scalar(select(Profile).where(Profile.email == f"user{count - 1}@example.com"))
        assert last is not None and last.external_id == f"U{count - 1}"
