"""realtime.fastpath reads pipelined script replies: in any pieces, each call's own
error kept apart, and the replies read before a cut kept."""

from __future__ import annotations

import socket

import pytest
import redis

from realtime.fastpath.resp import read_replies

OK = [
    b"*2\r\n:5\r\n:0\r\n",
    b"*2\r\n$-1\r\n:0\r\n",
    b"-WRONGTYPE no\r\n",
    b"*2\r\n:7\r\n:2\r\n",
]


def read(pieces: list[bytes | None], count: int) -> tuple[list, Exception | None]:
    ours, server = socket.socketpair()
    ours.settimeout(0.3)
    replies: list = []
    try:
        for piece in pieces:
            if piece is None:
                server.shutdown(socket.SHUT_WR)  # the server hangs up here
            else:
                server.sendall(piece)
        try:
            read_replies(ours, count, replies)
        except redis.exceptions.RedisError as error:
            return replies, error
        return replies, None
    finally:
        ours.close()
        server.close()


def expected() -> list:
    return [[5, 0], [None, 0], "WRONGTYPE no", [7, 2]]


def shown(replies: list) -> list:
    return [str(r) if isinstance(r, Exception) else r for r in replies]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_replies_in_pieces_of_any_size(size):
    stream = b"".join(OK)
    pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
    replies, error = read(pieces, 4)
    assert error is None
    assert shown(replies) == expected()
    assert isinstance(replies[2], redis.exceptions.ResponseError)


def test_a_cut_keeps_the_replies_read_before_it():
    replies, error = read([OK[0], OK[1], b"*2\r\n:8", None], 4)
    assert shown(replies) == expected()[:2]
    assert isinstance(error, redis.exceptions.InvalidResponse)


def test_nothing_back_is_a_connection_error():
    replies, error = read([None], 2)
    assert replies == [] and isinstance(error, redis.exceptions.ConnectionError)


def test_no_answer_in_time_is_a_timeout():
    replies, error = read([OK[0]], 2)
    assert shown(replies) == [[5, 0]]
    assert isinstance(error, redis.exceptions.TimeoutError)


def test_anything_but_the_scripts_reply_is_refused():
    replies, error = read([OK[0], b"+OK\r\n"], 2)
    assert shown(replies) == [[5, 0]]
    assert isinstance(error, redis.exceptions.InvalidResponse)
