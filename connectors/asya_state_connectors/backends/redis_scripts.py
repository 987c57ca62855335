"""The Lua scripts behind ``redis-buffered-cas``: every check-and-change runs inside Redis.

Owns: the storage layout of one object and the scripts that change it
atomically. Reads need no script: the connector reads the metadata hash and
the value in one MULTI/EXEC block (a few microseconds of Redis time against
about fifteen for a script call), which no write can interleave with.
Each object is two keys (three while a large body uploads):

    D                  string  the value (D = STATE_PREFIX + key, readable with GET)
    D "\\0meta"         hash    etag, size, mtime and, when set, type (content type)
    D "\\0tmp\\0" <hex>   string  a streamed body being staged; expires if abandoned

Keys never contain NUL, so the suffixes cannot collide with an object's name.
An object exists when its metadata hash exists. Both keys always carry the
same expiry: every script that changes one sets the other in the same call,
and Redis freezes time for the length of a script.

Idempotent retries: a writer sends the etag its write will create. If that
etag is already stored, the script did run and only the reply was lost, so a
retry reports success instead of a false conflict.

Must not: talk to Redis (the connector module runs these) or hold policy such
as size limits beyond the number it is given.
"""

from __future__ import annotations

META_SUFFIX = b"\x00meta"
STAGED_INFIX = b"\x00tmp\x00"
# Field order of every metadata reply below.
META_FIELDS = ("etag", "size", "type", "mtime")

# Status codes in the first element of a reply.
OK = 1
CONFLICT = 0
MISSING = -1

_NOW = """
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function meta(key)
  return redis.call('HMGET', key, 'etag', 'size', 'type', 'mtime')
end
"""

# KEYS: data, meta[, staged]  ARGV: condition ('' | '*' | etag read), new etag,
# content type ('' for none)[, inline value]. An overwrite keeps the key's expiry.
WRITE = (
    _NOW
    + """
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[2] then
  local m = meta(KEYS[2])
  return {1, m[2], m[4]}
end
if ARGV[1] == '*' then
  if current then return {0} end
elseif ARGV[1] ~= '' and current ~= ARGV[1] then
  return {0}
end
local ttl = redis.call('PTTL', KEYS[2])
if KEYS[3] then
  redis.call('RENAME', KEYS[3], KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
local size = redis.call('STRLEN', KEYS[1])
local mtime = now()
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'etag', ARGV[2], 'size', size, 'mtime', mtime)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'type', ARGV[3]) end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return {1, size, mtime}
"""
)

# KEYS: data, meta[, staged]  ARGV: new etag, size limit (0: none)[, inline tail].
# Reply: {1, size, mtime, type} or {0} when the result would exceed the limit.
APPEND = (
    _NOW
    + """
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[1] then
  local m = meta(KEYS[2])
  return {1, m[2], m[4], m[3]}
end
if not current then redis.call('DEL', KEYS[1]) end
local tail = ARGV[3]
if KEYS[3] then
  tail = redis.call('GET', KEYS[3]) or ''
  redis.call('DEL', KEYS[3])
end
local size = redis.call('STRLEN', KEYS[1]) + #tail
local limit = tonumber(ARGV[2])
if limit > 0 and size > limit then return {0} end
redis.call('APPEND', KEYS[1], tail)
local mtime = now()
redis.call('HSET', KEYS[2], 'etag', ARGV[1], 'size', size, 'mtime', mtime)
return {1, size, mtime, redis.call('HGET', KEYS[2], 'type')}
"""
)

# KEYS: data, meta  ARGV: etag the deleter read ('' for unconditional).
DELETE = """
local current = redis.call('HGET', KEYS[2], 'etag')
if ARGV[1] ~= '' and current ~= ARGV[1] then return 0 end
if not current then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: source data, source meta, target data, target meta  ARGV: new etag.
# The object keeps its content type and expiry; a target is replaced.
RENAME = (
    _NOW
    + """
if not redis.call('HGET', KEYS[2], 'etag') then
  if redis.call('HGET', KEYS[4], 'etag') == ARGV[1] then return meta(KEYS[4]) end
  return nil
end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('RENAME', KEYS[2], KEYS[4])
redis.call('HSET', KEYS[4], 'etag', ARGV[1], 'mtime', now())
return meta(KEYS[4])
"""
)

# KEYS: data, meta  ARGV: seconds (negative: never expire; 0: expire now).
EXPIRE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local seconds = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if seconds < 0 then redis.call('PERSIST', key) else redis.call('EXPIRE', key, seconds) end
end
return 1
"""

# KEYS: meta  ARGV: content type ('' removes it).
SET_TYPE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'type')
else
  redis.call('HSET', KEYS[1], 'type', ARGV[1])
end
return 1
"""

# Every script the connector runs, by the name of its constant here.
SCRIPTS = ("WRITE", "APPEND", "DELETE", "RENAME", "EXPIRE", "SET_TYPE")
