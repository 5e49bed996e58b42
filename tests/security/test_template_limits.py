"""Liquid templates that loop or grow without bound stop within their budget, with an error that says which
limit, at preview, proof and publish, and at send: the event is delivery_failed with the reason and the worker
goes on with the next one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from envoi.runtime import Runtime
from envoi.templates import limits
from envoi.templates.rendering import Liquid, RenderError
from tests.conftest import drain
from tests.helpers import create_type, event, push

TENFOLD = ' | replace: "x", "xxxxxxxxxx"'
# Each one of these would take minutes or gigabytes without a limit (measured: 20 s to 35 s, or 2 GB and more).
BOMBS = {
    "nested loops": ("{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}", "loop iteration"),
    "loops in sequence": ("{% for a in (1..9999) %}{% endfor %}" * 2000, "loop iterations in one render"),
    "assign doubling": (
        '{% assign s = "xx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}',
        "local namespace limit",
    ),
    "capture doubling": (
        "{% capture s %}xx{% endcapture %}{% for i in (1..40) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}"
        "{% endfor %}{{ s | size }}",
        "local namespace limit",
    ),
    "replace chain": ('{% assign s = "x"' + TENFOLD * 12 + " %}{{ s | size }}", "replace: a text of more than"),
    "range joined": ('{{ (1..100000000) | join: "," | size }}', "join: a range of more than"),
    "range sorted": ("{% assign r = (1..100000000) | sort %}{{ r | size }}", "sort: a range of more than"),
    "range summed": ("{{ (1..300000000) | sum }}", "sum: a range of more than"),
    "long separator": ('{{ ctx.chars | join: "' + "y" * 100_000 + '" | size }}', "join: a text of more than"),
    "snippets fanning out": ("{% render 's0' %}", "snippets and loops in one render"),
    "includes fanning out": ("{% include 'i0' %}", "snippets and loops in one render"),
    "snippet rendering itself": ("{% render 'self' %}", "maximum context depth"),
    "output": ("{% for a in (1..9999) %}" + "x" * 1000 + "{% endfor %}", "output stream limit"),
}
SNIPPETS = {
    **{f"s{i}": f"{{% render 's{i + 1}' %}}{{% render 's{i + 1}' %}}" for i in range(22)},
    **{f"i{i}": f"{{% include 'i{i + 1}' %}}" * 4 for i in range(10)},  # includes nest less deep than renders
    "s22": "x",
    "i10": "x",
    "self": "{% render 'self' %}",
}


def _render(source: str) -> str:
    liquid = Liquid(SNIPPETS)
    return liquid.render(
        liquid.compile(source, field="html", html=True), {"ctx": {"chars": list("a" * 100)}}, field="html"
    )


@pytest.mark.parametrize("name", list(BOMBS))
async def test_a_template_doing_too_much_stops_with_the_limit_it_hit(name: str) -> None:
    source, reason = BOMBS[name]
    with pytest.raises(RenderError, match=reason):  # a count stopped it, not the wall-clock backstop
        await asyncio.wait_for(asyncio.to_thread(_render, source), timeout=60)  # a hang fails instead of blocking


def test_the_wall_clock_backstop_stops_work_the_counts_do_not_see(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "RENDER_SECONDS", 0.05)
    big = "x" * 150_000
    source = "{% for i in (1..9000) %}{% assign t = big | upcase %}{% endfor %}"  # about 1.3 GB through filters
    monkeypatch.setattr(limits, "FILTER_CHARACTERS", 10**12)  # only the clock is left to stop it
    liquid = Liquid()
    with pytest.raises(RenderError, match=r"rendering took more than 0\.05 seconds"):
        liquid.render(liquid.compile(source, field="html"), {"big": big}, field="html")


def test_ordinary_templates_stay_well_inside_the_budget() -> None:
    source = (
        "{% for item in ctx.items %}{% render 'line', item: item %}{% endfor %}"
        '{{ ctx.items | map: "name" | join: ", " | upcase }}{{ ctx.note | replace: "a", "b" }}'
    )
    liquid = Liquid({"line": "<li>{{ item.name | escape }} x{{ item.qty }}</li>"})
    items = [{"name": f"item {i}", "qty": i} for i in range(5000)]
    html = liquid.render(
        liquid.compile(source, field="html", html=True), {"ctx": {"items": items, "note": "a" * 1000}}, field="html"
    )
    assert html.count("<li>") == 5000


GROWING = "{{ ctx.s" + TENFOLD * 10 + " | size }}"  # harmless for the sample (""), 10^10 characters for "x"
LOOPING = "{% for a in (1..ctx.n) %}{% endfor %}" * 40  # 40 loops of ctx.n iterations each


@pytest.fixture
async def bomb_template(api: httpx.AsyncClient) -> int:
    await create_type(api, "order_confirmation", sample={"s": "", "n": 1})
    created = await api.post(
        "/api/v1/templates",
        json={
            "name": "Bomb",
            "eventType": "order_confirmation",
            "email": {"from": "shop@example.com", "subject": "Hi", "html": f"<p>{GROWING}</p>", "text": LOOPING},
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_preview_proof_and_publish_say_which_limit(api: httpx.AsyncClient, bomb_template: int) -> None:
    base = f"/api/v1/templates/{bomb_template}"
    preview = await api.post(f"{base}/preview", json={"ctx": {"s": "x", "n": 1}})
    assert preview.status_code == 422, preview.text
    assert preview.json()["error"]["code"] == "render_failed" and "replace" in preview.json()["error"]["message"]
    preview = await api.post(f"{base}/preview", json={"ctx": {"s": "", "n": 9999}})
    assert preview.status_code == 422 and "loop iterations" in preview.json()["error"]["message"], preview.text
    seed = await api.post(f"{base}/seeds", json={"label": "grow", "address": "me@example.com", "ctx": {"s": "x"}})
    assert seed.status_code == 201, seed.text
    [proof] = (await api.post(f"{base}/proof")).json()
    assert proof["status"] == "render_failed" and "replace" in proof["error"]
    refused = await api.post(f"{base}/publish")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "publish_refused", refused.text
    assert "replace" in refused.text


async def test_at_send_the_event_fails_with_the_reason_and_the_worker_goes_on(
    api: httpx.AsyncClient, runtime: Runtime, bomb_template: int
) -> None:
    published = await api.post(f"/api/v1/templates/{bomb_template}/publish")
    assert published.status_code == 200, published.text
    growing = await push(api, ctx={"s": "x", "n": 1})
    looping = await push(api, ctx={"s": "", "n": 9999})
    fine = await push(api, ctx={"s": "", "n": 3})
    await drain(runtime, timeout=60)
    for event_id, reason in ((growing, "replace: a text of more than"), (looping, "loop iterations in one render")):
        found = await event(api, event_id)
        assert found["status"] == "delivery_failed" and reason in found["lastError"], found
    assert (await event(api, fine))["status"] == "processed"
