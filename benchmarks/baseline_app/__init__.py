"""The baseline in fanout.py: plain Channels, one layer channel per socket."""
