from rest_framework import serializers

import realtime


@realtime.event("bench.tick", direction="server")
class Tick(serializers.Serializer):
    """One benchmark event: its number and the publisher's clock (epoch seconds)."""

    n = serializers.IntegerField()
    t = serializers.FloatField()
