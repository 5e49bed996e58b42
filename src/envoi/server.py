"""Running the application under uvicorn, with open notification streams ended as soon as a stop is asked.

Uvicorn waits for open responses to finish before it shuts the application down, and an event stream never
finishes by itself: without this, ``envoi serve`` would hang on SIGTERM for as long as a console is open.
The worker is told to stop at the signal too, so that it finishes (or returns) its batches while uvicorn
lets the requests in flight finish, instead of after them: the process exits within one grace period.

Behind a load balancer, ``drain_seconds`` (ENVOI_SHUTDOWN_DRAIN_SECONDS) comes first: the process goes on serving
while /readyz answers 503, so the balancer takes it out of rotation before it stops accepting connections (which
would refuse the requests the balancer still sends meanwhile).
"""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

_STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server could not start (a port in use...)


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, *, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.draining = False
        self.stopping = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_seconds > 0 and not self.draining and self.started:
            self.draining = True
            self.app.state.draining = True  # /readyz answers 503 from now on; everything else as before
            loop = asyncio.get_running_loop()  # a signal handler runs on the loop's thread, between its steps
            loop.call_soon_threadsafe(loop.call_later, self.drain_seconds, self._stop, sig, frame)  # wakes the loop
            return
        self._stop(sig, frame)  # no drain, before start, or a second signal: stop now

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        """Once: a second signal during the drain stops at once, and the drain's timer then finds nothing to do."""
        if self.stopping:
            return
        self.stopping = True
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is not None:
            runtime.notifications.close_soon()
        stop_soon = getattr(self.app.state, "stop_soon", None)
        if stop_soon is not None:  # the worker winds down while requests finish: both within the grace period
            stop_soon()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, *, drain_seconds: float = 0.0, **options: Any) -> None:
    """What ``uvicorn.run(app, **options)`` does for one process without reload, with a drain period first."""
    server = Server(uvicorn.Config(app, **options), app, drain_seconds=drain_seconds)
    server.run()
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
