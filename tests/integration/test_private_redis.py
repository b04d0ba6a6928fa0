"""The private Redis server `make run` and `make test` start when no REDIS_URL is set: it answers on its socket in
its folder, the last process using it stops it, and one left running by a process killed with kill -9 is adopted
and stopped by the next one, as the embedded PostgreSQL cluster is."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from app.config import PROJECT_ROOT
from app.ratelimit.server import PrivateRedis

# A process that starts using the server and is then killed without a chance to stop it.
KILLED_HOLDER = """
import os, signal, sys
from pathlib import Path
from app.ratelimit.server import PrivateRedis
with PrivateRedis(Path(sys.argv[1])).in_use():
    os.kill(os.getpid(), signal.SIGKILL)
"""


# A process that uses the server until it reads a line.
HOLDER = """
import sys
from pathlib import Path
from app.ratelimit.server import PrivateRedis
with PrivateRedis(Path(sys.argv[1])).in_use():
    print("in use", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def server(workspace: Path) -> Iterator[PrivateRedis]:
    private = PrivateRedis(workspace / f"private-redis-{uuid.uuid4().hex[:8]}")
    try:
        yield private
    finally:
        private.stop()


def answers(server: PrivateRedis) -> bool:
    with Redis(unix_socket_path=str(server.socket_path), socket_timeout=5) as client:
        return client.ping() is True


def test_it_serves_on_its_socket_while_in_use_and_stops_after(server: PrivateRedis) -> None:
    with server.in_use() as url:
        assert url == f"unix://{server.socket_path}"
        assert answers(server)
        # Only its owner may connect.
        assert oct(server.socket_path.stat().st_mode & 0o777) == "0o700"
    assert not server.is_running()


def test_the_last_process_out_stops_it(server: PrivateRedis) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(server.root)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"in use\n"
        with server.in_use():
            assert answers(server)
        assert answers(server)  # the other process still uses it
    finally:
        holder.communicate(b"done\n", timeout=30)
    assert holder.returncode == 0
    assert not server.is_running()


def test_a_server_left_by_a_killed_process_is_adopted_and_stopped(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDER, str(server.root)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert answers(server)  # orphaned, still running
    caplog.set_level(logging.INFO, logger="app.ratelimit.server")
    with server.in_use():
        assert answers(server)
    assert "adopting the running private Redis server: the process that used it is gone" in caplog.messages
    assert not server.is_running()
