"""A delivery's variants: the email each one is (the same content keys and Liquid as an email template's), and
what stops a delivery from going out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoi.addresses import check_mailbox
from envoi.campaigns.models import Criterion, Delivery, WinnerMode
from envoi.errors import Problem, TemplateSyntaxError
from envoi.templates.compiled import CompiledTemplate
from envoi.templates.design import Design

VARIANT_NAMES = "ABC"
CONTENT_KEYS = ("from", "replyTo", "subject", "html", "mjml", "text")
# Under this many recipients, a variant sent to fewer than MIN_SHARE % of them measures noise.
SMALL_AUDIENCE = 50_000
MIN_SHARE = 10


def variant_design(variant: Mapping[str, Any]) -> Design:
    return Design(content={k: variant[k] for k in CONTENT_KEYS if variant.get(k)}, channel="email")


def content_problems(variants: list[dict[str, Any]]) -> list[Problem]:
    """What is wrong with the variants themselves, each problem naming its field (``variants[1].subject``)."""
    if not 1 <= len(variants) <= len(VARIANT_NAMES):
        return [("variants", "a delivery has 1 to 3 variants (A, B, C)")]
    problems: list[Problem] = []
    for index, variant in enumerate(variants):
        where = f"variants[{index}]"
        if variant.get("name") != VARIANT_NAMES[index]:
            problems.append((f"{where}.name", f"variant {index + 1} is named {VARIANT_NAMES[index]!r}"))
        sender = variant.get("from") or ""
        if not sender:
            problems.append((f"{where}.from", "a sender is required"))
        elif "{" not in sender:  # one with Liquid is checked when it renders
            try:
                check_mailbox(sender)
            except ValueError as error:
                problems.append((f"{where}.from", str(error)))
        if not variant.get("subject"):
            problems.append((f"{where}.subject", "a subject is required"))
        if not any(variant.get(k) for k in ("html", "mjml", "text")):
            problems.append((f"{where}.html", "an email needs an HTML, MJML or text body"))
        try:
            CompiledTemplate(variant_design(variant))
        except TemplateSyntaxError as error:
            problems.append((f"{where}.{error.field or 'html'}".replace("email.", ""), error.message))
    return problems


def test_problems(delivery: Delivery, min_duration_seconds: float) -> list[Problem]:
    """What is wrong with the A/B test's settings (none for a delivery of one variant)."""
    count = len(delivery.variants)
    if count < 2:
        return []
    problems: list[Problem] = []
    split = delivery.test_split
    if len(split) != count:
        problems.append(("testSplit", f"give one share per variant: {count} numbers, in percent"))
    elif any(not isinstance(share, int) or share < 1 for share in split):
        problems.append(("testSplit", "each share is a whole percentage of at least 1"))
    elif sum(split) >= 100:
        problems.append(("testSplit", f"the test takes {sum(split)} %: nobody would be left to get the winner"))
    if delivery.test_duration_seconds < min_duration_seconds:
        hours = min_duration_seconds / 3600
        problems.append(("testDurationSeconds", f"an A/B test lasts at least {hours:g} hour(s)"))
    if delivery.criterion not in set(Criterion):
        problems.append(("criterion", f"one of {', '.join(Criterion)}"))
    if delivery.winner_mode not in set(WinnerMode):
        problems.append(("winnerMode", f"one of {', '.join(WinnerMode)}"))
    return problems


def split_problems(split: list[int], audience: int) -> list[Problem]:
    """Shares too small for the audience it will be sent to."""
    if audience < SMALL_AUDIENCE and any(share < MIN_SHARE for share in split):
        return [
            (
                "testSplit",
                f"with {audience:,} recipients (under {SMALL_AUDIENCE:,}) each variant needs at least {MIN_SHARE} % "
                "of the audience, or its rates are noise",
            )
        ]
    for index, size in enumerate(group_sizes(split, audience)):
        if size == 0:
            who = f"variant {VARIANT_NAMES[index]}'s {split[index]} % of {audience:,} recipients"
            return [("testSplit", f"{who} is nobody: an A/B test needs a larger audience or larger shares")]
    return []


def group_sizes(split: list[int], audience: int) -> list[int]:
    """How many recipients each test variant gets (rounded down): the rest get the winner."""
    return [audience * share // 100 for share in split]
