"""Which delivery is in flight: a claim sets leased_until to the end of its lease, the attempt's outcome clears it.

A replay or a manual retry can put an earlier event of a ticket ahead of the delivery being sent; claimed at once, it
went out while the other was still under way, two attempts of one queue at the same time (and two such attempts
ending together could each see the other still pending, leaving the delivery behind them to the slow sweep). A replay
or a retry now makes such an earlier event wait for the attempt in flight: until its outcome, at the latest until its
lease ends; claims only set leased_until. next_attempt_at cannot tell: a pending delivery's next_attempt_at is in the
future both while it is in flight and while it waits for its retry.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-12T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the webhook delivery in flight, by its lease"

STATEMENTS = ["ALTER TABLE webhook_delivery ADD COLUMN leased_until timestamptz"]

BACKWARDS = ["ALTER TABLE webhook_delivery DROP COLUMN leased_until"]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
