"""Peer stacks for the benchmarks: the same job done by python-socketio and Node ws."""
