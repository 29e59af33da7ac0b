"""The Lua scripts of the Redis backend, each one atomic step on one server.

A history position (seq, epoch) belongs to the master that wrote it (its "reign"):
the scripts that read or write one compare the server's identity with the reign
marker first, so a promoted replica or a server restarted from its files starts new
epochs instead of continuing seqs it may not have all of (docs/topologies.md).
"""

from __future__ import annotations

# The master's identity: its run_id (new at every start) and replication id (new
# at every promotion). Read inside each writing script, because any call may be the
# first one a newly promoted replica answers.
# KEYS: reign. ARGV: a new token, now_ms. Returns this master's reign token.
REIGN = """
local function identity()
  local server = redis.pcall('INFO', 'server')
  local replication = redis.pcall('INFO', 'replication')
  if type(server) ~= 'string' or type(replication) ~= 'string' then return '' end
  return (string.match(server, 'run_id:(%x+)') or '') .. ':' ..
    (string.match(replication, 'master_replid:(%x+)') or '')
end
local function reign(KEYS, ARGV)
  local id = identity()
  local held = redis.call('HMGET', KEYS[1], 'id', 'token')
  if held[1] == id and held[2] then return held[2] end
  -- A data set no master wrote to before (new, or emptied) carries nothing over:
  -- its reign covers everything. Another master's data may lack its last writes.
  local since = held[1] and ARGV[2] or '0'
  redis.call('HSET', KEYS[1], 'id', id, 'token', ARGV[1], 'since', since)
  return ARGV[1]
end
"""

# KEYS: log, meta, reign. ARGV: prefix, suffix, now_ms, size, ttl_s, new_epoch,
# meta_ttl_s.
# The log is a list of "<ms>|<frame>" kept for ttl; meta holds seq and epoch and
# outlives the log (meta_ttl), so a room that stays quiet past HISTORY_TTL goes on
# counting in the same epoch: connected sockets and returning clients keep their
# position. A fresh epoch (meta lost: Redis restarted or flushed) tells clients
# the old seqs mean nothing. So does a meta written under another master (its
# reign differs): a promoted replica may lack the old master's last writes, so
# counting on would give seqs clients saw to different events.
APPEND = (
    REIGN
    + """
local current = reign({KEYS[3]}, {ARGV[6], ARGV[3]})
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'reign')
local epoch = meta[1]
if (not epoch) or meta[2] ~= current then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', 0, 'reign', current)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('RPUSH', KEYS[1], ARGV[3] .. '|' .. ARGV[1] .. seq .. ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[5]) * 1000
for i = 1, 1000 do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local ts = tonumber(string.sub(head, 1, string.find(head, '|', 1, true) - 1))
  if ts >= cutoff then break end
  redis.call('LPOP', KEYS[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return {seq, epoch}
"""
)

# KEYS: log, meta, reign. ARGV: since, new_epoch, ttl_s, now_ms.
# Returns {seq, epoch, first_seq, frames...}. A group without a position gets one
# (seq 0, a new epoch): every ack then names the epoch its seqs belong to. It lives
# HISTORY_TTL until the group's first event (then HISTORY_EPOCH_TTL), so subscribing
# to many groups that never get an event leaves nothing for long. A position of
# another master's reign starts over the same way (see APPEND).
SINCE = (
    REIGN
    + """
local current = reign({KEYS[3]}, {ARGV[2], ARGV[4]})
local meta = redis.call('HMGET', KEYS[2], 'seq', 'epoch', 'reign')
if (not meta[2]) or meta[3] ~= current then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', 0, 'reign', current)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return {0, ARGV[2], 1}
end
local seq = tonumber(meta[1])
local len = redis.call('LLEN', KEYS[1])
local first = seq - len + 1
local start = tonumber(ARGV[1]) - first + 1
if start < 0 then start = 0 end
local out = {seq, meta[2], first}
if tonumber(ARGV[1]) < seq then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], start, -1)) do
    table.insert(out, item)
  end
end
return out
"""
)

# KEYS: claim, reign. ARGV: ttl_ms, issued_ms (0: unknown), a new token, now_ms.
# A claim the previous master took may not have reached this one: a claim made
# before this master's reign began is refused rather than granted twice.
CLAIM = (
    REIGN
    + """
reign({KEYS[2]}, {ARGV[3], ARGV[4]})
local since = tonumber(redis.call('HGET', KEYS[2], 'since'))
if tonumber(ARGV[2]) > 0 and tonumber(ARGV[2]) < since then return -1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""
)

# KEYS: conns zset, users hash, user zset, members hash, groups zset.
# ARGV: conn_id, user_key, member_json, expires, now, group.
JOIN = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[6])
if ARGV[2] == '' then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
if redis.call('ZCARD', KEYS[3]) == 1 then return 1 end
return 0
"""

# KEYS: conns zset, users hash, members hash. ARGV: conn_id, now, user-zset prefix.
# Returns the member json if that was the user's last live connection.
LEAVE = """
local key = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if (not key) or key == '' then return false end
local uz = ARGV[3] .. key
redis.call('ZREM', uz, ARGV[1])
redis.call('ZREMRANGEBYSCORE', uz, '-inf', ARGV[2])
if redis.call('ZCARD', uz) > 0 then return false end
local member = redis.call('HGET', KEYS[3], key)
redis.call('HDEL', KEYS[3], key)
return member or '{}'
"""
