"""post_save receivers: a chat message that mentions ``@someone`` notifies them.

``notify_user(..., persist=True)`` stores the notification in the inbox (so it is
there after a reload, or for someone offline) and pushes it to every open page of
that user, where the bell counts it.
"""

import re

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

import realtime
from example_project.chat.models import Message

MENTION = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")


@receiver(post_save, sender=Message, dispatch_uid="chat.mentions")
def notify_mentions(sender, instance, created, raw=False, **kwargs):
    if not created or raw:
        return
    names = {name.rstrip(".") for name in MENTION.findall(instance.text)}
    users = get_user_model().objects.filter(username__in=names)
    for user in users.exclude(pk=instance.author_id):
        realtime.notify_user(
            user,
            "chat.mention",
            {
                "room": instance.room.slug,
                "message_id": instance.pk,
                "author": instance.author.get_username(),
                "text": instance.text[:200],
            },
            persist=True,
        )
