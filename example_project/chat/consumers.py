import realtime
from realtime.consumers import RealtimeConsumer
from realtime.permissions import IsAuthenticated


class ChatConsumer(RealtimeConsumer):
    permission_classes = [IsAuthenticated]
    subscriptions = {"room.{room}": [IsAuthenticated]}

    @realtime.handler("chat.message")
    async def chat_message(self, message):
        data = {**message.data, "author": self.user.get_username()}
        await self.notify(f"room.{data['room']}", "chat.message", data)
        return {"stored": True}
