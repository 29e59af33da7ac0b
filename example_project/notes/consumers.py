"""The Notes page's socket: read a note by subscribing to ``doc.<slug>``; change it
unless you are one of its viewers."""

from realtime.collab.consumers import DocumentsMixin
from realtime.consumers import RealtimeConsumer
from realtime.permissions import BasePermission, IsAuthenticated

from .models import Note


class CanReadNote(BasePermission):
    message = "No such note."

    def has_subscribe_permission(self, consumer, group, slug):
        return (
            consumer.user.is_authenticated and Note.objects.filter(slug=slug).exists()
        )


class CanEditNote(BasePermission):
    message = "You may read this note, not change it."

    def has_subscribe_permission(self, consumer, group, slug):
        note = Note.objects.filter(slug=slug).first()
        return (
            note is not None and not note.viewers.filter(pk=consumer.user.pk).exists()
        )


class NotesConsumer(DocumentsMixin, RealtimeConsumer):
    permission_classes = [IsAuthenticated]
    subscriptions = {"doc.{slug}": [CanReadNote]}
    documents = {"doc.{slug}": [CanEditNote]}
