"""Reading and writing stored documents (the Django database is the source of truth).

Every accepted update is stored before it is relayed, so a document survives the
restart of any server process and of Redis. Compaction merges the snapshot and the
updates after it into a new snapshot, in one transaction, and deletes the merged rows.
"""

from __future__ import annotations

import logging
from typing import Any

import pycrdt
from channels.db import database_sync_to_async
from django.db import transaction

from realtime.collab.models import Document, DocumentUpdate

logger = logging.getLogger(__name__)


def read(name: str, after: int = 0) -> tuple[list[bytes], int]:
    """The updates of document ``name`` a reader that has applied everything up to
    update id ``after`` lacks, and the id of the last one (``after`` if none).

    A reader behind the snapshot (compacted meanwhile) gets the snapshot too: Yjs
    updates are idempotent, so applying one twice is harmless.
    """
    document = Document.objects.filter(name=name).only("pk", "snapshot_upto").first()
    if document is None:
        return [], after
    chunks: list[bytes] = []
    last = after
    if document.snapshot_upto > after:
        snapshot = (
            Document.objects.filter(pk=document.pk)
            .values_list("snapshot", "snapshot_upto")
            .first()
        )
        if snapshot is not None and snapshot[0]:
            chunks.append(bytes(snapshot[0]))
            last = max(last, snapshot[1])
    rows = DocumentUpdate.objects.filter(document_id=document.pk, id__gt=last)
    for pk, data in rows.order_by("id").values_list("id", "data"):
        chunks.append(bytes(data))
        last = pk
    return chunks, last


def append(name: str, update: bytes, document_id: int | None = None) -> tuple[int, int]:
    """Store ``update``; return its id and the document's id (pass it next time:
    one INSERT per update)."""
    if document_id is None:
        document_id = Document.objects.get_or_create(name=name)[0].pk
    row = DocumentUpdate.objects.create(document_id=document_id, data=update)
    return row.pk, document_id


def pending(name: str) -> int:
    """How many stored updates of ``name`` follow its snapshot."""
    return DocumentUpdate.objects.filter(document__name=name).count()


def compact(name: str) -> int:
    """Merge document ``name``'s updates into its snapshot; return how many."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(name=name).first()
        if document is None:
            return 0
        rows = list(
            DocumentUpdate.objects.filter(document=document)
            .order_by("id")
            .values_list("id", "data")
        )
        if not rows:
            return 0
        parts = [bytes(data) for _, data in rows]
        if document.snapshot:
            parts.insert(0, bytes(document.snapshot))
        # Merged, not replayed into a Doc: updates still waiting for ones they
        # depend on are kept as they are.
        document.snapshot = pycrdt.merge_updates(*parts)
        document.snapshot_upto = rows[-1][0]
        document.save(update_fields=["snapshot", "snapshot_upto", "updated_at"])
        DocumentUpdate.objects.filter(document=document, id__lte=rows[-1][0]).delete()
    logger.debug("compacted %s: %d updates", name, len(rows))
    return len(rows)


def load(name: str) -> pycrdt.Doc:
    """The stored state of document ``name`` as a pycrdt ``Doc`` (empty if none)."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    for chunk in read(name)[0]:
        doc.apply_update(chunk)
    return doc


def text(name: str, field: str = "content") -> str:
    """The stored text of the ``Y.Text`` called ``field`` in document ``name``."""
    return str(load(name).get(field, type=pycrdt.Text))


aread = database_sync_to_async(read)
aappend = database_sync_to_async(append)
apending = database_sync_to_async(pending)
acompact = database_sync_to_async(compact)
aload = database_sync_to_async(load)
atext = database_sync_to_async(text)
