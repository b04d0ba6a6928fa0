"""`make docs-screenshot`: a PNG of the API documentation page as headless Chromium renders it with no network.

python -m tests.docs_screenshot [OUT.png]

The service runs the way the test suite runs it: a throwaway PostgreSQL cluster and a private Redis server in a
temporary folder, migrated, and the app on a free loopback port; they and the folder are removed afterwards.
Prints where the PNG went.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from app.db import engine
from app.db.cluster import EmbeddedCluster
from app.docs import ASSETS_PATH, DOCS_PAGES
from app.ratelimit.server import PrivateRedis
from tests.support import LiveServer, make_settings, screenshot_offline


async def take(png: Path, workspace: Path) -> None:
    cluster = EmbeddedCluster(workspace / "postgres", throwaway=True)
    cluster.start()
    try:
        engine.configure(cluster.dsn())
        await engine.migrate()
        # No request to the docs is rate limited; the private Redis is there only because the app counts in it.
        with PrivateRedis(workspace / "redis").in_use() as redis_url:
            async with LiveServer(make_settings(cluster.dsn(), workspace, redis_url=redis_url)) as server:
                requested = await screenshot_offline(f"{server.url}{DOCS_PAGES[0]}", workspace / "browser", png)
                elsewhere = [url for url in requested if not url.startswith(f"{server.url}/")]
                if elsewhere or not any(url.startswith(f"{server.url}{ASSETS_PATH}/") for url in requested):
                    raise SystemExit(f"the page did not load its files from the service alone: {requested}")
    finally:
        cluster.stop()


def main() -> None:
    png = Path(sys.argv[1] if len(sys.argv) > 1 else "docs-screenshot.png").resolve()
    png.unlink(missing_ok=True)
    # Readable by `postgres`: the cluster runs as that user when we are root.
    workspace = Path(tempfile.mkdtemp(prefix="ticketing-docs-"))
    workspace.chmod(0o755)
    try:
        asyncio.run(take(png, workspace))
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    if not png.is_file():
        raise SystemExit(f"Chromium wrote no screenshot to {png}")
    print(png)


if __name__ == "__main__":
    main()
