"""Child processes on 127.0.0.1: free ports, waiting for a port, starting a server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: servers run from here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start_server(
    app: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    server: str = "daphne",
    args: Sequence[str] = (),
) -> subprocess.Popen:
    """Start daphne (or uvicorn) serving ``app`` on 127.0.0.1:``port``; return once
    it listens. ``args`` are extra command-line options. The caller stops it."""
    if server == "uvicorn":
        cmd = [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
            app,
        ]
    else:
        cmd = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args, app]
    output = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, *cmd],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc)
    return proc
