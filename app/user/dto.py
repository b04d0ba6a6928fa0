"""Wire types of the users directory and of sign-in (seed 004's user and login shapes)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.ticket.dto import Pagination

Role = Literal["admin", "agent", "customer"]
Status = Literal["active", "inactive"]
ROLES: tuple[Role, ...] = ("admin", "agent", "customer")

MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B's minimum for a password a person chooses
MAX_PASSWORD_LENGTH = 256
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_INVITATION_TOKEN_LENGTH = 100
# Enough to tell a typo from an address (no blank or control character, one @, a dot in the domain); whether mail
# arrives is the inviting admin's business. Spelled out, not \s, which Python's and JSON Schema's regexes read
# differently.
_ADDRESS_CHARACTER = r"[^@\x00-\x20\x7f-\x9f]"
EMAIL_PATTERN = f"^{_ADDRESS_CHARACTER}{{1,64}}@{_ADDRESS_CHARACTER}+\\.{_ADDRESS_CHARACTER}+$"

Email = Annotated[str, Meta(max_length=MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN)]
Password = Annotated[str, Meta(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]


class UserOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    # The `sub` of the user's tokens: what tickets record as created_by and assignee (a built-in user's is its id).
    subject: str
    realm: str
    name: str | None
    email: str | None
    role: Role
    status: Status
    created_at: datetime.datetime
    # Built-in users: their last sign-in. Last seen: their last authenticated call, kept to the minute.
    last_login_at: datetime.datetime | None
    last_seen_at: datetime.datetime | None


class UserPage(msgspec.Struct, frozen=True):
    data: list[UserOut]
    pagination: Pagination


class CreateUserRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A user of the tenant's builtin realm, who signs in with this email and password; without a password, the user
    is invited: the answer carries a one-time token with which the user sets a password (POST /auth/invitation)."""

    email: Email
    password: Password | UnsetType = UNSET
    role: Role
    name: Name | None = None


class UpdateUserRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The members sent change; the others stay. A user of an external realm takes name, email and role from its
    identity provider's tokens: only its status changes here."""

    name: Name | UnsetType | None = UNSET
    email: Email | UnsetType = UNSET
    role: Role | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    # A new password (a reset); the user's tokens issued before stay valid until they expire.
    password: Password | UnsetType = UNSET


class Invitation(msgspec.Struct, frozen=True):
    # Shown once, in the answer to the create: the service keeps only its SHA-256, so a replay of that answer (the
    # same Idempotency-Key) has null here.
    token: str | None
    expires_at: datetime.datetime


class CreatedUser(UserOut, frozen=True, kw_only=True):
    """The new user; an invited one (`status: inactive` until it accepts) with its invitation."""

    invitation: Invitation | UnsetType = UNSET


class AcceptInvitationRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    token: Annotated[str, Meta(min_length=1, max_length=MAX_INVITATION_TOKEN_LENGTH)]
    password: Password
    # The tenant, when the x-tenantid header does not name it.
    tenant_id: uuid.UUID | None = None


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[str, Meta(min_length=1, max_length=MAX_EMAIL_LENGTH)]
    password: Annotated[str, Meta(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    # The tenant, when the x-tenantid header does not name it.
    tenant_id: uuid.UUID | None = None


class SignedInUser(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str | None
    email: str | None
    role: Role


class LoginResponse(msgspec.Struct, frozen=True):
    token: str
    expires_at: datetime.datetime
    user: SignedInUser


class TokenResponse(msgspec.Struct, frozen=True, rename={"not_before_policy": "not-before-policy"}):
    """Keycloak's client-credentials answer (RFC 6749, section 5.1)."""

    access_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str
    not_before_policy: int
    scope: str


user_decoder = msgspec.json.Decoder(UserOut)
created_user_decoder = msgspec.json.Decoder(CreatedUser)
