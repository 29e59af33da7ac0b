from rest_framework import serializers

import realtime


@realtime.event("test.echo", direction="client")
class Echo(serializers.Serializer):
    text = serializers.CharField(max_length=100)
    n = serializers.IntegerField(required=False)


@realtime.event("test.boom", direction="client")
class Boom(serializers.Serializer):
    pass


@realtime.event("test.say", direction="both")
class Say(serializers.Serializer):
    group = serializers.CharField(max_length=99, required=False)
    text = serializers.CharField(max_length=1000)
    n = serializers.IntegerField(required=False)


@realtime.event("test.secret", direction="client")
class Secret(serializers.Serializer):
    pass


@realtime.event("test.note", direction="server")
class Note(serializers.Serializer):
    text = serializers.CharField()
    n = serializers.IntegerField(required=False)
