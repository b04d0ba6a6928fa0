"""What the HTTP server does with connections, over raw sockets and httpx: a connection that does not complete a
request's headers in time is closed (idle, half a request line, a trickled header), and so is one whose body stops
or trickles, while keep-alive clients that are merely slow between requests, and requests whose headers or body are
slow but flowing, are served; a client hanging up in the middle of its body is one quiet log line, not a 500 with a
traceback; and a 413 for an oversized body reaches the client as a 413 on a connection it can go on using, not as a
reset."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_SCOPE, STATES, LiveServer, TenantSpec, auth_headers, make_settings, token

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = HEADER_TIMEOUT
# Generous upper bounds: the server must have acted by then; only a server that never acts fails them.
CLOSED_WITHIN = 5.0 * HEADER_TIMEOUT
SLOW_STEP = 0.15 * HEADER_TIMEOUT  # pause between the pieces of a slow request
IDLE_CONNECTIONS = 50
LIVE = b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n"


@pytest.fixture(scope="module")
async def quick(migrated: str, workspace: Path) -> AsyncIterator[LiveServer]:
    """A server that gives a connection one second to deliver a request's headers, and a body one second between
    reads (plus a second per 500 bytes in all)."""
    settings = make_settings(
        migrated, workspace, request_header_timeout_seconds=HEADER_TIMEOUT, request_body_timeout_seconds=BODY_TIMEOUT
    )
    async with LiveServer(settings) as live:
        yield live


class Connection:
    """One raw TCP connection to the server, speaking HTTP/1.1 by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: float) -> None:
        self.reader = reader
        self.writer = writer
        # The server's timers start when it accepts the connection, which is after the client began connecting and
        # may be well before the client's event loop sees the connection complete (the server shares the loop: a
        # pause of it in between made one connection of fifty look closed after 0.45 s of a 1 s timeout, twice in
        # full CI runs). Times are measured from the start of connecting: never later than the server's start, and
        # not from when a test starts waiting (on a loaded machine, opening fifty connections takes a while).
        self.opened = opened

    @classmethod
    async def open(cls, server: LiveServer) -> Connection:
        host, port = server.url.removeprefix("http://").split(":")
        opened = time.monotonic()
        return cls(*await asyncio.open_connection(host, int(port)), opened)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response (a Content-Length body): status, headers (lower-case names), body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), CLOSED_WITHIN)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), CLOSED_WITHIN)
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self) -> float:
        """Wait until the server closes the connection without having sent anything; returns how long after the
        connection was opened that was. A reset counts as closed: a byte that reached the server as it closed makes
        the kernel send one."""
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(self.reader.read(), CLOSED_WITHIN) == b""
        return time.monotonic() - self.opened

    def close(self) -> None:
        self.writer.close()


async def test_idle_connections_are_closed_after_the_header_timeout(quick: LiveServer) -> None:
    connections: list[Connection] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            connections.append(await Connection.open(quick))
        waited = await asyncio.gather(*(c.closed_by_server() for c in connections))
    finally:
        for connection in connections:
            connection.close()

    assert min(waited) > HEADER_TIMEOUT / 2  # closed by the timeout, not at once


async def test_half_a_request_line_is_closed_after_the_header_timeout(quick: LiveServer) -> None:
    connection = await Connection.open(quick)
    await connection.send(b"GET /health/li")

    assert await connection.closed_by_server() > HEADER_TIMEOUT / 2
    connection.close()


@pytest.mark.parametrize("after_a_request", [False, True], ids=["new connection", "after a request"])
async def test_a_trickled_header_is_cut_off(quick: LiveServer, after_a_request: bool) -> None:
    connection = await Connection.open(quick)
    if after_a_request:
        await connection.send(LIVE)
        assert (await connection.response())[0] == 200
    closed = asyncio.ensure_future(connection.closed_by_server())
    await connection.send(b"GET /health/live HTTP/1.1\r\nhost: test\r\n")
    # One byte of a never-ending header every SLOW_STEP, each of which would reset uvicorn's own keep-alive timer,
    # until the server closes the connection (a write may then fail).
    with contextlib.suppress(ConnectionError):
        while not closed.done():
            await connection.send(b"x")
            await asyncio.sleep(SLOW_STEP)

    assert HEADER_TIMEOUT / 2 < await closed < CLOSED_WITHIN
    connection.close()


