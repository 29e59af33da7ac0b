"""The app under test in fanout.py: a RealtimeConsumer on channels-redis."""
