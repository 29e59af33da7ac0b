import realtime


def test_public_names_are_pinned():
    assert sorted(realtime.__all__) == sorted(
        [
            "Message",
            "RealtimeConsumer",
            "__version__",
            "anotify",
            "anotify_user",
            "broadcast_model",
            "downgrader",
            "event",
            "handler",
            "notify",
            "notify_user",
            "registry",
            "upgrader",
            "websocket_app",
        ]
    )
    for name in realtime.__all__:
        assert getattr(realtime, name) is not None
