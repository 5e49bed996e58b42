"""Running ``envoi`` as a real process, the way a user does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_envoi(args: list[str], *, env: dict[str, str], cwd: Path, output: IO[bytes]) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | env
    return subprocess.Popen(
        [sys.executable, "-m", "envoi", *args], env=full_env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT
    )


def wait_for_text(path: Path, text: str, *, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the output:\n{path.read_text(errors='replace')}")


def wait_for_port(port: int, *, timeout: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:port. ``envoi serve`` logs worker.started during its
    startup, before uvicorn binds its socket: a request sent on that line alone may be refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")
