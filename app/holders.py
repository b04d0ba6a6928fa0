"""Which processes use a private server (the embedded PostgreSQL cluster, the private Redis server) that `make run`
and `make test` start in a project folder: the last one out stops it, however the others ended.

Each process using the server records its pid and identity in a folder; a process that ended without removing its
record (kill -9) does not count, so whoever uses the server next adopts it and stops it in turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def process_identity(pid: int) -> str | None:
    """Something that names process `pid` for as long as it runs, or None once it is gone (a zombie is gone).

    On Linux that is the process's start time, so a pid reused by an unrelated process does not pass for the one
    recorded; elsewhere only whether the pid exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # another user's process: it exists
        return "running"
    # The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    state, *rest = stat.rsplit(")", 1)[1].split()
    return None if state in ("Z", "X") else rest[18]  # field 22, the start time in clock ticks since boot


class Holders:
    """One file per process using the server, named by its pid, holding its identity, in `root/holders`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = root / "holders"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise starting, stopping and the holder records among all processes using this folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(exist_ok=True)
        with (self.root / "holders.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def add(self, pid: int) -> None:
        identity = process_identity(pid)
        assert identity is not None
        (self.directory / str(pid)).write_text(identity)

    def remove(self, pid: int) -> None:
        (self.directory / str(pid)).unlink(missing_ok=True)

    def forget_all(self) -> None:
        """A server that was not running had no users: records left by killed processes are stale."""
        for stale in self.directory.iterdir():
            stale.unlink()

    def live(self) -> list[int]:
        """The pids of the processes recorded as using the server that still run; the records of others go."""
        live = []
        for record in self.directory.iterdir():
            if record.name.isdigit() and process_identity(int(record.name)) == record.read_text():
                live.append(int(record.name))
            else:
                record.unlink()
        return sorted(live)
