"""The Lua scripts behind ``redis-buffered-cas``: every check-and-change runs inside Redis.

Owns: the storage layout of one mount and the scripts that change it
atomically. Reads need no script: the connector reads the metadata hash and
the value in one MULTI/EXEC block (a few microseconds of Redis time against
about fifteen for a script call), which no write can interleave with.
A mount is the keys starting with its root R (``STATE_PREFIX``); each object
is two keys (three while a large body uploads), and the mount has one index:

    R key                  string  the value (readable with GET)
    R key "\\0meta"         hash    etag, size, mtime and, when set, type (content type)
    R key "\\0tmp\\0" <owner> "\\0" <life> <hex>   string  a streamed body being staged; expires if abandoned
    R key "\\0req\\0" <id>   string  what request <id> did to the key ("<size> <mtime>" for a
                           write, append or rename to it, "deleted"), for RECORD_SECONDS
    R "\\0names"            zset    every object's key, score 0, in byte order;
                                   the member "" says the index is complete
    R "\\0indexing"         string  held (with an expiry) by whoever builds the index

Keys never contain NUL, so the suffixes cannot collide with an object's name.
An object exists when its metadata hash exists. Both keys always carry the
same expiry: every script that changes one sets the other in the same call,
and Redis freezes time for the length of a script.

The index: every script that creates, deletes or renames an object adds or
removes its name in the same atomic call, so a listing or a directory check
is a range of the sorted set by name (ZRANGEBYLEX: O(log N) to find the
start, then the entries it returns) and never walks the keyspace. Names
are added only by scripts; an object that expires (``user.asya.ttl``) or
that someone deletes by hand leaves its name behind, so every reader checks
the metadata hash of each name it uses and removes the names of objects that
are gone (at most ``PRUNE_BUDGET`` per call; past that the script answers
BUSY and the connector calls it again, so no call holds Redis for long).
The two scripts a reader runs (EXPLAIN, LIST) take a prune flag: a Redis
user without write access runs them read-only (EVALSHA_RO) and steps over
such names, leaving them to the next writer that meets them. A
mount whose objects were written before the index existed has no "" member:
the scripts that need the index answer NEEDS_INDEX and the connector builds
it (``redis.index``) before asking again.

Redis Cluster: every key of a mount starts with R, and on a cluster R holds
a hash tag (``STATE_PREFIX`` as it is when it has one, ``{orders}/``, else
wrapped: ``{orders/}``, see ``redis.cluster``), which keeps a mount's
values, metadata, staging keys and index in one slot, as the scripts need; the scripts touch only keys of their own
mount (the verification reads metadata hashes under R without naming them
in KEYS).

Idempotent retries: a writer sends the etag its write will create (the
request's id when it has one, so the runtime's own retries send the same).
If that etag is already stored, the script did run and only the reply was
lost, so a retry reports success instead of a false conflict. Every script
that changes a key for a request with an id also leaves a record of it,
``R key "\\0req\\0" <id>``, expiring after ``idempotency.RECORD_SECONDS``
(set in the same atomic call), so a retry is recognised for that long even
after other writers replaced or recreated the key: a write, append or rename
is answered with its own etag, size and time, a delete as done. Index
changes are idempotent (ZADD, ZREM).

Files and directories: a script that creates an object (write, append,
rename target) first checks, in the same atomic call, that no ancestor is an
object (EXISTS on each ancestor's metadata hash, passed in KEYS) and that no
object lives below it (a range of the index). An overwrite skips both: an
existing object never has either.

Must not: talk to Redis (the connector module runs these) or hold policy such
as size limits beyond the number it is given.
"""

from __future__ import annotations

META_SUFFIX = b"\x00meta"
REQUEST_INFIX = b"\x00req\x00"
STAGED_INFIX = b"\x00tmp\x00"
INDEX_SUFFIX = b"\x00names"
INDEX_LOCK_SUFFIX = b"\x00indexing"
# The index member that marks it complete; no object key is empty.
COMPLETE = b""
# Field order of every metadata reply below.
META_FIELDS = ("etag", "size", "type", "mtime")
# Names of vanished objects one call removes from the index before answering BUSY.
PRUNE_BUDGET = 1000

