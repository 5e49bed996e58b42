"""Running the application under uvicorn, with open notification streams ended as soon as a stop is asked.

Uvicorn waits for open responses to finish before it shuts the application down, and an event stream never
finishes by itself: without this, ``envoi serve`` would hang on SIGTERM for as long as a console is open.
The worker is told to stop at the signal too, so that it finishes (or returns) its batches while uvicorn
lets the requests in flight finish, instead of after them: the process exits within one grace period.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

_STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server could not start (a port in use...)


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is not None:
            runtime.notifications.close_soon()
        stop_soon = getattr(self.app.state, "stop_soon", None)
        if stop_soon is not None:  # the worker winds down while requests finish: both within the grace period
            stop_soon()
        super().handle_exit(sig, frame)


def serve(app: FastAPI, **options: Any) -> None:
    """What ``uvicorn.run(app, **options)`` does for one process without reload."""
    server = Server(uvicorn.Config(app, **options), app)
    server.run()
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
