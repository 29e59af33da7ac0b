"""This process's own counters, read by the dashboard.

Each daphne process counts for itself; the dashboard shows one line per process.
"""

import os
import socket
import time

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
STARTED = time.monotonic()


class Counters:
    connections = 0  # open, authenticated WebSocket connections in this process
    viewers = 0  # of which on the dashboard
    messages = 0  # chat messages stored by this process


counters = Counters()
