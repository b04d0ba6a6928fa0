"""The README's walk-through, run as a newcomer runs it: every shell block of its "Walk-through with curl" section,
as written, by bash, against a real server on a fresh database with the shipped tenant files, twice in a row on the
same data. Each command must succeed (bash -e, pipefail: a curl that cannot connect, a jq that finds no JSON, a
`make -s token` that fails), and no request may end in a server error. Whatever the block holds is run, so commands
added to the walk-through are tested too.

The only substitution is the README's own: its commands address `$BASE` (`http://localhost:8000` unless set), and
the test sets BASE to its server. `xdg-open` is a stand-in that records the URL it was asked to open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from app.__main__ import prepare_database
from app.config import PROJECT_ROOT
from tests.support import LiveServer, cli_env, make_settings, own_database

SECTION = "## Walk-through with curl"
RUNS = 2
RUN_TIMEOUT_SECONDS = 60.0
BASE_DEFAULT = "BASE=${BASE:-http://localhost:8000}"
# Stop at the first failing command, name it, and let pipes fail too.
PRELUDE = "set -euo pipefail\ntrap 'echo \"walk-through command failed ($?): $BASH_COMMAND\" >&2' ERR\n"
XDG_OPEN = '#!/bin/sh\necho "$@" >> "$XDG_OPEN_LOG"\n'


def walkthrough_blocks() -> list[str]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert SECTION in readme, f"README.md has no section {SECTION!r}"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    assert blocks, "the walk-through has no shell block"
    return blocks


def test_walkthrough_commands_address_the_server_through_base() -> None:
    script = "\n".join(walkthrough_blocks())
    assert script.startswith(BASE_DEFAULT), "the walk-through must start by setting BASE"
    hard_coded = [line for line in script.splitlines()[1:] if "localhost:8000" in line or "127.0.0.1" in line]
    assert hard_coded == [], "walk-through commands must use $BASE, so the test can run them against its server"


async def test_the_readme_walkthrough_runs_twice_in_a_row(
    database_url: str, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = workspace / f"walkthrough-{uuid.uuid4().hex[:8]}"
    tenants, bin_dir = home / "tenants", home / "bin"
    for folder in (tenants, bin_dir):
        folder.mkdir(parents=True)
    for tenant_file in (PROJECT_ROOT / "tenants").glob("*.toml"):
        shutil.copy(tenant_file, tenants)
    xdg_open = bin_dir / "xdg-open"
    xdg_open.write_text(XDG_OPEN)
    xdg_open.chmod(0o755)
    opened = home / "xdg-open.log"
    script = PRELUDE + "\n".join(walkthrough_blocks())

    async with own_database(database_url, "walkthrough") as dsn:
        settings = make_settings(dsn, home, tenants_dir=tenants, data_dir=home / "data")
        await prepare_database(settings, dsn)  # what `make run` does before it serves
        async with LiveServer(settings) as server:
            env = cli_env(
                BASE=server.url,
                TENANTS_DIR=str(tenants),
                DATA_DIR=str(settings.data_dir),
                PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                XDG_OPEN_LOG=str(opened),
                # `make -s user` writes to the server's database.
                DATABASE_URL=dsn,
            )
            # Make takes the environment as variables: none of those its token and user targets read, no parent
            # make's.
            for name in (
                *("ROLES", "SCOPE", "SUB", "TTL", "TENANT", "EMAIL", "ROLE", "PASSWORD", "NAME"),
                *("MAKEFLAGS", "MFLAGS", "MAKELEVEL"),
            ):
                env.pop(name, None)
            with caplog.at_level(logging.INFO, logger="app.access"):
                for run in range(1, RUNS + 1):
                    code, output = await run_bash(script, env)
                    assert code == 0, f"run {run} of the walk-through failed:\n{output[-4000:]}"
            async with httpx.AsyncClient() as http:
                docs = await http.get(f"{server.url}/schema")

    assert opened.read_text().split() == [f"{server.url}/schema"] * RUNS
    assert docs.status_code == 200
    statuses = [getattr(record, "status", None) for record in caplog.records if record.name == "app.access"]
    assert statuses, "the walk-through made no request"
    assert [status for status in statuses if status is None or status >= 500] == []


async def run_bash(script: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the script with bash from the project folder (as a newcomer in a clone would); exit code and output."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
