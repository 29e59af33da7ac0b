from django.conf import settings
from django.db import models


class Comment(models.Model):
    post_id = models.IntegerField()
    text = models.CharField(max_length=500)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
