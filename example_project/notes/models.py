from django.conf import settings
from django.db import models

from realtime.collab.fields import CollaborativeText


class Note(models.Model):
    """A note everyone signed in may read; its text is a shared document."""

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    #: Users who may read the note but not change it.
    viewers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True)
    #: The text, stored by realtime.collab in document "doc.<slug>".
    body = CollaborativeText("doc.{slug}", field="body")

    def __str__(self) -> str:
        return self.title
