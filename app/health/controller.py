"""Liveness and readiness probes: no token needed, so orchestrators can call them."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from app.db.database import Database
from app.errors import ServiceUnavailable, error_responses

READY_TIMEOUT_SECONDS = 2.0


class HealthStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    database: str | None = None


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get("/live", operation_id="checkLiveness", summary="Liveness: the process serves requests")
    async def live(self) -> HealthStatus:
        """The process is up and its event loop answers."""
        return HealthStatus(status="ok")

    @get(
        "/ready",
        operation_id="checkReadiness",
        summary="Readiness: the database answers",
        responses=error_responses(503),
    )
    async def ready(self, db: NamedDependency[Database]) -> HealthStatus:
        """Ready when the database answers a trivial query within two seconds; 503 otherwise."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await db.ping()
        # Whatever stops the database from answering (a timeout, a refused or dropped connection, a server shutting
        # down) makes the process not ready; the probe's answer is the same for all of them.
        except Exception:
            raise ServiceUnavailable("Database unavailable") from None
        return HealthStatus(status="ok", database="ok")
