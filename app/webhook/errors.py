"""Webhook errors, in the v2 envelope."""

from __future__ import annotations

from app.errors import AppError


class WebhookNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"Webhook not found ({subscription_id[:64]})")


class DeliveryNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"Webhook delivery not found ({delivery_id[:64]})")


class DeclaredInTenantFile(AppError):
    status = 409
    code = "DECLARED_IN_TENANT_FILE"

    def __init__(self) -> None:
        super().__init__("This webhook is declared in the tenant file: change it there and sync the tenants")
