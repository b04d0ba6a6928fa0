"""A private PostgreSQL cluster in a project folder, for `make run` and `make test` when no DATABASE_URL is set.

The cluster listens only on a Unix socket inside its own folder, so it never collides with another server's port.
PostgreSQL refuses to run as root; when we are root, the cluster is created and started as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from app.holders import Holders

DATABASE_NAME = "ticketing"
PG_PORT = 5432  # only names the socket file (.s.PGSQL.5432); no TCP port is opened

log = logging.getLogger(__name__)


class ClusterError(Exception):
    """The embedded cluster could not be created or started; the message says why."""


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterError("PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL or set PG_BINDIR")


def _as_postgres_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass(frozen=True)
class EmbeddedCluster:
    root: Path
    # A throwaway cluster (tests) trades crash safety for speed; the `make run` cluster keeps PostgreSQL's defaults,
    # so an acknowledged write survives a crash.
    throwaway: bool = False

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def holders(self) -> Holders:
        """The processes using the cluster through `in_use()`."""
        return Holders(self.root)

    def dsn(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir))}&port={PG_PORT}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*_as_postgres_user(), str(_bindir() / args[0]), *args[1:]]
        return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603

    def _give_to_postgres(self, *paths: Path) -> None:
        if os.geteuid() == 0:
            for path in paths:
                shutil.chown(path, "postgres", "postgres")

    def ensure_initialised(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        self._give_to_postgres(self.root, self.pgdata, self.socket_dir)
        result = self._run(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        settings = (
            "\n# Written by app/db/cluster.py: a private cluster reachable only through its socket folder.\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "max_connections = 200\n"
            "shared_buffers = 256MB\n"
        )
        if self.throwaway:
            settings += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def is_running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.pgdata)).returncode == 0

    def start(self) -> bool:
        """Start the cluster; returns False when it was already running (then it is not ours to stop)."""
        self.ensure_initialised()
        if self.is_running():
            return False
        if not self.log_file.exists():
            self.log_file.touch()
            self._give_to_postgres(self.log_file)
        result = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata), "-l", str(self.log_file))
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
            raise ClusterError("PostgreSQL did not start: " + " | ".join(tail or [result.stderr.strip()]))
        self._ensure_database()
        return True

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.pgdata))

    @contextlib.contextmanager
    def in_use(self) -> Iterator[str]:
        """Start the cluster if it is not running and yield its DSN; afterwards stop it unless another live process
        still uses it. A process that ended without stopping it (kill -9) does not count, so whoever uses the
        cluster next adopts it and stops it in turn: the last user out stops the cluster, however the others ended.
        """
        pid = os.getpid()
        holders = self.holders
        with holders.locked():
            if self.start():
                holders.forget_all()
            elif not holders.live():
                log.info("adopting the running embedded cluster: the process that used it is gone")
            holders.add(pid)
        try:
            yield self.dsn()
        finally:
            with holders.locked():
                holders.remove(pid)
                others = holders.live()
                if others:
                    log.info("embedded cluster left running for the processes still using it", extra={"pids": others})
                else:
                    self.stop()

    def _ensure_database(self) -> None:
        exists = self._run(
            "psql", "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres", "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",
        )  # fmt: skip
        if exists.stdout.strip() != "1":
            created = self._run("createdb", "-h", str(self.socket_dir), "-U", "postgres", DATABASE_NAME)
            if created.returncode != 0:
                raise ClusterError(f"createdb failed: {created.stderr.strip()}")