async def test_a_keep_alive_client_may_wait_longer_than_the_header_timeout_between_requests(
    quick: LiveServer,
) -> None:
    connection = await Connection.open(quick)
    await connection.send(LIVE)
    assert (await connection.response())[0] == 200

    await asyncio.sleep(1.5 * HEADER_TIMEOUT)  # idle: uvicorn's keep-alive timeout applies, not the header timeout
    for piece in (LIVE[:10], LIVE[10:25], LIVE[25:]):  # and the next request's clock starts at its first byte
        await connection.send(piece)
        await asyncio.sleep(SLOW_STEP)
    status, _, body = await connection.response()

    assert (status, json.loads(body)) == (200, {"status": "ok"})
    connection.close()


def post_head(tenant: TenantSpec, framing: str) -> bytes:
    """The head of an admin's POST of a ticket state, with `framing` (a content-length or transfer-encoding line)."""
    admin = auth_headers(tenant, token(tenant, roles=tenant.roles["admin"], scope=ADMIN_SCOPE))
    lines = [f"POST {STATES} HTTP/1.1", "host: test", "content-type: application/json", framing]
    lines += [f"{header}: {value}" for header, value in admin.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def new_state_body(size: int) -> tuple[str, bytes]:
    """A valid new state's body padded with JSON whitespace to `size` bytes; the state's name."""
    name = f"slow-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name, "state_type": "open"}).encode()
    return name, body.ljust(size)


async def test_a_slow_but_flowing_request_is_served(quick: LiveServer, alpha: TenantSpec) -> None:
    name, body = new_state_body(3000)
    head = post_head(alpha, f"content-length: {len(body)}")
    connection = await Connection.open(quick)

    # The headers in three pieces, well within the timeout; then the body at about 1000 bytes a second, for three
    # times the body timeout: a slow upload that keeps flowing (above 500 bytes a second) is never cut.
    for piece in (head[:20], head[20:200], head[200:]):
        await connection.send(piece)
        await asyncio.sleep(SLOW_STEP)
    for start in range(0, len(body), 150):
        await connection.send(body[start : start + 150])
        await asyncio.sleep(SLOW_STEP)
    status, _, answer = await connection.response()

    assert status == 201, answer
    assert json.loads(answer)["name"] == name
    await connection.send(LIVE)  # and the connection stays usable
    assert (await connection.response())[0] == 200
    connection.close()


class RequestsFinished(logging.Handler):
    """Counts the server's access-log lines, each written as a request's handling ends (the server runs in this
    event loop), so a test can wait for a request it cannot see an answer to."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.finished = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.finished.set()

    @classmethod
    @contextlib.asynccontextmanager
    async def awaited(cls, caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
        """Capture every log record at INFO and above into `caplog` during the block, then wait (bounded) until a
        request's handling has ended."""
        watch = cls()
        access = logging.getLogger("app.access")
        access.addHandler(watch)
        try:
            with caplog.at_level(logging.INFO):
                yield
                await asyncio.wait_for(watch.finished.wait(), CLOSED_WITHIN)
        finally:
            access.removeHandler(watch)


@pytest.mark.parametrize("trickle", [False, True], ids=["body stops", "a byte at a time"])
async def test_an_incomplete_body_is_cut_off(
    quick: LiveServer, alpha: TenantSpec, trickle: bool, caplog: pytest.LogCaptureFixture
) -> None:
    _, body = new_state_body(200)
    connection = await Connection.open(quick)
    await connection.send(post_head(alpha, f"content-length: {len(body)}") + body[:20])
    closed = asyncio.ensure_future(connection.closed_by_server())
    # Either nothing more, or a byte every SLOW_STEP: never idle for the timeout, but far below 500 bytes a second.
    async with RequestsFinished.awaited(caplog):  # and the handler waiting for the body ends
        with contextlib.suppress(ConnectionError):
            for byte in body[20:] if trickle else b"":
                if closed.done():
                    break
                await connection.send(bytes([byte]))
                await asyncio.sleep(SLOW_STEP)

        assert BODY_TIMEOUT / 2 < await closed < CLOSED_WITHIN

    assert_client_disconnect_logged_quietly(caplog)
    connection.close()


async def test_a_client_hanging_up_mid_body_is_logged_quietly_and_the_server_goes_on(
    quick: LiveServer, alpha: TenantSpec, caplog: pytest.LogCaptureFixture
) -> None:
    _, body = new_state_body(200)
    connection = await Connection.open(quick)

    async with RequestsFinished.awaited(caplog):
        await connection.send(post_head(alpha, f"content-length: {len(body)}") + body[:50])
        connection.close()

    assert_client_disconnect_logged_quietly(caplog)
    fresh = await Connection.open(quick)
    await fresh.send(LIVE)
    assert (await fresh.response())[0] == 200
    fresh.close()


def assert_client_disconnect_logged_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """One INFO line for the request whose client went away, its access line with nginx's 499, and nothing at
    WARNING or above, no traceback."""
    assert [r.getMessage() for r in caplog.records if r.name == "app.errors"] == [
        "client disconnected before sending the whole request body"
    ]
    assert [getattr(r, "status", None) for r in caplog.records if r.name == "app.access"] == [499]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


# --- a 413 reaches a keep-alive client as a 413 ---------------------------------------------------------------------

LIMIT = 1024 * 1024  # MAX_BODY_BYTES of the test servers
TOO_LARGE = {
    "error": True,
    "code": "PAYLOAD_TOO_LARGE",
    "message": f"Request body is larger than the limit of {LIMIT} bytes",
    "status": 413,
}
# Refused by Litestar as it reads the body, which knows no limit to name.
CHUNKED_TOO_LARGE = {**TOO_LARGE, "message": "Request body is larger than the limit"}


async def test_an_oversized_body_is_answered_413_and_the_connection_stays_usable(
    quick: LiveServer, alpha: TenantSpec
) -> None:
    body = b"x" * (2 * LIMIT)
    connection = await Connection.open(quick)

    # All of it at once, reading nothing until it is sent: the server must read (and discard) what it refused,
    # or closing the socket with unread data sends a reset that destroys the 413 before the client reads it.
    await connection.send(post_head(alpha, f"content-length: {len(body)}") + body)
    status, headers, answer = await connection.response()

    assert (status, json.loads(answer)) == (413, TOO_LARGE)
    assert "connection" not in headers  # kept alive: the rest of the body was read and discarded
    await connection.send(LIVE)
    assert (await connection.response())[0] == 200
    connection.close()
    fresh = await Connection.open(quick)
    await fresh.send(LIVE)
    assert (await fresh.response())[0] == 200
    fresh.close()


async def test_httpx_keep_alive_reads_the_413_and_reuses_the_connection(quick: LiveServer, alpha: TenantSpec) -> None:
    admin = auth_headers(alpha, token(alpha, roles=alpha.roles["admin"], scope=ADMIN_SCOPE))
    async with httpx.AsyncClient(base_url=quick.url, timeout=10, limits=httpx.Limits(max_connections=1)) as http:
        for _ in range(3):
            refused = await http.post(STATES, headers=admin, content=b"x" * (2 * LIMIT))
            live = await http.get("/health/live")

            assert (refused.status_code, refused.json()) == (413, TOO_LARGE)
            assert live.status_code == 200
            assert live.extensions["network_stream"] is refused.extensions["network_stream"]


async def test_an_oversized_chunked_body_is_answered_413_and_the_connection_stays_usable(
    quick: LiveServer, alpha: TenantSpec
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b"x" * (LIMIT // 16)  # twice the limit in all, without a content-length

    admin = auth_headers(alpha, token(alpha, roles=alpha.roles["admin"], scope=ADMIN_SCOPE))
    async with httpx.AsyncClient(base_url=quick.url, timeout=10, limits=httpx.Limits(max_connections=1)) as http:
        refused = await http.post(STATES, headers=admin, content=chunks())
        live = await http.get("/health/live")

    assert refused.request.headers["transfer-encoding"] == "chunked"
    assert (refused.status_code, refused.json()) == (413, CHUNKED_TOO_LARGE)
    assert live.status_code == 200
    assert live.extensions["network_stream"] is refused.extensions["network_stream"]


async def test_a_client_that_stops_sending_a_huge_body_reads_the_413_and_is_then_cut_off(
    quick: LiveServer, alpha: TenantSpec
) -> None:
    connection = await Connection.open(quick)
    await connection.send(post_head(alpha, f"content-length: {1024 * LIMIT}") + b"x" * (LIMIT // 4))

    status, _, answer = await connection.response()

    assert (status, json.loads(answer)) == (413, TOO_LARGE)
    # Discarding the rest of a refused body is bounded by the header timeout: the connection must deliver its next
    # request's headers in time, and this one never will.
    await connection.send(b"x" * 1024)
    assert await connection.closed_by_server() < CLOSED_WITHIN
    connection.close()
