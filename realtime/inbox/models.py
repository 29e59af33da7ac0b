"""The stored notification of ``notify_user(..., persist=True)``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Notification(models.Model):
    """One event stored for one user; ``read_at`` is set when the user reads it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="realtime_notifications",
    )
    type = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="rt_inbox_user_created"),
            models.Index(fields=["user", "read_at"], name="rt_inbox_user_read"),
        ]

    def __str__(self) -> str:
        return f"{self.type} for user {self.user_id}"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
