"""The Lua scripts of the fast path: the Redis backend's history append and the
layer's group send, as one script per layer kind, with the layer's constants baked in."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from realtime.backends.scripts import APPEND

# KEYS: history log, history meta, group key (core) or group channel (pubsub),
# the server's reign marker (see backends.scripts). ARGV: 1 frame prefix ('' without
# history), 2 frame suffix, 3 text (without history), 4 msgpack head up to the "seq"
# key, 5 random prefix, 6 now (seconds), 7 HISTORY_SIZE, 8 HISTORY_TTL, 9 a new
# epoch, 10 the epoch's TTL, 11 this server's index in the layer's hosts. Per-layer
# constants are baked in.
_HEAD = """
local now = tonumber(ARGV[6])
local seq, text, packed_seq, epoch = false, ARGV[3], cmsgpack.pack(nil), nil
if ARGV[1] ~= '' then
  local appended = append({KEYS[1], KEYS[2], KEYS[4]}, {ARGV[1], ARGV[2],
    string.format('%d', math.floor(now * 1000)), ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
  seq = appended[1]
  epoch = appended[2]
  text = ARGV[1] .. seq .. ARGV[2]
  packed_seq = cmsgpack.pack(seq)
end
local body = ARGV[4] .. packed_seq .. EPOCH_KEY .. cmsgpack.pack(epoch)
  .. TEXT_KEY .. cmsgpack.pack(text)
"""

# channels_redis.core.RedisChannelLayer.group_send, in one script: channels that
# share a process ("prefix!") share one key and one message listing them all.
# With several hosts a channel's key lives on the host its name hashes to (the
# layer's own CRC, in shard_of): messages for keys of other hosts are returned,
# {host, key, message, capacity} each, for deliver() there. ARGV[11]: this host.
_CORE = """
redis.call('ZREMRANGEBYSCORE', KEYS[3], 0, math.floor(now) - GROUP_EXPIRY)
local order, members, homes = {}, {}, {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local bang = string.find(name, '!', 1, true)
  local home = bang and string.sub(name, 1, bang) or name
  local key = LAYER_PREFIX .. home
  if not members[key] then
    members[key] = {}
    homes[key] = shard_of(home)
    order[#order + 1] = key
  end
  table.insert(members[key], name)
end
local over, out = 0, {seq, 0}
local here = tonumber(ARGV[11])
for _, key in ipairs(order) do
  -- Hubs' channels (one per process, for all its groups) take bursts.
  local capacity = CAPACITY
  if string.sub(key, 1, #HUB_KEY) == HUB_KEY then capacity = HUB_CAPACITY end
  local message = ARGV[5] .. body .. CHANNEL_KEY .. cmsgpack.pack(members[key])
  if homes[key] ~= here then
    table.insert(out, homes[key])
    table.insert(out, key)
    table.insert(out, message)
    table.insert(out, capacity)
  else
    redis.call('ZREMRANGEBYSCORE', key, 0, math.floor(now) - EXPIRY)
    if redis.call('ZCOUNT', key, '-inf', '+inf') < capacity then
      redis.call('ZADD', key, ARGV[6], message)
      redis.call('EXPIRE', key, EXPIRY)
    else
      over = over + 1
    end
  end
end
out[2] = over
return out
"""

# channels_redis.core's _map_channel_keys_to_connection: the host of a channel.
_SHARD_OF = """
local function shard_of(name)
  local crc = 0xFFFFFFFF
  for i = 1, #name do
    local index = bit.band(bit.bxor(crc, string.byte(name, i)), 0xFF)
    crc = bit.bxor(bit.rshift(crc, 8), CRC32[index + 1])
  end
  return math.floor(bit.band(bit.bnot(crc), 0xFFF) / (4096 / RING))
end
"""

# The messages _CORE left for another host's channel keys: channels-redis's own
# group-send script there, with its expiry trim. KEYS: channel keys. ARGV: the
# messages, their capacities, now, the layer's expiry.
DELIVER = """
local n, over = #KEYS, 0
local now, expiry = ARGV[2 * n + 1], tonumber(ARGV[2 * n + 2])
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(tonumber(now)) - expiry)
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    over = over + 1
  end
end
return {false, over}
"""
DELIVER_SHA = hashlib.sha1(DELIVER.encode()).hexdigest().encode()


def crc32_table() -> str:
    rows = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        rows.append(str(crc))
    return "{" + ",".join(rows) + "}"


_PUBSUB = """
redis.call('PUBLISH', KEYS[3], body)
return {seq, 0}
"""


def lua_string(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return "'" + "".join(f"\\{byte}" for byte in raw) + "'"


def script_for(kind: str, constants: dict[str, Any]) -> str:
    # The Redis backend's own APPEND, as a local function whose parameters shadow
    # KEYS and ARGV, so history is defined in one place only.
    lines = [f"local function append(KEYS, ARGV)\n{APPEND}\nend"]
    for name, value in constants.items():
        literal = value if isinstance(value, int) else lua_string(value)
        lines.append(f"local {name} = {literal}")
    if kind == "core" and constants["RING"] > 1:
        lines.append(f"local CRC32 = {crc32_table()}")
        lines.append(_SHARD_OF)
    elif kind == "core":  # one host: every channel is on it
        lines.append("local function shard_of(name) return 0 end")
    return "\n".join(lines) + _HEAD + (_CORE if kind == "core" else _PUBSUB)


def pack_key(key: str) -> bytes:
    return msgpack.packb(key)
