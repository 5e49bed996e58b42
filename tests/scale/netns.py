"""Network namespaces joined by a bridge, so that each Envoi process of a test runs as on a host of its own.

Each namespace has its own loopback and one veth pair: one end on a bridge in the root namespace, the other
inside as ``eth0`` with its own address and a default route to the bridge's address. What runs in the root
namespace (PostgreSQL, the SMTP sink) listens on 127.0.0.1 only, which a namespace cannot reach (its 127.0.0.1
is its own): a socat forwarder on the bridge address carries each service over the virtual network.

Names carry the test process's pid (``envoiscale-<pid>-<role>``, bridge ``esc<pid>``), so two runs never clash;
what a killed run left behind is recognised by its dead pid and removed before a new network is made. Every
process started here gets SIGKILL when the test process dies, so none outlives a killed run either.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envoi.bench.processes import Process

PREFIX = "envoiscale"
_BRIDGE_PREFIX = "esc"  # interface names hold 15 characters: esc<pid>v<n> must fit
_PR_SET_PDEATHSIG = 1


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even by SIGKILL (it survives exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def missing_tools() -> str | None:
    """Why this machine cannot build the network, in words; None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {'iproute2' if tool == 'ip' else tool})"
    return None


@dataclass(frozen=True)
class Namespace:
    name: str
    address: str  # of its eth0, on the bridge's subnet

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def inode(self) -> int:
        """The identity of the namespace, to compare with /proc/<pid>/ns/net of a process said to run in it."""
        return os.stat(f"/run/netns/{self.name}").st_ino


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_in(name: str, prefix: str) -> int | None:
    rest = name.removeprefix(prefix).lstrip("-")
    digits = rest.split("-", 1)[0].split("v", 1)[0]
    return int(digits) if digits.isdigit() else None


def _stale(pid: int | None) -> bool:
    """Left by a run that is gone (its pid is free), or by an earlier run of this very pid."""
    return pid is not None and (pid == os.getpid() or not _alive(pid))


def _kill_inside(namespace: str) -> None:
    """End the processes a run started in its namespace (only ever ours: the namespace is ours)."""
    pids = [int(p) for p in _ip("netns", "pids", namespace, check=False).split() if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_leftovers() -> list[str]:
    """Delete the namespaces and bridges of killed earlier runs; returns their names."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(PREFIX + "-") and _stale(_pid_in(name, PREFIX)):
            _kill_inside(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", "type", "bridge").splitlines():
        name = line.split(":")[1].strip().split("@", 1)[0]
        if name.startswith(_BRIDGE_PREFIX) and _stale(_pid_in(name, _BRIDGE_PREFIX)):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 in 10.64.0.0/10 that no interface of this machine uses, starting from one derived from ``seed``."""
    used = [
        ipaddress.ip_interface(fields[3]).network
        for fields in (line.split() for line in _ip("-4", "-o", "addr").splitlines())
        if len(fields) > 3
    ]
    for step in range(1 << 14):
        index = (seed + step) % (1 << 14)
        subnet = ipaddress.IPv4Network(f"10.{64 + (index >> 8)}.{index & 255}.0/24")
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free /24 in 10.64.0.0/10 for the test network")


class VirtualNetwork:
    """A bridge in the root namespace and one namespace per role, each with an address on the bridge."""

    def __init__(self, roles: list[str]) -> None:
        pid = os.getpid()
        self.bridge = f"{_BRIDGE_PREFIX}{pid}"
        subnet = _free_subnet(pid)
        hosts = list(subnet.hosts())
        self.prefixlen = subnet.prefixlen
        self.address = str(hosts[0])  # the bridge's: where the namespaces find the root namespace's services
        self.namespaces = {role: Namespace(f"{PREFIX}-{pid}-{role}", str(hosts[n + 1])) for n, role in enumerate(roles)}
        self.children: list[subprocess.Popen[bytes]] = []

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/{self.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for n, ns in enumerate(self.namespaces.values()):
            outside, inside = f"{self.bridge}v{n}", f"{self.bridge}p{n}"
            _ip("netns", "add", ns.name)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns.name)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", ns.name, "link", "set", inside, "name", "eth0")
            _ip("-n", ns.name, "addr", "add", f"{ns.address}/{self.prefixlen}", "dev", "eth0")
            _ip("-n", ns.name, "link", "set", "eth0", "up")
            _ip("-n", ns.name, "link", "set", "lo", "up")
            _ip("-n", ns.name, "route", "add", "default", "via", self.address)

    def remove(self) -> None:
        """Stop what was started, then delete the namespaces (their veth pairs go with them) and the bridge."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for ns in self.namespaces.values():
            _kill_inside(ns.name)
            _ip("netns", "del", ns.name, check=False)
        _ip("link", "del", self.bridge, check=False)

    def forward(self, port: int, to_port: int) -> None:
        """Make 127.0.0.1:to_port of the root namespace reachable at <bridge address>:port."""
        # socat's default backlog is 5: the 16 SMTP connections each worker opens at once would overflow it, and a
        # dropped SYN is sent again only after 1, 3, 7... seconds (sends then time out and are retried).
        listen = f"TCP-LISTEN:{port},bind={self.address},fork,reuseaddr,backlog=1024"
        child = subprocess.Popen(  # preexec_fn: the only way to set the parent-death signal
            ["socat", listen, f"TCP:127.0.0.1:{to_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.children.append(child)
        wait_for_port(self.address, port, child, f"socat forwarding to port {to_port}")

    def start(self, role: str, name: str, args: list[str], *, env: dict[str, str], workdir: Path) -> Process:
        """Run ``python args`` inside ``role``'s namespace, its output in workdir/<name>.log, with ``env`` as its
        only ENVOI_* variables."""
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENVOI_")} | env
        popen = subprocess.Popen(
            self.namespaces[role].command([sys.executable, *args]),
            env=full_env,
            cwd=workdir,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.children.append(popen)
        return Process(name, popen, log)

    def can_connect(self, role: str, host: str, port: int) -> bool:
        """Whether a TCP connection from inside ``role``'s namespace to host:port succeeds."""
        probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=3).close()"
        done = subprocess.run(self.namespaces[role].command([sys.executable, "-c", probe]), capture_output=True)
        return done.returncode == 0


def wait_for_port(host: str, port: int, listener: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    """Until host:port accepts connections; fails early if the process meant to listen there exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listener.poll() is not None:
            raise RuntimeError(f"{what} exited before listening on {host}:{port}")
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:g} s")


@contextlib.contextmanager
def virtual_network(roles: list[str]) -> Iterator[VirtualNetwork]:
    """A network with one namespace per role, removed afterwards whatever happened."""
    remove_leftovers()
    network = VirtualNetwork(roles)
    try:
        network.create()
        yield network
    finally:
        network.remove()
