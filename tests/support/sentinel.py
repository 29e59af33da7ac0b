"""A Redis master with one replica, watched by a real Sentinel, for failover tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.processes import free_port, wait_for_port
from tests.support.redis_server import RedisServer

MASTER_NAME = "mymaster"


class SentinelGroup:
    """master + replica + one sentinel (quorum 1) on free ports."""

    def __init__(self, *, down_after_ms: int = 1000) -> None:
        self.master = RedisServer()
        self.master.start()
        self.replica = RedisServer(["--replicaof", "127.0.0.1", str(self.master.port)])
        self.replica.start()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rt-sentinel-"))
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        self.wait_for_replica()

    @property
    def host(self) -> dict:
        """The channel layer host entry (channels-redis's Sentinel form)."""
        return {"sentinels": [("127.0.0.1", self.port)], "master_name": MASTER_NAME}

    def master_port(self) -> int:
        return int(self.client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def wait_for_replica(self, timeout: float = 20) -> None:
        """Until Sentinel knows a healthy replica it could promote."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replicas = self.client.sentinel_slaves(MASTER_NAME)
            if any(
                r.get("master-link-status") == "ok" and "s_down" not in r["flags"]
                for r in replicas
            ):
                return
            time.sleep(0.1)
        raise TimeoutError("Sentinel found no healthy replica")

    def wait_for_new_master(self, old_port: int, timeout: float = 30) -> float:
        """Seconds until Sentinel names another master than ``old_port``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.master_port() != old_port:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError("no failover within the deadline")

    def wait_until_replica(self, server: RedisServer, timeout: float = 40) -> float:
        """Seconds until ``server`` (an old master) serves as a replica, or is gone."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if server.proc is None or server.proc.poll() is not None:
                return time.monotonic() - started
            with redis.Redis(port=server.port, socket_timeout=1) as client:
                if client.info("replication")["role"] == "slave":
                    return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError("the old master still acts as a master")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)
        for server in (self.master, self.replica):
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # a test may have paused it
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
