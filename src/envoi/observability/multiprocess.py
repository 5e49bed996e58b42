"""The directory where every envoi serve and envoi worker process of a host writes its counts (prometheus_client's
multiprocess mode), so that /metrics in any of them sums them all.

Each process holds a shared lock on a file of the directory for as long as it lives; the kernel lets go of it
when the process ends, however it ends. A process that starts while no other holds it is the first: it empties
the directory, and the counters start again from zero, which Prometheus reads as a restart. While any process
lives, the files of those that ended are kept: their counts must stay in the sums, since a sum going down would
read as a reset.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from prometheus_client import multiprocess

LOCK_FILE = "processes.lock"  # not *.db: the collector reads every *.db file of the directory


def join_directory(directory: Path) -> int:
    """Create the directory if need be, empty it if no other process uses it, and hold its shared lock; returns
    the lock's file descriptor, to give to ``leave_directory``. Raises OSError if the directory is unusable."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another process lives: its counts and those of the processes before it stay
        else:
            for stale in directory.glob("*.db"):
                stale.unlink(missing_ok=True)
        # From exclusive to shared is not atomic, but no process can have written in between: each writes only
        # once it holds the shared lock, and a wipe needs the exclusive one.
        fcntl.flock(lock, fcntl.LOCK_SH)
    except BaseException:
        os.close(lock)
        raise
    return lock


def leave_directory(directory: Path, lock: int) -> None:
    """At the end of the process: its live gauges go (Envoi has none yet); its counters stay for the others."""
    multiprocess.mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]
    os.close(lock)
