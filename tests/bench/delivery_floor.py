"""The floor under a delivered webhook's CPU: what one signed POST costs the sender (the service's own GuardedClient,
aiohttp, with the signature) and the bench's receiver (tests/bench/sink.py), with no database at all. Nothing the
delivery subsystem could do makes an event cheaper than this; the README's "What the targets would take" compares it
with what the webhook target allows.

    .venv/bin/python -m tests.bench.delivery_floor [requests] [concurrency ...]

Run it alone: it measures CPU time, which anything else on the machine's two cores disturbs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from app.webhook.signing import new_secret, signature_header
from app.webhook.ssrf import GuardedClient
from tests.bench.sink import Sink

REQUESTS = 20_000
CONCURRENCY = (16, 4, 1)
WARMUP = 500
# A ticket.updated body of the bench's size (the receiver reads `timestamp` from it).
BODY = (
    b'{"event":"ticket.updated","timestamp":"2026-12-02T09:00:00.123456Z","data":{"ticket":{"id":"'
    + str(uuid.uuid4()).encode()
    + b'","object_id":"REQ-000123","sequence":12,"title":"A printer","status":{"previous":"open","current":"open"},'
    + b'"updated_by":{"id":"bench","name":null,"email":null},"changes":{"'
    + str(uuid.uuid4()).encode()
    + b'":{"previous":1,"current":2}}}}}'
)


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (its own threads; not its children)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(sink: Sink, requests: int, concurrency: int) -> tuple[float, float, float]:
    """CPU ms per request in this process and in the receiver, and requests a second."""
    client = GuardedClient(allow_loopback=True, loopback_only=True, max_connections=concurrency)
    secret = new_secret()
    numbers = iter(range(WARMUP + requests))
    receiver = sink.pid

    async def sender(count: int) -> None:
        for _ in range(count):
            message_id = f"evt_{next(numbers)}"
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header([secret], message_id, timestamp, BODY),
            }
            answer = await client.post(sink.url, BODY, headers, excerpt_bytes=1024)
            if answer.status != 200:
                raise RuntimeError(f"the receiver answered {answer.status}")

    try:
        await asyncio.gather(*(sender(WARMUP // concurrency) for _ in range(concurrency)))
        ours, theirs, started = time.process_time(), process_cpu_seconds(receiver), time.monotonic()
        await asyncio.gather(*(sender(requests // concurrency) for _ in range(concurrency)))
        sent = requests // concurrency * concurrency
        elapsed = time.monotonic() - started
        return (
            1000 * (time.process_time() - ours) / sent,
            1000 * (process_cpu_seconds(receiver) - theirs) / sent,
            sent / elapsed,
        )
    finally:
        await client.aclose()


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS
    levels = [int(value) for value in sys.argv[2:]] or list(CONCURRENCY)
    with Sink() as sink:
        for concurrency in levels:
            sender, receiver, rate = asyncio.run(measure(sink, requests, concurrency))
            print(
                f"concurrency {concurrency:3d}: sender {sender:.3f} ms, receiver {receiver:.3f} ms CPU a request "
                f"(together {sender + receiver:.3f} ms); {rate:.0f} requests/s"
            )


if __name__ == "__main__":
    main()
