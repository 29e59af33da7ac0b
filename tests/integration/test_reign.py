"""History epochs belong to one master's reign: a replica promoted without the old
master's last writes, or a server restarted from its files, starts new epochs
instead of numbering new events with seqs clients already saw."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
import redis

from realtime.backends.redis import RedisBackend
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair():
    """A master and its replica, both this test's own."""
    master = RedisServer()
    master.start()
    replica = RedisServer(["--replicaof", "127.0.0.1", str(master.port)])
    replica.start()
    wait_synced(master, replica)
    yield master, replica
    for server in (master, replica):
        if server.proc is not None and server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def wait_synced(master: RedisServer, replica: RedisServer) -> None:
    deadline = time.monotonic() + 10
    with client(master) as primary, client(replica) as secondary:
        while time.monotonic() < deadline:
            info = secondary.info("replication")
            offset = primary.info("replication")["master_repl_offset"]
            if (
                info.get("master_link_status") == "up"
                and info.get("slave_repl_offset") == offset
            ):
                return
            time.sleep(0.05)
    raise TimeoutError("the replica did not catch up")


async def append(backend: RedisBackend, group: str, text: str) -> tuple[int, str]:
    return await backend.append(group, '{"seq":', f',"text":"{text}"}}')


async def test_a_promoted_replica_that_missed_writes_starts_a_new_epoch(pair):
    master, replica = pair
    old = RedisBackend(master.url)
    seen = {}
    for n in range(10):
        seq, epoch = await append(old, "public.r", f"a{n}")
        seen[epoch, seq] = f"a{n}"
    wait_synced(master, replica)
    # The replica stops hearing from the master, which acknowledges five more.
    os.kill(replica.proc.pid, signal.SIGSTOP)
    for n in range(5):
        seq, epoch = await append(old, "public.r", f"b{n}")
        seen[epoch, seq] = f"b{n}"
    await old.close()
    master.proc.kill()
    master.proc.wait(10)
    os.kill(replica.proc.pid, signal.SIGCONT)
    with client(replica) as promoted:
        promoted.replicaof("NO", "ONE")
    new = RedisBackend(replica.url)
    (old_epoch,) = {epoch for epoch, _ in seen}
    # A client that saw up to 15 learns its position is gone...
    read = await new.since("public.r", 15, old_epoch)
    assert read.recovered is False and read.epoch != old_epoch
    # ... and new events never reuse a seen (epoch, seq) for something else.
    for n in range(10):
        seq, epoch = await append(new, "public.r", f"c{n}")
        assert (epoch, seq) not in seen
        assert epoch == read.epoch
    await new.close()


async def test_a_clean_promotion_also_starts_over(pair):
    """Nothing proves a promoted replica has every write: even a caught-up one
    starts new epochs (clients refetch rather than trust)."""
    master, replica = pair
    old = RedisBackend(master.url)
    _, epoch = await append(old, "public.c", "x")
    await old.close()
    wait_synced(master, replica)
    with client(replica) as promoted:
        promoted.replicaof("NO", "ONE")
    new = RedisBackend(replica.url)
    assert (await new.since("public.c", 1, epoch)).recovered is False
    seq, fresh = await append(new, "public.c", "y")
    assert (seq, fresh != epoch) == (1, True)
    # Within one reign, positions carry on.
    assert await append(new, "public.c", "z") == (2, fresh)
    await new.close()


async def test_claims_made_before_a_failover_are_refused_after_it(pair):
    master, replica = pair
    old = RedisBackend(master.url)
    issued = time.time() - 1
    assert await old.claim("ticket:a", 30, issued=issued) is True
    # A claim the replica never got: SIGSTOP, claim, then promote the replica.
    wait_synced(master, replica)
    os.kill(replica.proc.pid, signal.SIGSTOP)
    assert await old.claim("ticket:b", 30, issued=issued) is True
    await old.close()
    master.proc.kill()
    master.proc.wait(10)
    os.kill(replica.proc.pid, signal.SIGCONT)
    with client(replica) as promoted:
        promoted.replicaof("NO", "ONE")
    new = RedisBackend(replica.url)
    # "b" was claimed on the old master only: it must not be granted again.
    assert await new.claim("ticket:b", 30, issued=issued) is False
    assert await new.claim("ticket:a", 30, issued=issued) is False
    # A ticket issued after the new master took over is claimed once.
    later = time.time() + 0.01
    assert await new.claim("ticket:c", 30, issued=later) is True
    assert await new.claim("ticket:c", 30, issued=later) is False
    await new.close()


async def test_a_fresh_or_emptied_server_refuses_no_claim(own_redis):
    backend = RedisBackend(own_redis.url)
    assert await backend.claim("ticket:x", 30, issued=time.time() - 20) is True
    own_redis.flush()
    assert await backend.claim("ticket:y", 30, issued=time.time() - 20) is True
    await backend.close()


async def test_a_restart_from_its_own_files_starts_new_epochs(tmp_path):
    """Appendfsync everysec may lose the last second: a restarted server's
    positions are not trusted either."""
    server = RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    try:
        backend = RedisBackend(server.url)
        seq, epoch = await append(backend, "public.f", "x")
        await backend.close()
        server.stop()
        server.start()
        backend = RedisBackend(server.url)
        read = await backend.since("public.f", seq, epoch)
        assert read.recovered is False and read.epoch != epoch
        await backend.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