# Status codes in the first element of a reply.
OK = 1
CONFLICT = 0
MISSING = -1
NOT_A_DIRECTORY = -2
IS_A_DIRECTORY = -3
NEEDS_INDEX = -4
BUSY = -5

_PRELUDE = (
    """
local META = '\\0meta'
local PRUNE_BUDGET = """
    + str(PRUNE_BUDGET)
    + """
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function meta(key)
  return redis.call('HMGET', key, 'etag', 'size', 'type', 'mtime')
end
-- A retry of a write that already ran rewrites its etag: a write of this
-- call, so a WAIT after the script waits for replicas to have the object
-- (the first attempt's write may not have reached them yet).
local function touch(meta_key, etag)
  redis.call('HSET', meta_key, 'etag', etag)
end
-- The record of request ``id`` at the key whose value is ``data``.
local function record_of(data, id)
  return data .. '\\0req\\0' .. id
end
-- {1, size, mtime} when request ``id`` already wrote the key (its record), else nil.
local function recorded(data, id, window)
  if window == '0' then return nil end
  local done = redis.call('GET', record_of(data, id))
  if not done then return nil end
  local size, mtime = string.match(done, '^(%d+) (.+)$')
  if not size then return nil end
  return {1, tonumber(size), mtime}
end
-- Writes (or, for a retry, rewrites) the record: a write of this call, so a
-- WAIT after the script also covers a change a first attempt made.
local function record(data, id, window, size, mtime)
  if window ~= '0' then
    redis.call('SET', record_of(data, id), size .. ' ' .. mtime, 'PX', window)
  end
end
local function indexed(index)
  return redis.call('ZSCORE', index, '') ~= false
end
-- Whether an object's name in ``index`` starts with ``dir`` (ending with
-- '/'). With ``prune``, names of objects that are gone are removed as they
-- are met, and nil says PRUNE_BUDGET of them were removed without an
-- answer; without it (a read-only user) they are stepped over.
local function has_objects_below(index, root, dir, prune)
  local pruned = 0
  local low = '[' .. dir
  while true do
    local names = redis.call('ZRANGEBYLEX', index, low, '(' .. dir .. '\\255', 'LIMIT', 0, 32)
    if #names == 0 then return false end
    for _, name in ipairs(names) do
      if redis.call('EXISTS', root .. name .. META) == 1 then return true end
      if prune then
        redis.call('ZREM', index, name)
        pruned = pruned + 1
      end
      low = '(' .. name
    end
    if pruned >= PRUNE_BUDGET then return nil end
  end
end
-- 0 when an object may be created at ``name``, else NOT_A_DIRECTORY (one of
-- the ancestors' metadata hashes KEYS[first..last] exists), IS_A_DIRECTORY,
-- NEEDS_INDEX or BUSY.
local function path_conflict(index, root, name, first, last, prune)
  for i = first, last do
    if redis.call('EXISTS', KEYS[i]) == 1 then return -2 end
  end
  if not indexed(index) then return -4 end
  local below = has_objects_below(index, root, name .. '/', prune)
  if below == nil then return -5 end
  if below then return -3 end
  return 0
end
"""
)

# KEYS: data, meta, index, the metadata hash of each ancestor[, staged]
# ARGV: condition ('' | '*' | etag read), new etag, content type ('' for
# none), number of ancestors, root, name, milliseconds the request's record
# lives ('0': no request id, no record)[, inline value]. An overwrite keeps
# the key's expiry.
WRITE = (
    _PRELUDE
    + """
local parents = tonumber(ARGV[4])
local staged = KEYS[4 + parents]
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[2] then
  touch(KEYS[2], ARGV[2])
  local m = meta(KEYS[2])
  return {1, m[2], m[4]}
end
local done = recorded(KEYS[1], ARGV[2], ARGV[7])
if done then
  record(KEYS[1], ARGV[2], ARGV[7], done[2], done[3])
  return done
end
if not current then
  local refused = path_conflict(KEYS[3], ARGV[5], ARGV[6], 4, 3 + parents, true)
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
  redis.call('SET', KEYS[1], ARGV[8])
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
if not current then redis.call('ZADD', KEYS[3], 0, ARGV[6]) end
record(KEYS[1], ARGV[2], ARGV[7], size, mtime)
return {1, size, mtime}
"""
)

