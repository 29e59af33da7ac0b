"""The documents a process holds open: one pycrdt ``Doc`` each, bounded in number,
size and idle time.

An open document is a cache of the stored one: before answering a client's sync
step 1 it reads the updates other processes stored since it last looked, so a client
that reconnects to any process gets everything it missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import pycrdt

from realtime import exceptions as exc
from realtime import runtime
from realtime.collab import store
from realtime.collab.ysync import EMPTY_UPDATE
from realtime.hub import Hub
from realtime.settings import realtime_settings

logger = logging.getLogger(__name__)


class OpenDocument:
    """A document loaded in this process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        #: The id of the last stored update applied here.
        self.last_id = 0
        #: Bytes of updates applied since the last exact measure (an upper bound).
        self.size = 0
        self.used = time.monotonic()
        self.lock = asyncio.Lock()
        self.compacting = False
        self.broken = False
        self.document_id: int | None = None
        #: Updates this process stored since it last checked for compaction.
        self.stored = 0
        self.loaded = False

    async def refresh(self) -> None:
        """Apply the updates stored (by any process) since the last refresh."""
        chunks, last = await store.aread(self.name, self.last_id)
        for chunk in chunks:
            self.doc.apply_update(chunk)
            self.size += len(chunk)
        self.last_id = last
        self.loaded = True
        if chunks and self.size > realtime_settings.COLLAB_MAX_DOCUMENT_BYTES:
            self.size = len(self.doc.get_update())

    def diff(self, state_vector: bytes) -> bytes:
        """What a client whose state vector is ``state_vector`` lacks."""
        try:
            return self.doc.get_update(state_vector)
        except ValueError:
            raise exc.ValidationFailed(
                "sync step 1 carries no valid Yjs state vector"
            ) from None

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    async def apply(self, update: bytes) -> bool:
        """Validate, apply and store ``update``; return False if it is empty.

        Raise ValidationFailed if it does not decode, ``too_large`` if the document
        would grow past COLLAB_MAX_DOCUMENT_BYTES. Stored before it returns: the
        caller relays it only then.
        """
        if update == EMPTY_UPDATE:
            return False
        if not self.loaded:
            # The size limit counts what is stored, not only what this copy saw.
            await self.refresh()
        limit = realtime_settings.COLLAB_MAX_DOCUMENT_BYTES
        if self.size + len(update) > limit:
            self.size = len(self.doc.get_update())  # measure before refusing
            if self.size + len(update) > limit:
                # Not FrameTooLarge: that closes the connection, and the
                # document stays readable.
                raise exc.RealtimeError(
                    f"document {self.name!r} would grow past {limit} bytes",
                    code="too_large",
                )
        try:
            # yrs decodes the whole update before it changes anything.
            self.doc.apply_update(update)
        except ValueError:
            raise exc.ValidationFailed("the update is not a valid Yjs update") from None
        # Stored even when it changed nothing here: this copy may lack updates other
        # processes accepted, which this one depends on (yrs holds it as pending).
        self.size += len(update)
        try:
            _, self.document_id = await store.aappend(
                self.name, update, self.document_id
            )
        except BaseException:
            # Applied here but not stored: this copy must not answer anyone (it
            # would say it has the update); the next get() loads it afresh.
            self.broken = True
            raise
        self.stored += 1
        # Counted here, checked in the database: other processes store updates too.
        if (
            self.stored >= realtime_settings.COLLAB_COMPACT_AFTER
            and not self.compacting
        ):
            self.stored = 0
            self.compacting = True
            task = asyncio.ensure_future(self._compact())
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
        return True

    async def _compact(self) -> None:
        try:
            if (
                await store.apending(self.name)
                >= realtime_settings.COLLAB_COMPACT_AFTER
            ):
                await store.acompact(self.name)
        except Exception:
            logger.exception("compacting document %s failed", self.name)
        finally:
            self.compacting = False


_tasks: set[asyncio.Future] = set()


class Documents:
    """The open documents of this process, least recently used first."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, OpenDocument] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, name: str) -> bool:
        return name in self._open

    async def get(self, name: str) -> OpenDocument:
        """The open document ``name``, loaded (or refreshed) from the database."""
        document = self._open.get(name)
        if document is None or document.broken:
            self.unload_idle()
            while len(self._open) >= max(
                1, realtime_settings.COLLAB_MAX_OPEN_DOCUMENTS
            ):
                evicted, _ = self._open.popitem(last=False)
                logger.debug("unloaded document %s (too many open)", evicted)
            document = self._open[name] = OpenDocument(name)
        self._open.move_to_end(name)
        document.used = time.monotonic()
        return document

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Forget documents unused for COLLAB_IDLE_SECONDS; return their names."""
        now = time.monotonic() if now is None else now
        idle = realtime_settings.COLLAB_IDLE_SECONDS
        gone = [n for n, d in self._open.items() if now - d.used > idle]
        for name in gone:
            del self._open[name]
        return gone

    def clear(self) -> None:
        self._open.clear()


#: This process's open documents.
documents = Documents()


async def unload_idle_documents(hub: Hub) -> None:
    """Hub job: unload idle documents even when no other document is opened."""
    while True:
        await asyncio.sleep(
            min(30.0, max(1.0, realtime_settings.COLLAB_IDLE_SECONDS / 4))
        )
        for name in documents.unload_idle():
            logger.debug("unloaded idle document %s", name)


runtime.add_job(unload_idle_documents)
