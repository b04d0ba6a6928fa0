"""Each worker's sweep of the blob store: blobs no live attachment owns, and abandoned partial writes (see
AttachmentStore.sweep_orphans). Sweeps of several workers may overlap: removing a blob twice changes nothing."""

from __future__ import annotations

from app.attachment.service import AttachmentStore
from app.ticket.periodic import PeriodicSweep


class OrphanBlobSweep(PeriodicSweep):
    name = "attachment-orphan-sweep"

    def __init__(self, store: AttachmentStore, interval_seconds: float) -> None:
        super().__init__(interval_seconds)
        self._store = store

    async def sweep(self) -> int:
        return await self._store.sweep_orphans()
