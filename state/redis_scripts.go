package state

import "github.com/redis/go-redis/v9"

// writeScript applies every write of the Redis store atomically: it checks
// the condition (create, compare-and-swap, delete), takes the next revision
// from the namespace's counter, writes the item hash, sets its expiry, and
// publishes the event, all in one step, so events leave in write order and
// no reader sees a write without its revision. go-redis runs it with
// EVALSHA and falls back to EVAL when the server does not have it cached
// (after a restart, or SCRIPT FLUSH).
//
//	KEYS[1]  the item hash  tether/{ns}/item/<key>   fields v (value), r (revision), e (expiry, Unix ms, 0 = never)
//	KEYS[2]  the counter    tether/{ns}/rev
//	ARGV     mode (put|create|cas|delete), expected revision, value,
//	         expiry ms, caller's clock ms, key, event channel
//
// It replies {code, revision}; code is ok, exists, gone, conflict or notfound.
// An item whose expiry has passed on the caller's clock counts as absent (and
// is deleted) even if Redis has not removed it yet, so every replica of the
// gateway judges expiry the same way Get and List do.
var writeScript = redis.NewScript(`
local mode = ARGV[1]
local cur = redis.call('HMGET', KEYS[1], 'r', 'e')
local curRev = tonumber(cur[1])
if curRev then
  local e = tonumber(cur[2]) or 0
  if e > 0 and e <= tonumber(ARGV[5]) then
    redis.call('DEL', KEYS[1])
    curRev = nil
  end
end
if mode == 'create' or (mode == 'cas' and ARGV[2] == '0') then
  if curRev then return {'exists', curRev} end
elseif mode == 'cas' then
  if not curRev then return {'gone', 0} end
  if curRev ~= tonumber(ARGV[2]) then return {'conflict', curRev} end
elseif mode == 'delete' then
  if not curRev then return {'notfound', 0} end
elseif mode ~= 'put' then
  return redis.error_reply('tether: unknown write mode ' .. mode)
end
local rev = redis.call('INCR', KEYS[2])
if curRev and rev <= curRev then
  -- The counter was lost (restored from an older snapshot than the items):
  -- never hand out a revision that goes back.
  rev = curRev + 1
  redis.call('SET', KEYS[2], string.format('%d', rev))
end
local srev = string.format('%d', rev)
local klen = string.format('%d', string.len(ARGV[6]))
redis.call('DEL', KEYS[1])
if mode == 'delete' then
  redis.call('PUBLISH', ARGV[7], 'd ' .. srev .. ' 0 ' .. klen .. ' ' .. ARGV[6])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'r', srev, 'e', ARGV[4])
  if ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
  redis.call('PUBLISH', ARGV[7], 'p ' .. srev .. ' ' .. ARGV[4] .. ' ' .. klen .. ' ' .. ARGV[6] .. ARGV[3])
end
return {'ok', rev}
`)
