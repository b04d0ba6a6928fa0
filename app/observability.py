"""Structured JSON logs, and a request id carried through every log line of a request.

The request id comes from a sane incoming `x-request-id` or is generated, and is echoed on every response.
Headers are never logged, so tokens and secrets cannot leak into the log stream.

Logging is off the request path: a request only stamps its record with the request id and puts it on an in-memory
queue; a thread of the process formats it as JSON and writes it (logging's QueueHandler and QueueListener). At the
default level (INFO) the access log line costs the request a few microseconds, not the ~40 it cost formatted and
written inline. The queue is drained when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import random
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_json = msgspec.json.Encoder()
access_log = logging.getLogger("app.access")

# Attributes every LogRecord has; anything else on a record was passed through `extra=` and is logged as a field.
# uvicorn adds color_message, a duplicate of msg with terminal escapes.
_REQUEST_ID_ATTR = "_request_id"
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    _REQUEST_ID_ATTR,
}


def _drain_log_queue() -> None:
    if _listener is not None:
        _listener.stop()


atexit.register(_drain_log_queue)


def current_request_id() -> str:
    return _request_id.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            # Stamped where the record was made (RequestIdQueueHandler); the formatting thread has no request.
            "request_id": getattr(record, _REQUEST_ID_ATTR, None) or _request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _json.encode(entry).decode()


class RequestIdQueueHandler(logging.handlers.QueueHandler):
    """Puts the record itself on the queue, stamped with the current request id: no formatting here (the listener's
    thread does it). The queue stays in this process, so nothing needs to be made picklable."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        setattr(record, _REQUEST_ID_ATTR, _request_id.get())
        return record


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str) -> None:
    global _listener
    if _listener is not None:  # configured again (tests): the old thread drains and stops
        _listener.stop()
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, writer, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [RequestIdQueueHandler(records)]
    root.setLevel(level.upper())
    # No log line names its source file and line: finding them walks the stack on every record. Nor its process or
    # thread: LogRecord would ask the kernel for the pid on every record (getpid is a system call; 1 to 5 % of a
    # worker's samples under load in issue 14's profile) and look up the thread and multiprocessing names.
    logging._srcfile = None
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    # uvicorn's own access log would duplicate ours, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx writes an INFO line for every request it sends: every webhook delivery, which its deliveries log
    # (GET .../webhook/{id}/deliveries) already records; its warnings still come through.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class RequestContextMiddleware:
    """Outermost ASGI layer: assigns the request id, echoes it, and writes one access-log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        # A correlation id, not a secret: random bits without uuid4's os.urandom system call per request.
        request_id = incoming.decode() if _SAFE_REQUEST_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                principal = scope.get("user")
                access_log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "tenant": str(getattr(principal, "tenant_id", "")) or None,
                        "subject": getattr(principal, "subject", None),
                    },
                )
            _request_id.reset(token)
