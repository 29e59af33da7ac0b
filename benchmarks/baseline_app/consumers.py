from channels.generic.websocket import AsyncJsonWebsocketConsumer

GROUP = "bench.fanout"


class BaselineConsumer(AsyncJsonWebsocketConsumer):
    """What the Channels tutorial does: group_add at connect, send_json per event."""

    async def connect(self):
        await self.accept()
        await self.channel_layer.group_add(GROUP, self.channel_name)
        # Tells the load client that events will reach this socket from now on.
        await self.send_json({"type": "ready"})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass

    async def bench_tick(self, event):
        await self.send_json({"type": "bench.tick", "data": event["data"]})
