"""Stored documents: a compact snapshot plus the updates received after it."""

from __future__ import annotations

from django.db import models


class Document(models.Model):
    """One shared document, named by its group (``doc.{slug}``)."""

    name = models.CharField(max_length=100, unique=True)
    #: Every update up to ``snapshot_upto`` merged into one Yjs update.
    snapshot = models.BinaryField(default=b"")
    #: The id of the last DocumentUpdate merged into the snapshot.
    snapshot_upto = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "shared document"

    def __str__(self) -> str:
        return self.name


class DocumentUpdate(models.Model):
    """One Yjs update, stored before it is relayed; merged away by compaction."""

    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="updates"
    )
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["document", "id"])]
