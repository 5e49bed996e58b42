"""Starting and watching the processes a benchmark needs: the SMTP sink and Envoi itself."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB, from /proc."""
    fields: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value, _unit = line.split()
                fields[name] = int(value) / 1024
    except FileNotFoundError:
        return 0.0, 0.0
    return fields.get("VmRSS:", 0.0), fields.get("VmHWM:", 0.0)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def peak_rss_mb(self) -> float:
        return memory_mb(self.pid)[1]

    def stop(self, timeout: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")


_started: list[Process] = []


@atexit.register
def _stop_everything() -> None:
    """Whatever happens to the run, no process it started outlives it."""
    for process in _started:
        if process.popen.poll() is None:
            process.popen.kill()


def start(name: str, args: list[str], *, env: dict[str, str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | env
    popen = subprocess.Popen(
        [sys.executable, *args], env=full_env, cwd=workdir, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    process = Process(name, popen, log)
    _started.append(process)
    return process


def wait_for_port(process: Process, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not listen on port {port} within {timeout}s")


def start_sink(workdir: Path, port: int | None = None) -> tuple[Process, int, Path]:
    """The SMTP sink; given the port of one that was stopped, it comes back there and its log goes on."""
    port = port or free_port()
    arrivals = workdir / f"arrivals-{port}.log"
    arrivals.touch()
    process = start("smtp-sink", ["-m", "envoi.bench.sink", str(port), str(arrivals)], env={}, workdir=workdir)
    wait_for_port(process, port)
    return process, port, arrivals


def start_envoi(
    name: str, command: list[str], *, env: dict[str, str], workdir: Path, port: int | None = None
) -> Process:
    process = start(name, ["-m", "envoi", *command], env=env, workdir=workdir)
    if port is not None:
        wait_for_port(process, port)
    return process
