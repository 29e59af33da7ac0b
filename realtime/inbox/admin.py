from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils import timezone

from realtime.inbox.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "type", "version", "created_at", "read_at")
    list_filter = ("type", ("read_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username", "type")
    raw_id_fields = ("user",)
    date_hierarchy = "created_at"
    actions = ["mark_read"]

    @admin.action(description="Mark selected notifications as read")
    def mark_read(self, request: Any, queryset: Any) -> None:
        count = queryset.filter(read_at__isnull=True).update(read_at=timezone.now())
        self.message_user(request, f"{count} notification(s) marked as read.")