# KEYS: data, meta, index, the metadata hash of each ancestor[, staged]
# ARGV: new etag, size limit (0: none), number of ancestors, root, name,
# milliseconds the request's record lives ('0': none)[, inline tail]. Reply:
# {1, size, mtime, type}, {0} when the result would exceed the limit, or
# {status} for a refusal.
APPEND = (
    _PRELUDE
    + """
local parents = tonumber(ARGV[3])
local staged = KEYS[4 + parents]
local current = redis.call('HGET', KEYS[2], 'etag')
if current == ARGV[1] then
  touch(KEYS[2], ARGV[1])
  local m = meta(KEYS[2])
  return {1, m[2], m[4], m[3]}
end
local done = recorded(KEYS[1], ARGV[1], ARGV[6])
if done then
  record(KEYS[1], ARGV[1], ARGV[6], done[2], done[3])
  return {1, done[2], done[3], redis.call('HGET', KEYS[2], 'type')}
end
if not current then
  local refused = path_conflict(KEYS[3], ARGV[4], ARGV[5], 4, 3 + parents, true)
  if refused ~= 0 then return {refused} end
  redis.call('DEL', KEYS[1])
end
local tail = ARGV[7]
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
if not current then redis.call('ZADD', KEYS[3], 0, ARGV[5]) end
record(KEYS[1], ARGV[1], ARGV[6], size, mtime)
return {1, size, mtime, redis.call('HGET', KEYS[2], 'type')}
"""
)

# KEYS: data, meta, index, the request's record  ARGV: etag the deleter read
# ('' for unconditional), name, whether the request has an id ('' for none),
# milliseconds the record lives.
DELETE = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[4]) == 'deleted' then
  -- A retry of this very delete: rewritten so a WAIT after the script covers it.
  redis.call('SET', KEYS[4], 'deleted', 'PX', ARGV[4])
  return 1
end
local current = redis.call('HGET', KEYS[2], 'etag')
if ARGV[1] ~= '' and current ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[3], ARGV[2])
if not current then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], 'deleted', 'PX', ARGV[4]) end
return 1
"""

# KEYS: source data, source meta, target data, target meta, index, the
# metadata hash of each of the target's ancestors  ARGV: new etag, root,
# source name, target name, milliseconds the request's record lives ('0':
# none). The object keeps its content type and expiry; a target is replaced.
# Reply: the target's metadata, nil when the source is missing, or a refusal
# status.
RENAME = (
    _PRELUDE
    + """
