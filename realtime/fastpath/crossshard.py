"""Cross-shard delivery of the fast path, with several Redis hosts.

The publish script runs on the group's shard, but channels-redis keeps each process's
channel on the host its name hashes to. The core layer's script delivers to the
channels of its own host and returns the messages for the others; here they go out as
one ``DELIVER`` script per other host, on ``FastPath``'s connections. With one host
the script returns none and nothing here runs. A batch goes call by call
(``send_each``): an event may need that second script.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from realtime.fastpath.scripts import DELIVER, DELIVER_SHA

# Sent as it is when a shard does not know the script yet.
DELIVER_SCRIPT = DELIVER.encode()


def deliver(
    evalsha: Callable[[int, bytes, bytes, list[bytes]], Any],
    others: list,
    now: bytes,
    expiry: int,
) -> int:
    """Send what the script left for other hosts (``FastPath._evalsha``, sync);
    return how many channels were over capacity."""
    over = 0
    for shard, command in deliveries(others, now, expiry):
        over += evalsha(shard, DELIVER_SHA, DELIVER_SCRIPT, command)[1]
    return over


async def adeliver(
    client_of: Callable[[int], Any], others: list, now: bytes, expiry: int
) -> int:
    """``deliver()`` from async code, on ``client_of(shard)``'s connections."""
    over = 0
    for shard, command in deliveries(others, now, expiry):
        client = client_of(shard)
        try:
            over += (await client.evalsha(DELIVER_SHA.decode(), *command))[1]
        except redis.exceptions.NoScriptError:
            over += (await client.eval(DELIVER, *command))[1]
    return over


def deliveries(others: list, now: bytes, expiry: int) -> list[tuple[int, list[bytes]]]:
    """The DELIVER commands (numkeys, keys, args) for messages _CORE returned
    for channel keys on other hosts, one per host."""
    if not others:
        return []
    hosts: dict[int, list[tuple[bytes, bytes, int]]] = {}
    for at in range(0, len(others), 4):
        shard, key, message, capacity = others[at : at + 4]
        hosts.setdefault(int(shard), []).append((key, message, int(capacity)))
    packed_expiry = b"%d" % int(expiry)
    return [
        (
            shard,
            [
                b"%d" % len(entries),
                *(key for key, _, _ in entries),
                *(message for _, message, _ in entries),
                *(b"%d" % capacity for _, _, capacity in entries),
                now,
                packed_expiry,
            ],
        )
        for shard, entries in hosts.items()
    ]


def send_each(
    send: Callable[..., int | None], calls: list[dict[str, Any]]
) -> list[Any]:
    """``FastPath.send_many`` with several shards: ``send`` each call in order, with
    the same reporting (its seq, or the exception that says why it was not sent)."""
    results: list[Any] = []
    failed: Exception | None = None
    for call in calls:
        if failed is not None:
            results.append(failed)
            continue
        try:
            seq = send(
                call["group"],
                call["type"],
                call["v"],
                prefix=call["prefix"],
                suffix=call["suffix"],
                text=call["text"],
            )
        except redis.exceptions.ResponseError as error:
            results.append(error)  # Redis refused this call alone
        except (redis.exceptions.RedisError, OSError) as error:
            # It may still run on Redis: nothing after it is sent.
            results.append(error)
            failed = redis.exceptions.ConnectionError(
                f"not sent after an earlier part of the batch failed ({error})"
            )
        else:
            results.append(seq)
    return results
