"""The inbox API: each user lists, counts and marks their own notifications only."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import generics, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.inbox.models import Notification

TRUE_VALUES = {"1", "true", "yes", "on"}


class NotificationSerializer(serializers.ModelSerializer):
    read = serializers.BooleanField(source="is_read", read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "type", "version", "data", "created_at", "read_at", "read"]
        read_only_fields = fields


class InboxPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class InboxMixin:
    permission_classes = [IsAuthenticated]
    request: Any  # set by the DRF view it is mixed into

    def get_queryset(self) -> QuerySet[Notification]:
        return Notification.objects.filter(user=self.request.user)


class NotificationList(InboxMixin, generics.ListAPIView):
    """Newest first; ``?unread=1`` lists only unread ones."""

    serializer_class = NotificationSerializer
    pagination_class = InboxPagination

    def get_queryset(self) -> QuerySet[Notification]:
        queryset = super().get_queryset()
        if self.request.query_params.get("unread", "").lower() in TRUE_VALUES:
            queryset = queryset.filter(read_at__isnull=True)
        return queryset.order_by("-created_at", "-id")


class NotificationDetail(InboxMixin, generics.RetrieveAPIView):
    serializer_class = NotificationSerializer


class UnreadCount(InboxMixin, APIView):
    def get(self, request: Request) -> Response:
        count = self.get_queryset().filter(read_at__isnull=True).count()
        return Response({"unread": count})


class MarkRead(InboxMixin, APIView):
    """Mark one notification read (idempotent: the first read time is kept)."""

    def post(self, request: Request, pk: Any) -> Response:
        notification = get_object_or_404(self.get_queryset(), pk=pk)
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
        return Response(NotificationSerializer(notification).data)


class MarkAllRead(InboxMixin, APIView):
    def post(self, request: Request) -> Response:
        marked = (
            self.get_queryset()
            .filter(read_at__isnull=True)
            .update(read_at=timezone.now())
        )
        return Response({"marked": marked})
