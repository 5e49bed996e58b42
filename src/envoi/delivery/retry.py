"""When to try again: exponential backoff with jitter, bounded by attempts and by the event's expiry."""

from __future__ import annotations

import random
from collections.abc import Callable

from envoi.settings import Settings


def retry_delay(
    attempt: int,
    settings: Settings,
    *,
    at_least: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before attempt ``attempt + 1``. Equal jitter: half fixed, half random, so retries spread out
    but never come back sooner than half the backoff."""
    backoff = min(settings.retry_max_delay, settings.retry_base_delay * 2.0 ** (attempt - 1))
    delay = backoff / 2 + rng() * backoff / 2
    # A provider's Retry-After is honoured up to the longest delay we would choose ourselves.
    return max(delay, min(at_least or 0.0, settings.retry_max_delay))
