"""The Lua scripts behind ``redis-buffered-cas``: every check-and-change runs inside Redis.

Owns: the storage layout of one object and the scripts that change it
atomically. Reads need no script: the connector reads the metadata hash and
the value in one MULTI/EXEC block (a few microseconds of Redis time against
about fifteen for a script call), which no write can interleave with.
Each object is two keys (three while a large body uploads):

    D                  string  the value (D = STATE_PREFIX + key, readable with GET)
    D "\\0meta"         hash    etag, size, mtime and, when set, type (content type)
    D "\\0tmp\\0" <owner> "\\0" <hex>   string  a streamed body being staged; expires if abandoned
    D "\\0gone"        string  the request id of the last delete, for ten minutes

Keys never contain NUL, so the suffixes cannot collide with an object's name.
An object exists when its metadata hash exists. Both keys always carry the
same expiry: every script that changes one sets the other in the same call,
and Redis freezes time for the length of a script.

Idempotent retries: a writer sends the etag its write will create (the
request's id when it has one, so the runtime's own retries send the same).
If that etag is already stored, the script did run and only the reply was
lost, so a retry reports success instead of a false conflict. A delete with
a request id records it in ``D "\\0gone"``; a retry that finds the key
gone or changed and its own id there reports success.

Files and directories: a script that creates an object (write, append,
rename target) first checks, in the same atomic call, that no ancestor is an
object (EXISTS on each ancestor's metadata hash, passed in KEYS) and that no
object lives below it (``has_objects_below``). An overwrite skips both: an
existing object never has either. ``has_objects_below`` walks SCAN with a
MATCH pattern today, which costs time in the number of keys in the database
and holds Redis for that long; an index of names can replace its body
without changing any script. (Why a missing key is missing, asked on the
read path, needs no atomicity and uses the connector's listing, which does
not hold Redis.)

Must not: talk to Redis (the connector module runs these) or hold policy such
as size limits beyond the number it is given.
"""

from __future__ import annotations

META_SUFFIX = b"\x00meta"
DELETED_SUFFIX = b"\x00gone"
STAGED_INFIX = b"\x00tmp\x00"
# Field order of every metadata reply below.
META_FIELDS = ("etag", "size", "type", "mtime")

# Status codes in the first element of a reply.
OK = 1
CONFLICT = 0
MISSING = -1
NOT_A_DIRECTORY = -2
IS_A_DIRECTORY = -3

_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function meta(key)
  return redis.call('HMGET', key, 'etag', 'size', 'type', 'mtime')
end
-- Whether an object lives below ``dir`` (a data key ending with '/').
local function has_objects_below(dir)
  local pattern = string.gsub(dir, '[%*%?%[%]\\\\]', '\\\\%0') .. '*\\0meta'
  local cursor = '0'
  repeat
    local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    if #reply[2] > 0 then return true end
    cursor = reply[1]
  until cursor == '0'
  return false
end
-- 0 when an object may be created at ``data``, else NOT_A_DIRECTORY (one of
-- the ancestors' metadata hashes KEYS[first..last] exists) or IS_A_DIRECTORY.
local function path_conflict(data, first, last)
  for i = first, last do
    if redis.call('EXISTS', KEYS[i]) == 1 then return -2 end
  end
  if has_objects_below(data .. '/') then return -3 end
  return 0
end
"""

# KEYS: data, meta, the metadata hash of each ancestor[, staged]  ARGV:
# condition ('' | '*' | etag read), new etag, content type ('' for none),
# number of ancestors[, inline value]. An overwrite keeps the key's expiry.
WRITE = (
    _PRELUDE
    + """
local parents = tonumber(ARGV[4])
local staged = KEYS[3 + parents]
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[2] then
  local m = meta(KEYS[2])
  return {1, m[2], m[4]}
end
if not current then
  local refused = path_conflict(KEYS[1], 3, 2 + parents)
  if refused ~= 0 then return {refused} end
end
if ARGV[1] == '*' then
  if current then return {0} end
elseif ARGV[1] ~= '' and current ~= ARGV[1] then
  return {0}
end
local ttl = redis.call('PTTL', KEYS[2])
if staged then
  redis.call('RENAME', staged, KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[5])
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

# KEYS: data, meta, the metadata hash of each ancestor[, staged]  ARGV: new
# etag, size limit (0: none), number of ancestors[, inline tail]. Reply:
# {1, size, mtime, type}, {0} when the result would exceed the limit, or
# {NOT_A_DIRECTORY} / {IS_A_DIRECTORY}.
APPEND = (
    _PRELUDE
    + """
local parents = tonumber(ARGV[3])
local staged = KEYS[3 + parents]
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[1] then
  local m = meta(KEYS[2])
  return {1, m[2], m[4], m[3]}
end
if not current then
  local refused = path_conflict(KEYS[1], 3, 2 + parents)
  if refused ~= 0 then return {refused} end
  redis.call('DEL', KEYS[1])
end
local tail = ARGV[4]
if staged then
  tail = redis.call('GET', staged) or ''
  redis.call('DEL', staged)
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

# KEYS: data, meta, delete record  ARGV: etag the deleter read ('' for
# unconditional), request id ('' for none), milliseconds the record lives.
DELETE = """
local current = redis.call('HGET', KEYS[2], 'etag')
local refused = 0
if ARGV[1] ~= '' and current ~= ARGV[1] then
  refused = 0
elseif not current then
  refused = -1
else
  redis.call('DEL', KEYS[1], KEYS[2])
  if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3]) end
  return 1
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then return 1 end
return refused
"""

# KEYS: source data, source meta, target data, target meta, the metadata
# hash of each of the target's ancestors  ARGV: new etag. The object keeps its
# content type and expiry; a target is replaced. Reply: the target's metadata,
# nil when the source is missing, or NOT_A_DIRECTORY / IS_A_DIRECTORY.
RENAME = (
    _PRELUDE
    + """
if not redis.call('HGET', KEYS[2], 'etag') then
  if redis.call('HGET', KEYS[4], 'etag') == ARGV[1] then return meta(KEYS[4]) end
  return nil
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  local refused = path_conflict(KEYS[3], 5, #KEYS)
  if refused ~= 0 then return refused end
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
