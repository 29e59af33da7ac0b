"""The two wire types of shared documents (docs/collab.md, docs/protocol.md).

``m`` is a y-protocols message in base64: a sync message for ``doc.sync``, an
awareness update for ``doc.awareness``. Both directions use the same shape.
"""

from __future__ import annotations

from rest_framework import serializers

from realtime.schema import event

# base64 of the largest frame the server accepts (daphne: 1 MiB).
_MAX_B64 = 1_400_000


@event("doc.sync", description="A Yjs sync message (step 1, step 2 or update).")
class DocSync(serializers.Serializer):
    group = serializers.CharField(max_length=100)
    m = serializers.CharField(max_length=_MAX_B64, trim_whitespace=False)


@event("doc.awareness", description="A Yjs awareness update (cursors, selections).")
class DocAwareness(serializers.Serializer):
    group = serializers.CharField(max_length=100)
    m = serializers.CharField(max_length=_MAX_B64, trim_whitespace=False)