if not redis.call('HGET', KEYS[2], 'etag') then
  if redis.call('HGET', KEYS[4], 'etag') == ARGV[1] then
    touch(KEYS[4], ARGV[1])
    return meta(KEYS[4])
  end
  local done = recorded(KEYS[3], ARGV[1], ARGV[5])
  if done then
    record(KEYS[3], ARGV[1], ARGV[5], done[2], done[3])
    return {ARGV[1], done[2], false, done[3]}
  end
  return nil
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  local refused = path_conflict(KEYS[5], ARGV[2], ARGV[4], 6, #KEYS, true)
  if refused ~= 0 then return refused end
end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('RENAME', KEYS[2], KEYS[4])
redis.call('HSET', KEYS[4], 'etag', ARGV[1], 'mtime', now())
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('ZADD', KEYS[5], 0, ARGV[4])
local m = meta(KEYS[4])
record(KEYS[3], ARGV[1], ARGV[5], m[2], m[4])
return m
"""
)

# KEYS: data, meta, index  ARGV: seconds (negative: never expire; 0: expire
# now), name.
EXPIRE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local seconds = tonumber(ARGV[1])
for i = 1, 2 do
  if seconds < 0 then redis.call('PERSIST', KEYS[i]) else redis.call('EXPIRE', KEYS[i], seconds) end
end
if seconds == 0 then redis.call('ZREM', KEYS[3], ARGV[2]) end
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

# Why ``name`` is not an object: KEYS: index, the metadata hash of each
# ancestor  ARGV: root, name, prune ('1': remove dead names met). Reply: 0 (nothing there), NOT_A_DIRECTORY,
# IS_A_DIRECTORY, NEEDS_INDEX or BUSY.
EXPLAIN = (
    _PRELUDE
    + """
return path_conflict(KEYS[1], ARGV[1], ARGV[2], 2, #KEYS, ARGV[3] == '1')
"""
)

# One page of a listing. KEYS: index  ARGV: root, prefix, where to start
# ('' for the beginning, else the exclusive lower bound as a ZRANGEBYLEX
# argument), limit, delimiter ('' for a flat listing), prune ('1': remove
# the names of objects that are gone; '0' steps over them, for read-only
# users, and still answers a page after PRUNE_BUDGET of them). Reply: {status, next
# token ('' for none), number of entries, then per entry its name and
# META_FIELDS, then the rolled-up prefixes}. A name below a rolled-up prefix
# is checked to be live before the prefix is reported, and the range then
# jumps past the prefix: a page costs O(log N) per entry or prefix, never the
# number of names under a prefix.
LIST = (
    _PRELUDE
    + """
local index, root, prefix = KEYS[1], ARGV[1], ARGV[2]
local limit, delimiter, prune = tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'
if not indexed(index) then return {-4} end
local low = ARGV[3]
if low == '' then low = '[' .. prefix end
local high = '(' .. prefix .. '\\255'
local entries, prefixes = {}, {}
local function page(token)
  local reply = {1, token, #entries / 5}
  for _, value in ipairs(entries) do reply[#reply + 1] = value end
  for _, value in ipairs(prefixes) do reply[#reply + 1] = value end
  return reply
end
local count, pruned, last = 0, 0, ''
while true do
  local names = redis.call('ZRANGEBYLEX', index, low, high, 'LIMIT', 0, 64)
  if #names == 0 then return page('') end
  for _, name in ipairs(names) do
    low = '(' .. name
    if name ~= '' then
      local cut = nil
      if delimiter ~= '' then cut = string.find(name, delimiter, #prefix + 1, true) end
      local m = meta(root .. name .. META)
      if not m[1] then
        if prune then redis.call('ZREM', index, name) end
        pruned = pruned + 1
        if pruned >= PRUNE_BUDGET then return page(name) end
      elseif count == limit then
        return page(last)
      elseif cut then
        last = string.sub(name, 1, cut + #delimiter - 1)
        prefixes[#prefixes + 1] = last
        count = count + 1
        -- Past every name below the prefix: the next range starts there.
        low = '(' .. last .. '\\255'
        break
      else
        last = name
        entries[#entries + 1] = name
        entries[#entries + 1] = m[1]
        entries[#entries + 1] = m[2]
        entries[#entries + 1] = m[3] or ''
        entries[#entries + 1] = m[4] or ''
        count = count + 1
      end
    end
  end
end
"""
)

# Add names of objects written before the index existed. KEYS: index  ARGV:
# root, then names; a name is added only if its metadata hash exists now.
ADOPT = """
local added = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i] .. '\\0meta') == 1 then
    added = added + redis.call('ZADD', KEYS[1], 0, ARGV[i])
  end
end
return added
"""

# Every script the connector runs, by the name of its constant here.
SCRIPTS = ("WRITE", "APPEND", "DELETE", "RENAME", "EXPIRE", "SET_TYPE", "EXPLAIN", "LIST", "ADOPT")
