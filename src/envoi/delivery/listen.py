"""The worker's doorbell on PostgreSQL: rung by each NOTIFY of new events, heard on the process's one listening
connection (envoi.db.listen), and rung after each reconnection for whatever arrived while it was away."""

from __future__ import annotations

from envoi.db.listen import Listener
from envoi.db.notify import CHANNEL, Wakeup


def ring_on_new_events(listener: Listener, wakeup: Wakeup) -> None:
    listener.on(CHANNEL, lambda _payload: wakeup.ring(), wakeup.ring)
