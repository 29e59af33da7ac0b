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


# -- versioned events (tests/integration/test_versioning.py) -------------------------------------
# test.greet: v1 {room, text} -> v2 {room, body, lang}, with both converters.
# test.poll: v1 {room, question} -> v2 adds options; no downgrader, so clients that
# only understand v1 are skipped (with a log line) when v2 is sent.


@realtime.event("test.greet", version=1, direction="both")
class GreetV1(serializers.Serializer):
    """A greeting as version 1 clients know it."""

    room = serializers.SlugField(max_length=50)
    text = serializers.CharField(max_length=200)


@realtime.event("test.greet", version=2, direction="both")
class GreetV2(serializers.Serializer):
    """A greeting with its language."""

    room = serializers.SlugField(max_length=50)
    body = serializers.CharField(max_length=200)
    lang = serializers.ChoiceField(choices=["en", "fr"])


@realtime.upgrader("test.greet", from_version=1)
def greet_v1_to_v2(data):
    return {"room": data["room"], "body": data["text"], "lang": "en"}


@realtime.downgrader("test.greet", from_version=2)
def greet_v2_to_v1(data):
    return {"room": data["room"], "text": data["body"]}


@realtime.event("test.poll", version=1, direction="both")
class PollV1(serializers.Serializer):
    room = serializers.SlugField(max_length=50)
    question = serializers.CharField(max_length=200)


@realtime.event("test.poll", version=2, direction="both")
class PollV2(serializers.Serializer):
    room = serializers.SlugField(max_length=50)
    question = serializers.CharField(max_length=200)
    options = serializers.ListField(
        child=serializers.CharField(max_length=50), min_length=2
    )


@realtime.upgrader("test.poll", from_version=1)
def poll_v1_to_v2(data):
    return {**data, "options": ["yes", "no"]}


@realtime.event("test.typing", direction="both")
class Typing(serializers.Serializer):
    typing = serializers.BooleanField()
