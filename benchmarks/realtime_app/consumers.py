from realtime.consumers import RealtimeConsumer


class BenchConsumer(RealtimeConsumer):
    """Anonymous clients may join any ``bench.*`` group."""

    subscriptions = {"bench.{name}": []}
