"""Rules for webhook subscriptions: safe URLs, secrets generated here and shown only on create and rotate, rotation
with an overlap, the deliveries' log, retries, replays, test pings, and subscriptions declared in tenant files."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec
from msgspec import UNSET

from app.auth.principal import Principal
from app.db.database import Database
from app.errors import InputValidationFailure
from app.idempotency.service import Claim, Idempotency, Outcome
from app.tenancy.model import TenantConfig
from app.tenancy.repository import TenantRepository
from app.user.people import people
from app.user.repository import UserRepository
from app.webhook.delivery import deliveries_for, ping_body, subjects_of, subscribed
from app.webhook.dto import (
    DeliveryOut,
    Events,
    ReplayOut,
    ReplayRequest,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)
from app.webhook.errors import DeclaredInTenantFile, DeliveryNotFound, WebhookNotFound
from app.webhook.repository import DeliveryRow, EventRow, NewDelivery, SubscriptionRow, WebhookRepository
from app.webhook.second_looks import LOOK_AGAIN_SECONDS, SecondLooks
from app.webhook.signing import is_secret, new_secret
from app.webhook.ssrf import url_problem
from app.webhook.statuses import TenantStatuses

R = TypeVar("R")

# A replay re-sends at most this many events; a larger range is refused (replay it in parts).
MAX_REPLAY_EVENTS = 10_000
INVALID = "Invalid webhook"
# The namespace of declared subscriptions' ids (uuid5 of the tenant and the declaration's name).
DECLARED_NAMESPACE = uuid.UUID("5d0b7c8e-3f4a-4c1b-9e2d-7a6b5c4d3e2f")


class DeclaredWebhookError(Exception):
    """A tenant file's webhook cannot be used (its secret's environment variable is missing, its URL unsafe)."""


def _events_column(events: Events) -> list[str] | None:
    return None if events == "all" else sorted(set(events))


def _events_out(events: list[str] | None) -> Events:
    return "all" if events is None else events  # type: ignore[return-value]


def to_out(row: SubscriptionRow, now: datetime.datetime | None = None) -> SubscriptionOut:
    now = now or datetime.datetime.now(datetime.UTC)
    overlap = row.previous_secret_until if row.previous_secret_until and row.previous_secret_until > now else None
    return SubscriptionOut(
        id=row.id,
        url=row.url,
        events=_events_out(row.events),
        description=row.description,
        active=row.active,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        previous_secret_valid_until=overlap,
        declared=row.declared,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def with_secret(row: SubscriptionRow) -> SubscriptionWithSecret:
    return SubscriptionWithSecret(**msgspec.structs.asdict(to_out(row)), secret=row.secret)


def delivery_out(row: DeliveryRow) -> DeliveryOut:
    pending = row.status == "pending"
    return DeliveryOut(
        id=row.id,
        webhook_id=row.message_id,
        event=row.event_type,
        ticket_id=row.ticket_id,
        sequence=row.sequence,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_latency_ms=row.last_latency_ms,
        last_error=row.last_error,
        last_response=row.last_response,
        next_attempt_at=row.next_attempt_at if pending else None,
        expires_at=row.expires_at if pending else None,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
    )


def _parse_id(value: str, missing: Callable[[str], Exception]) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise missing(value) from None


_with_secret_decoder = msgspec.json.Decoder(SubscriptionWithSecret)
_out_decoder = msgspec.json.Decoder(SubscriptionOut)
_delivery_decoder = msgspec.json.Decoder(DeliveryOut)
_replay_decoder = msgspec.json.Decoder(ReplayOut)
_nothing_decoder = msgspec.json.Decoder(None)


class WebhookService:
    def __init__(
        self,
        db: Database,
        repository: WebhookRepository,
        keys: Idempotency,
        *,
        allow_loopback: bool,
        secret_overlap_seconds: float,
        horizon_seconds: float,
        second_looks: SecondLooks,
        queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._repository = repository
        self._users = UserRepository(db)
        self._statuses = TenantStatuses(TenantRepository(db))
        self._keys = keys
        self._allow_loopback = allow_loopback
        self._overlap = secret_overlap_seconds
        self._horizon = horizon_seconds
        # Looks again at the deliveries a replay or a retry queued to wait, once committed.
        self._second_looks = second_looks
        # Called after deliveries were queued here, so this process's worker sends them without waiting for a poll.
        self._queued = queued

    async def list_subscriptions(self, principal: Principal) -> list[SubscriptionOut]:
        now = datetime.datetime.now(datetime.UTC)
        return [to_out(row, now) for row in await self._repository.list_all(principal.tenant_id)]

    async def get(self, principal: Principal, subscription_id: str) -> SubscriptionOut:
        return to_out(await self._existing(principal, subscription_id))

    async def create(
        self, principal: Principal, subscription: SubscriptionIn, idempotency_key: str | None
    ) -> Outcome[SubscriptionWithSecret]:
        claim = self._keys.claim(principal, idempotency_key, "create_webhook", subscription)
        return await self._keys.once(
            principal, claim, lambda: self._create(principal, subscription), _with_secret_decoder
        )

    async def _create(self, principal: Principal, subscription: SubscriptionIn) -> SubscriptionWithSecret:
        await self._check_url(subscription.url)
        row = await self._repository.insert(
            principal.tenant_id,
            uuid.uuid4(),
            subscription.url,
            _events_column(subscription.events),
            subscription.description,
            subscription.active,
            new_secret(),
            principal.subject,
        )
        return with_secret(row)

    async def update(
        self, principal: Principal, subscription_id: str, change: SubscriptionUpdate, idempotency_key: str | None
    ) -> Outcome[SubscriptionOut]:
        claim = self._keys.claim(principal, idempotency_key, "update_webhook", subscription_id, change)
        return await self._keys.once(
            principal, claim, lambda: self._update(principal, subscription_id, change), _out_decoder
        )

    async def _update(self, principal: Principal, subscription_id: str, change: SubscriptionUpdate) -> SubscriptionOut:
        current = await self._changeable(principal, subscription_id)
        url = current.url if change.url is UNSET else change.url
        if url != current.url:
            await self._check_url(url)
        row = await self._repository.update(
            principal.tenant_id,
            current.id,
            url,
            current.events if change.events is UNSET else _events_column(change.events),
            current.description if change.description is UNSET else change.description,
            current.active if change.active is UNSET else change.active,
            principal.subject,
        )
        if row is None:
            raise WebhookNotFound(subscription_id)
        self._queued()  # switched on again: its waiting deliveries are due
        return to_out(row)

    async def delete(self, principal: Principal, subscription_id: str, idempotency_key: str | None) -> Outcome[None]:
        claim = self._keys.claim(principal, idempotency_key, "delete_webhook", subscription_id)
        return await self._keys.once(
            principal, claim, lambda: self._delete(principal, subscription_id), _nothing_decoder
        )

    async def _delete(self, principal: Principal, subscription_id: str) -> None:
        current = await self._changeable(principal, subscription_id)
        if not await self._repository.delete(principal.tenant_id, current.id):
            raise WebhookNotFound(subscription_id)

    async def rotate(
        self, principal: Principal, subscription_id: str, idempotency_key: str | None
    ) -> Outcome[SubscriptionWithSecret]:
        claim = self._keys.claim(principal, idempotency_key, "rotate_webhook", subscription_id)
        return await self._keys.once(
            principal, claim, lambda: self._rotate(principal, subscription_id), _with_secret_decoder
        )

    async def _rotate(self, principal: Principal, subscription_id: str) -> SubscriptionWithSecret:
        current = await self._changeable(principal, subscription_id)
        row = await self._repository.rotate(
            principal.tenant_id, current.id, new_secret(), self._overlap, principal.subject
        )
        if row is None:
            raise WebhookNotFound(subscription_id)
        return with_secret(row)

    async def deliveries(
        self, principal: Principal, subscription_id: str, page: int, per_page: int
    ) -> tuple[int, list[DeliveryOut]]:
        current = await self._existing(principal, subscription_id)
        total = await self._repository.count_deliveries(principal.tenant_id, current.id)
        rows = await self._repository.deliveries(principal.tenant_id, current.id, per_page, (page - 1) * per_page)
        return total, [delivery_out(row) for row in rows]

    async def retry(
        self, principal: Principal, subscription_id: str, delivery_id: str, idempotency_key: str | None
    ) -> Outcome[DeliveryOut]:
        claim = self._keys.claim(principal, idempotency_key, "retry_webhook_delivery", subscription_id, delivery_id)
        return await self._once_looking_again(
            principal,
            claim,
            lambda waiting: self._retry(principal, subscription_id, delivery_id, waiting),
            _delivery_decoder,
        )

    async def _retry(
        self, principal: Principal, subscription_id: str, delivery_id: str, waiting: list[uuid.UUID]
    ) -> DeliveryOut:
        """The retry; a delivery it leaves waiting behind one in flight is added to `waiting`."""
        current = await self._existing(principal, subscription_id)
        wanted = _parse_id(delivery_id, DeliveryNotFound)
        row = await self._repository.retry(principal.tenant_id, current.id, wanted, self._horizon)
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row.status == "pending" and row.next_attempt_at is None:
            waiting.append(row.id)
        self._queued()
        return delivery_out(row)

    async def replay(
        self, principal: Principal, subscription_id: str, request: ReplayRequest, idempotency_key: str | None
    ) -> Outcome[ReplayOut]:
        claim = self._keys.claim(principal, idempotency_key, "replay_webhook", subscription_id, request)
        return await self._once_looking_again(
            principal,
            claim,
            lambda waiting: self._replay(principal, subscription_id, request, waiting),
            _replay_decoder,
        )

    async def _replay(
        self, principal: Principal, subscription_id: str, request: ReplayRequest, waiting: list[uuid.UUID]
    ) -> ReplayOut:
        """The replay; the deliveries it queues to wait behind one in flight are added to `waiting`."""
        current = await self._existing(principal, subscription_id)
        rows = await self._replayed_events(principal.tenant_id, request)
        wanted = [row for row in rows if subscribed(current, row.kind)]
        known = await people(self._users, principal.tenant_id, (s for row in wanted for s in subjects_of(row)))
        statuses = await self._statuses.of(principal.tenant_id)
        deliveries = deliveries_for([(row, [current]) for row in wanted], known, statuses)
        async with self._db.transaction():
            waiting.extend(await self._repository.queue(principal.tenant_id, deliveries, self._horizon))
        self._queued()
        return ReplayOut(len(deliveries), [delivery.message_id for delivery in deliveries])

    async def _once_looking_again(
        self,
        principal: Principal,
        claim: Claim | None,
        write: Callable[[list[uuid.UUID]], Awaitable[R]],
        stored: msgspec.json.Decoder[R],
    ) -> Outcome[R]:
        """`write` under the idempotency key, given a list to add the deliveries it leaves waiting to; once the
        wrapper has committed them, they are looked at again: at once, and when every statement under way as they
        committed has finished (see SecondLooks). A stored outcome wrote nothing, and leaves nothing to look at."""
        waiting: list[uuid.UUID] = []
        outcome = await self._keys.once(principal, claim, lambda: write(waiting), stored)
        self._second_looks.note(principal.tenant_id, waiting, after_seconds=0.0)
        self._second_looks.note(principal.tenant_id, waiting, after_seconds=LOOK_AGAIN_SECONDS)
        return outcome

    async def _replayed_events(self, tenant_id: uuid.UUID, request: ReplayRequest) -> list[EventRow]:
        by_ticket = (
            request.ticket is not UNSET or request.from_sequence is not UNSET or request.to_sequence is not UNSET
        )
        by_time = request.since is not UNSET or request.until is not UNSET
        if by_ticket == by_time:
            raise InputValidationFailure(
                "Invalid replay",
                {
                    "body": "give either `ticket` and `from_sequence` (and optionally `to_sequence`), or `since` "
                    "(and optionally `until`)"
                },
            )
        limit = MAX_REPLAY_EVENTS + 1
        if by_ticket:
            if request.ticket is UNSET or request.from_sequence is UNSET:
                raise InputValidationFailure(
                    "Invalid replay", {"from_sequence" if request.ticket is not UNSET else "ticket": "required"}
                )
            first = int(request.from_sequence)
            last = 2**31 - 1 if request.to_sequence is UNSET else int(request.to_sequence)
            if last < first:
                raise InputValidationFailure("Invalid replay", {"to_sequence": "must not be below from_sequence"})
            rows = await self._repository.events_of_ticket(tenant_id, request.ticket, first, last, limit)
        else:
            if request.since is UNSET:
                raise InputValidationFailure("Invalid replay", {"since": "required"})
            since = _aware(request.since, "since")
            until = (
                datetime.datetime.max.replace(tzinfo=datetime.UTC)
                if request.until is UNSET
                else _aware(request.until, "until")
            )
            if until < since:
                raise InputValidationFailure("Invalid replay", {"until": "must not be before since"})
            rows = await self._repository.events_between(tenant_id, since, until, limit)
        if len(rows) > MAX_REPLAY_EVENTS:
            raise InputValidationFailure(
                "Invalid replay", {"body": f"more than {MAX_REPLAY_EVENTS} events in the range: replay it in parts"}
            )
        return rows

    async def test(
        self, principal: Principal, subscription_id: str, idempotency_key: str | None
    ) -> Outcome[DeliveryOut]:
        claim = self._keys.claim(principal, idempotency_key, "test_webhook", subscription_id)
        return await self._keys.once(
            principal, claim, lambda: self._test(principal, subscription_id), _delivery_decoder
        )

    async def _test(self, principal: Principal, subscription_id: str) -> DeliveryOut:
        current = await self._existing(principal, subscription_id)
        ping = NewDelivery(
            uuid.uuid4(), current.id, f"msg_{uuid.uuid4().hex}", "webhook.test", None, None, None, ping_body(current.id)
        )
        async with self._db.transaction():
            await self._repository.queue(principal.tenant_id, [ping], self._horizon)
            row = await self._repository.delivery(principal.tenant_id, current.id, ping.id)
        assert row is not None
        self._queued()
        return delivery_out(row)

    async def sync_declared(self, tenants: list[TenantConfig], environ: Mapping[str, str]) -> list[str]:
        """Bring each enabled tenant's file-declared subscriptions in line with its file: created, changed (a new
        secret in the environment variable is a rotation, with the usual overlap), or removed when no longer
        declared. Returns '<slug>/<name>' of each one changed. Nothing is changed unless every declaration is
        usable."""
        planned: list[tuple[TenantConfig, list[tuple[uuid.UUID, str, str]]]] = []
        for tenant in tenants:
            if tenant.disabled:
                continue
            resolved = []
            for index, declared in enumerate(tenant.webhooks):
                where = f"{tenant.slug}: webhooks[{index}] ({declared.name})"
                secret = environ.get(declared.secret_env, "")
                if not is_secret(secret):
                    raise DeclaredWebhookError(
                        f"{where}: the environment variable {declared.secret_env} must hold a secret "
                        "(whsec_ followed by base64 of at least 24 random bytes)"
                    )
                problem = await url_problem(declared.url, allow_loopback=self._allow_loopback)
                if problem is not None:
                    raise DeclaredWebhookError(f"{where}: url: {problem}")
                subscription_id = uuid.uuid5(DECLARED_NAMESPACE, f"{tenant.id}:{declared.name}")
                resolved.append((subscription_id, declared.name, secret))
            planned.append((tenant, resolved))
        changed = []
        overlap_until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self._overlap)
        for tenant, resolved in planned:
            async with self._db.transaction():
                for (subscription_id, name, secret), declared in zip(resolved, tenant.webhooks, strict=True):
                    row = await self._repository.upsert_declared(
                        tenant.id,
                        subscription_id,
                        declared.url,
                        None if declared.events is None else sorted(set(declared.events)),
                        declared.description,
                        declared.active,
                        secret,
                        overlap_until,
                    )
                    if row is not None:
                        changed.append(f"{tenant.slug}/{name}")
                await self._repository.delete_undeclared(
                    tenant.id, [subscription_id for subscription_id, _, _ in resolved]
                )
        return changed

    async def _existing(self, principal: Principal, subscription_id: str) -> SubscriptionRow:
        row = await self._repository.get(principal.tenant_id, _parse_id(subscription_id, WebhookNotFound))
        if row is None:
            raise WebhookNotFound(subscription_id)
        return row

    async def _changeable(self, principal: Principal, subscription_id: str) -> SubscriptionRow:
        row = await self._existing(principal, subscription_id)
        if row.declared:
            raise DeclaredInTenantFile()
        return row

    async def _check_url(self, url: str) -> None:
        problem = await url_problem(url, allow_loopback=self._allow_loopback)
        if problem is not None:
            raise InputValidationFailure(INVALID, {"url": problem})


def _aware(moment: datetime.datetime, name: str) -> datetime.datetime:
    if moment.tzinfo is None:
        raise InputValidationFailure("Invalid replay", {name: "must include a time zone"})
    return moment
