//! The Lua scripts that make each multi-key step atomic in Redis.
//!
//! Keys of one session share a hash tag (`{…}`), so a step's keys are in
//! one slot. Seqs are Lua numbers: exact up to 2^53.

use std::sync::LazyLock;

use redis::Script;

/// One session's write: create, append and finish, all or nothing.
///
/// KEYS: meta hash, event stream, claim.
/// ARGV: create (`1`/`0`), owner, resume token, created ms, pipe (`1`/`0`),
/// ttl ms, claim ms, replica, stream cap, outcome kind (`done`, `failed` or
/// ``), outcome detail, then `seq, event` pairs.
///
/// The seq check is the fence between replicas: a replica whose claim
/// lapsed and whose generation another replica ended cannot append, since
/// the seqs it would write are taken.
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local m, e, l = KEYS[1], KEYS[2], KEYS[3]
if ARGV[1] == '1' then
  if redis.call('EXISTS', m) == 1 then return redis.error_reply('GTL EXISTS') end
  redis.call('HSET', m, 'owner', ARGV[2], 'token', ARGV[3], 'created', ARGV[4],
    'pipe', ARGV[5], 'last', 0, 'finished', 0)
  redis.call('SET', l, ARGV[8], 'PX', ARGV[7])
elseif redis.call('EXISTS', m) == 0 then
  return redis.error_reply('GTL UNKNOWN')
end
local n = #ARGV
if redis.call('HGET', m, 'finished') == '1' and (n > 11 or ARGV[10] ~= '') then
  return redis.error_reply('GTL FINISHED')
end
local last = tonumber(redis.call('HGET', m, 'last'))
for i = 12, n, 2 do
  local seq = tonumber(ARGV[i])
  if seq <= last then return redis.error_reply('GTL SEQ ' .. ARGV[i] .. ' ' .. last) end
  last = seq
end
for i = 12, n, 2 do
  redis.call('XADD', e, 'MAXLEN', '~', ARGV[9], ARGV[i] .. '-0', 'b', ARGV[i + 1])
end
redis.call('HSET', m, 'last', last)
if ARGV[10] ~= '' then
  redis.call('HSET', m, 'finished', 1, 'outcome', ARGV[10], 'detail', ARGV[11])
end
redis.call('PEXPIRE', m, ARGV[6])
redis.call('PEXPIRE', e, ARGV[6])
return last
",
    )
});

/// Renews this replica's claims and keeps the sessions' keys alive; a
/// claim that lapsed while this replica still drives the session (the
/// server restarted empty, say) is taken back if free.
///
/// KEYS: meta, stream and claim of each session, in that order.
/// ARGV: replica, claim ms, ttl ms.
/// Returns `index, reason` pairs of the sessions with a cancel request.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cancels = {}
for i = 1, #KEYS, 3 do
  local m, e, l = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local holder = redis.call('GET', l)
  if holder == ARGV[1] or (not holder and redis.call('EXISTS', m) == 1) then
    redis.call('SET', l, ARGV[1], 'PX', ARGV[2])
    redis.call('PEXPIRE', m, ARGV[3])
    redis.call('PEXPIRE', e, ARGV[3])
    local reason = redis.call('HGET', m, 'cancel')
    if reason then
      redis.call('HDEL', m, 'cancel')
      table.insert(cancels, (i - 1) / 3)
      table.insert(cancels, reason)
    end
  end
end
return cancels
",
    )
});

/// Gives up claims this replica holds.
///
/// KEYS: claims. ARGV: replica.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
",
    )
});

/// Records a cancel request for the session's driver.
///
/// KEYS: meta. ARGV: reason.
pub(crate) static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('GTL UNKNOWN') end
redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
return 1
",
    )
});

/// Forgets events up to a seq, keeping the session.
///
/// KEYS: meta, stream. ARGV: the first seq to keep.
pub(crate) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('GTL UNKNOWN') end
return redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1] .. '-0')
",
    )
});

/// Adds to counters and answers their totals.
///
/// KEYS: the counters. ARGV: `delta, expires_unix` per counter.
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local totals = {}
for i = 1, #KEYS do
  totals[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i - 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[2 * i])
end
return totals
",
    )
});
