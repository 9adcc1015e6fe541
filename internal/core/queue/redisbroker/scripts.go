package redisbroker

import (
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// Every state change is one of these scripts, run on the keys of one queue
// only (they share the hash tag {queue}, so in a cluster they live in one
// slot). A script never touches two queues or the queue index; the index is
// written by a separate command in the same pipeline, and so is the wake-up
// list, except by enqueueScript and removeScript on a single server (see
// there). locateScript, which reads every queue, runs on a single server
// only.
//
// Keys of queue Q under prefix P (default "refrakt:"):
//
//	P q:{Q}:pending    LIST  ids of pending jobs, FIFO (RPUSH, LPOP)
//	P q:{Q}:scheduled  ZSET  id → run_at (ms) of scheduled jobs
//	P q:{Q}:retry      ZSET  id → run_at (ms) of failed jobs waiting to retry
//	P q:{Q}:running    ZSET  id → lease deadline (ms) of running jobs
//	P q:{Q}:history    ZSET  id → finished_at (ms) of succeeded and cancelled jobs (capped)
//	P q:{Q}:dead       ZSET  id → finished_at (ms) of dead jobs (capped on their own)
//	P q:{Q}:stats      HASH  enqueued, started, succeeded, failed: totals that only grow
//	P q:{Q}:paused     STRING "1" while the queue is paused (no TTL): dequeueScript takes nothing
//	P q:{Q}:j:<id>     HASH  one job (fields: see prelude FIELDS)
//	P q:{Q}:idem:<K>   STRING "id fingerprint expires_ms" of idempotency key K, expiring (see enqueueScript)
//	P q:{Q}:idem       ZSET  K → expires_ms of the queue's idempotency keys, for removeScript (expiring with its longest-lived record)
//
// Each of history and dead holds up to the history cap (JOB_HISTORY), so
// that successes never push a dead job out: only newer dead jobs do.
// Daemons before this layout added a dead job to both sets (dead was a
// subset of history); such a job may still be in both, so trim drops what
// it trims of either set from the other too, and whatever reads "every
// finished job" reads both sets and counts an id once.
//
// The job hash keys are built inside the scripts from the prefix passed as
// the last KEYS entry (as asynq does); they share the queue's hash tag.
//
// Times are integer milliseconds since the epoch. Every script takes "now"
// as ARGV[1]: 0 means "use Redis TIME" (production: one clock for every
// daemon), anything else is the time to use (deterministic tests).
//
// The scripts that must not act after their caller gave up (enqueueScript,
// dequeueScript, claimScript, finishScript, tickScript) also take "not
// after": when it is positive and now is past it, they write nothing and
// answer a "late" marker (see deadline.go).

// script is a Lua script with its source kept, to re-send it in a pipeline
// after NOSCRIPT.
type script struct {
	*redis.Script
	src string
}

func newScript(src string) *script { return &script{redis.NewScript(src), src} }

// String returns the script's source.
func (s *script) String() string { return s.src }

// nowMS defines now_ms(arg): the "now" argument, or Redis TIME in ms when
// it is 0. Part of the prelude; enqueueScript takes it alone.
//
// A Lua number given to redis.call costs the server a "%.17g" conversion
// (glibc's exact float printing: a sixth of the job scripts' time once was
// spent in it), and Lua's tostring one of "%.14g". The hot scripts give
// redis.call strings instead: now formatted once a call with "%d" (an
// integer conversion, several times cheaper), constants as strings.
const nowMS = `
local function now_ms(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// jobFields defines FIELDS, the job hash fields (job.go's fields, in the
// same order), and job(key), which reads them. Part of the prelude; the
// read-only scripts that need nothing else take it alone.
const jobFields = `
local FIELDS = {'id','queue','type','payload','status','attempts','retries','max_retries','interval',
  'run_at','enqueued_at','started_at','finished_at','last_error','result','source','ready_at','lease_until','token',
  'timeout_ms','cron','tz'}
local function job(key) return redis.call('HMGET', key, unpack(FIELDS)) end
`

// prelude is prepended to every script but enqueueScript and the
// read-only ones that take jobFields alone.
const prelude = nowMS + jobFields + `
-- START_FIELDS are what a worker needs of a job it starts.
local START_FIELDS = {'status','type','payload','attempts','retries','max_retries','interval','run_at',
  'enqueued_at','source','ready_at','token','timeout_ms','cron','tz'}
-- start moves a job to running under a new lease and fencing token and
-- returns {id, START_FIELDS…} with status, attempts and token updated (one
-- HMGET, one HSET: the hot path); nows and untils are now and the lease's
-- end, as strings (see nowMS). The caller adds the job to the running
-- set (one ZADD for a whole batch: each redis.call costs the server about
-- as much as the command it runs). It returns false, writing nothing, when
-- the job is not in status want (when want is given), and false, true,
-- writing nothing, when spare is set and the job has no retry to spare
-- (on its last try: retries >= max_retries, queue.LastTry).
local function start(key, id, nows, untils, want, spare)
  local f = redis.call('HMGET', key, unpack(START_FIELDS))
  if want and f[1] ~= want then return false end
  if spare and (tonumber(f[5]) or 0) >= (tonumber(f[6]) or 0) then return false, true end
  f[1] = 'running'
  f[4] = string.format('%d', (tonumber(f[4]) or 0) + 1)
  f[12] = string.format('%d', (tonumber(f[12]) or 0) + 1)
  redis.call('HSET', key, 'status', 'running', 'attempts', f[4], 'started_at', nows, 'lease_until', untils, 'token', f[12])
  table.insert(f, 1, id)
  return f
end
-- bulk runs cmd on key (none when key is false) with the arguments in
-- list, in as few calls as unpack allows (its results live on Lua's C
-- stack, bounded): one call for many members costs the server far less
-- than a call each. list's length must be a multiple of the command's
-- arity, and 512 is a multiple of 1 and 2.
local function bulk(cmd, key, list)
  for i = 1, #list, 512 do
    local j = i + 511
    if j > #list then j = #list end
    if key then redis.call(cmd, key, unpack(list, i, j)) else redis.call(cmd, unpack(list, i, j)) end
  end
end
-- trim drops the oldest finished jobs of set beyond cap, with their hashes,
-- and from other too when it exists: set and other are history and dead,
-- either way round (a dead job of an earlier version is in both).
local function trim(set, other, prefix, cap)
  local n = redis.call('ZCARD', set)
  if n <= cap then return end
  local old = redis.call('ZRANGE', set, 0, n - cap - 1)
  local keys = {}
  for k, oid in ipairs(old) do keys[k] = prefix .. oid end
  bulk('DEL', false, keys)
  if redis.call('EXISTS', other) == 1 then bulk('ZREM', other, old) end
  redis.call('ZREMRANGEBYRANK', set, 0, n - cap - 1)
end
-- to_history records a finished job (once: a ZSET), in dead when it is
-- dead, else in history, and, unless the caller trims once for a whole
-- batch, drops the oldest of that set beyond cap.
local function to_history(history, dead, prefix, cap, id, now, is_dead, batch)
  if is_dead then history, dead = dead, history end
  redis.call('ZADD', history, now, id)
  if not batch then trim(history, dead, prefix, cap) end
end
`

// unqueue is prepended, after the prelude, to the scripts that take a job
// out of line by id (not to the hot ones, which would pay for its closure).
// unqueue(st, id, …) removes job id from the list or set of its status st,
// running only when a running key is given, and returns false, writing
// nothing, when st is none of those.
const unqueue = `
local function unqueue(st, id, pending, scheduled, retry, running)
  if st == 'pending' then redis.call('LREM', pending, 1, id)
  elseif st == 'scheduled' then redis.call('ZREM', scheduled, id)
  elseif st == 'failed' then redis.call('ZREM', retry, id)
  elseif running and st == 'running' then redis.call('ZREM', running, id)
  else return false end
  return true
end
`

// oomGuard is prepended, after the "late" check, to the scripts whose first
// write would otherwise be one that Redis lets through when it is out of
// memory (maxmemory reached, noeviction): dequeueScript (LPOP), claimScript
// (LREM, ZREM), tickScript's lease recovery (ZREM), requeueScript (ZREM)
// and requeueDeadScript (HDEL).
// Redis refuses a script only at its first write, and only when that write
// is a command that may grow memory; after it the script runs to its end.
// Under OOM these scripts would then take jobs whose outcomes and lease
// renewals (HSET first, refused whole) could never be written: each run
// lost, its lease recovered as a failed attempt, the job taken again, until
// it was dead although its handler succeeded every time. LPUSHX on a key
// that never exists is such a write and writes nothing, so the script is
// refused whole before it moves anything, as the enqueue, the finish and the
// renewal are. KEYS[1] is the queue's pending list: the probe shares its
// hash tag.
const oomGuard = `
redis.call('LPUSHX', KEYS[1] .. ':oom', 'x')
`

// enqueueScript stores new jobs of one queue. It is the hot path of a
// single caller, so it skips the prelude (its tables and closures cost a
// few microseconds of Redis CPU per call) but for now_ms.
//
// A job hash is small enough for Redis to keep as a listpack, where HMGET
// and HSET find a field by reading the fields before it, and each field
// written to a new hash grows it once: the job's fields are written in the
// order the hot scripts look them up (finishScript's, then the rest of
// START_FIELDS), with id and queue, which no script reads, last; and the
// counters that start at zero (attempts, retries, token), and a scheduled
// job's ready_at, are left out until set. Every reader takes a missing
// field as 0 (the scripts' "tonumber(x) or 0", HINCRBY, parseJob).
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] stats  KEYS[4] job key prefix
//	KEYS[5] wake-up list, KEYS[6] queue index (both optional: only on a
//	        single Redis server, where a script may touch keys of any slot;
//	        on a cluster the broker pushes the wake-up with a separate
//	        command in the same pipeline, and adds a made queue to the index
//	        once the script has answered)
//	ARGV[1] now  ARGV[2] queue name  ARGV[3] not after (ms, 0: none)
//	ARGV[4] m, the number of jobs with an idempotency key (0 on the hot path)
//	then 5 per such job, in the jobs' order: the ARGV index of its id, its
//	        number of ARGV, key, fingerprint, TTL (ms)
//	then 11 per job: id, type, payload, max_retries, interval_seconds, delay_ms, source,
//	timeout_ms (0: none, and no field written: a job without one costs
//	what it did before timeouts), cron, timezone ("": none, no field
//	written), at (a cron job's first run, absolute ms, in place of
//	delay_ms; 0: none)
//
// A job's idempotency key K is recorded in P q:{Q}:idem:K, a STRING
// "id fingerprint expires_ms" expiring after its TTL, and in the index
// P q:{Q}:idem, a ZSET K → expires_ms that removeScript deletes the records
// by (its expired members are dropped by the next keyed enqueue). Both are
// built from the job key prefix, in the queue's slot. A key recorded and
// not expired (by now: a test's clock too) for the same fingerprint, with
// its job still kept, is a replay: that job is not stored (its ARGV are
// taken out before the store) and the answer ends with "replay" and, per
// replayed job, its rank among the keyed jobs (from 1) and the id of the
// key's job. A key recorded for
// another fingerprint answers {now, 0, 0, "reused", key, id}, one whose job
// is gone {now, 0, 0, "gone", key, id}, both writing nothing. An enqueue
// without a key runs none of this (one ARGV more, no redis.call).
//
// Returns {now, 0, 0, "late"} without writing anything when now is past
// not after (Redis ran it after its caller stopped waiting: a stall).
// Returns {now, 0, made} after storing every job (pending when delay_ms is
// 0, else scheduled) and, given KEYS[5] and at least one pending job,
// pushing the queue's name on the wake-up list once per pending job, up to
// wakeBacklog times (trimmed to its last
// wakeBacklog entries once it holds wakeBacklog+32); or {now, id} without
// writing anything when job id exists. made is 1 when these are the
// queue's first jobs (none before, or none since removeScript): given
// KEYS[6], the queue is then added to the index here, atomically with its
// jobs, so a queue removed a moment ago and made again is never left out of
// the index by a broker that still thinks it is listed; and a pause flag
// left by an earlier version's removal (which did not know it) is dropped.
// Both cost nothing on the hot path: only a queue's first enqueue runs them.
var enqueueScript = newScript(nowMS + `
local now = now_ms(ARGV[1])
local not_after = tonumber(ARGV[3])
if not_after > 0 and now > not_after then return {now, 0, 0, 'late'} end
local m, first, replays = tonumber(ARGV[4]), 5, nil
if m > 0 then
  first = 5 + 5 * m
  replays = {}
  local idem = string.sub(KEYS[4], 1, -3) .. 'idem:'
  for e = 5, first - 1, 5 do
    local rec = redis.call('GET', idem .. ARGV[e+2])
    local id, fp, exp
    if rec then id, fp, exp = string.match(rec, '^(%S+) (%S+) (%d+)$') end
    if id and tonumber(exp) > now then
      if fp ~= ARGV[e+3] then return {now, 0, 0, 'reused', ARGV[e+2], id} end
      if redis.call('EXISTS', KEYS[4] .. id) == 0 then return {now, 0, 0, 'gone', ARGV[e+2], id} end
      replays[#replays + 1] = string.format('%d', (e - 5) / 5 + 1)
      replays[#replays + 1] = id
    end
  end
end
for i = first, #ARGV, 11 do
  if redis.call('EXISTS', KEYS[4] .. ARGV[i]) == 1 then return {now, ARGV[i]} end
end
if m > 0 then
  local idem = string.sub(KEYS[4], 1, -3) .. 'idem'
  local replayed = {}
  for r = 1, #replays, 2 do replayed[5 + 5 * (tonumber(replays[r]) - 1)] = true end
  local ttl = 0
  for e = 5, first - 1, 5 do
    if not replayed[e] then
      local exp = string.format('%d', now + tonumber(ARGV[e+4]))
      redis.call('SET', idem .. ':' .. ARGV[e+2], ARGV[tonumber(ARGV[e])] .. ' ' .. ARGV[e+3] .. ' ' .. exp, 'PX', ARGV[e+4])
      redis.call('ZADD', idem, exp, ARGV[e+2])
      if tonumber(ARGV[e+4]) > ttl then ttl = tonumber(ARGV[e+4]) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', idem, '-inf', string.format('%d', now))
  -- the index lives as long as its longest-lived record: left alone (a
  -- queue no longer given keys, a rollback), it goes with the records
  if ttl > 0 and ttl > redis.call('PTTL', idem) then redis.call('PEXPIRE', idem, string.format('%d', ttl)) end
  -- the replayed jobs' ARGV out, the last job first, so the store below skips them
  for e = first - 5, 5, -5 do
    if replayed[e] then
      for _ = 1, tonumber(ARGV[e+1]) do table.remove(ARGV, tonumber(ARGV[e])) end
    end
  end
end
local n, ready = 0, 0
local nows = string.format('%d', now)
for i = first, #ARGV, 11 do
  local id, delay, at = ARGV[i], tonumber(ARGV[i+5]), tonumber(ARGV[i+10])
  if delay > 0 or at > 0 then
    local runs = string.format('%d', now + delay)
    if at > 0 then runs = ARGV[i+10] end
    redis.call('HSET', KEYS[4] .. id, 'status', 'scheduled', 'interval', ARGV[i+4], 'type', ARGV[i+1],
      'payload', ARGV[i+2], 'max_retries', ARGV[i+3], 'run_at', runs, 'enqueued_at', nows, 'source', ARGV[i+6],
      'id', id, 'queue', ARGV[2])
    redis.call('ZADD', KEYS[2], runs, id)
  else
    redis.call('HSET', KEYS[4] .. id, 'status', 'pending', 'interval', ARGV[i+4], 'type', ARGV[i+1],
      'payload', ARGV[i+2], 'max_retries', ARGV[i+3], 'run_at', nows, 'enqueued_at', nows, 'source', ARGV[i+6],
      'ready_at', nows, 'id', id, 'queue', ARGV[2])
    redis.call('RPUSH', KEYS[1], id)
    ready = ready + 1
  end
  if ARGV[i+7] ~= '0' then redis.call('HSET', KEYS[4] .. id, 'timeout_ms', ARGV[i+7]) end
  if ARGV[i+8] ~= '' then redis.call('HSET', KEYS[4] .. id, 'cron', ARGV[i+8], 'tz', ARGV[i+9]) end
  n = n + 1
end
local made = 0
if n > 0 and redis.call('HINCRBY', KEYS[3], 'enqueued', string.format('%d', n)) == n then
  made = 1
  -- A pause flag left by a removal of an earlier version (whose removeScript
  -- does not know it): a queue made again runs. Its key is the job key
  -- prefix's queue part and "paused", in the queue's slot.
  redis.call('DEL', string.sub(KEYS[4], 1, -3) .. 'paused')
  if KEYS[6] then redis.call('SADD', KEYS[6], ARGV[2]) end
end
if KEYS[5] and ready > 0 then
  -- One wake-up per ready job up to the backlog: a blocked fetcher takes
  -- one, and a batch's jobs are work for every idle one. One job: one
  -- RPUSH of one element.
  local len
  if ready == 1 then
    len = redis.call('RPUSH', KEYS[5], ARGV[2])
  else
    local w = {}
    for j = 1, math.min(ready, ` + strconv.Itoa(wakeBacklog) + `) do w[j] = ARGV[2] end
    len = redis.call('RPUSH', KEYS[5], unpack(w))
  end
  if len > ` + strconv.Itoa(wakeBacklog+32) + ` then
    redis.call('LTRIM', KEYS[5], -` + strconv.Itoa(wakeBacklog) + `, -1)
  end
end
if replays and #replays > 0 then return {now, 0, made, 'replay', unpack(replays)} end
return {now, 0, made}
`)

// dequeueScript starts up to N pending jobs, oldest first. Beyond the
// first R it starts, it starts none on its last try (retries >=
// max_retries, queue.LastTry): the caller would hold it ahead of a free
// worker, and a crash of the caller would make it dead unrun. That job and
// those after it go back to the head of the list, in order.
//
//	KEYS[1] pending  KEYS[2] running  KEYS[3] stats  KEYS[4] job key prefix
//	KEYS[5] paused flag
//	ARGV[1] now  ARGV[2] N  ARGV[3] lease_ms  ARGV[4] not after (ms, 0: none)
//	ARGV[5] R (N or more: take any job)
//
// Returns {now, {id, START_FIELDS…}, …}, one per job started, followed by
// "held" when it put a job back on its last try; {now, "late"} without
// starting anything when now is past not after (a fetcher that has given
// up would hold the jobs until their leases expire); {now} without
// starting anything when the queue is paused: the check is here, in the
// take, so that no fetch takes a job once a pause has answered (one
// EXISTS a call, none a job: the hot path stays as cheap).
var dequeueScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local not_after = tonumber(ARGV[4])
if not_after > 0 and now > not_after then return {now, 'late'} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {now} end
` + oomGuard + `
local out = {now}
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[2]))
if not ids then return out end
local nows, untils = string.format('%d', now), string.format('%d', now + tonumber(ARGV[3]))
local ready = tonumber(ARGV[5])
local leases, put_back = {}, false
for i, id in ipairs(ids) do
  local f, held = start(KEYS[4] .. id, id, nows, untils, 'pending', #out > ready)
  if held then
    local back = {}
    for k = #ids, i, -1 do back[#back + 1] = ids[k] end
    bulk('LPUSH', KEYS[1], back)
    put_back = true
    break
  end
  if f then
    out[#out + 1] = f
    leases[#leases + 1] = untils
    leases[#leases + 1] = id
  end
end
if #out > 1 then
  bulk('ZADD', KEYS[2], leases)
  redis.call('HINCRBY', KEYS[3], 'started', #out - 1)
end
if put_back then out[#out + 1] = 'held' end
return out
`)

// claimScript starts one job now, whatever its run_at.
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] stats  KEYS[6] job key prefix
//	ARGV[1] now  ARGV[2] id  ARGV[3] lease_ms  ARGV[4] not after (ms, 0: none)
//
// Returns {"ok", now, {id, START_FIELDS…}}; {"conflict", status} when the
// job is not pending, scheduled or failed; {"not_found"} when there is no
// such job; {"late", now} without looking when now is past not after.
var claimScript = newScript(prelude + unqueue + `
local now = now_ms(ARGV[1])
local not_after = tonumber(ARGV[4])
if not_after > 0 and now > not_after then return {'late', now} end
` + oomGuard + `
local id = ARGV[2]
local key = KEYS[6] .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'not_found'} end
if not unqueue(st, id, KEYS[1], KEYS[2], KEYS[3]) then return {'conflict', st} end
local nows, untils = string.format('%d', now), string.format('%d', now + tonumber(ARGV[3]))
-- not yet due: the claim makes it ready, now (a handed-back job's age in
-- pending counts from here)
if st ~= 'pending' then redis.call('HSET', key, 'ready_at', nows) end
local f = start(key, id, nows, untils)
redis.call('ZADD', KEYS[4], untils, id)
redis.call('HINCRBY', KEYS[5], 'started', 1)
return {'ok', now, f}
`)

// extendScript renews leases whose token still holds the job.
//
//	KEYS[1] running  KEYS[2] job key prefix
//	ARGV[1] now  ARGV[2] lease_ms  then pairs: id, token
//
// Returns one integer per pair: 1 renewed, 0 lease lost.
var extendScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local until_ = now + tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local key = KEYS[2] .. id
  local f = redis.call('HMGET', key, 'status', 'token')
  if f[1] == 'running' and f[2] == ARGV[i+1] then
    redis.call('HSET', key, 'lease_until', until_)
    redis.call('ZADD', KEYS[1], 'XX', until_, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`)

// finishScript records the outcomes of runs.
//
//	KEYS[1] running  KEYS[2] retry  KEYS[3] scheduled  KEYS[4] history
//	KEYS[5] dead  KEYS[6] stats  KEYS[7] job key prefix
//	ARGV[1] now  ARGV[2] history cap  ARGV[3] not after (ms, 0: none)
//	then 5 per outcome: id, token, "ok"|"fail"|"final", result or error, retry_ms
//	(of an "ok": next_at, a cron job's next run in absolute ms, 0: none)
//
// A success of a recurring job (interval > 0) schedules it again at
// now + interval with the same id, a cron job given next_at at next_at
// (only Go reads cron); any other success is succeeded. next_at took
// no new argument, as "final" did not (below): an earlier script reads an
// "ok"'s retry_ms as nothing and ends the job as a one-shot job. A failure
// increments retries: beyond max_retries the job is dead, else failed and
// due again at now + retry_ms. A "final" failure (queue.Outcome.NoRetry) is
// dead at once, as the last retry's is.
//
// "final" took no new argument, so the layout stays 5 per outcome. An
// earlier script is never given "final": each binary runs the script of
// its own source (EVALSHA of its SHA, the source sent again on NOSCRIPT),
// so daemons of two versions sharing a Redis never run each other's, and
// an earlier binary never sends it. Were one ever given it, it would read
// it as any failure that is not "ok" and retry the job at once (a final
// outcome's retry_ms is 0: Finish sets no RetryIn for it), but never shift
// the outcomes after it [TestFinishScriptAcrossVersions].
// Returns {now, status…}, one string per outcome: the new status, or ""
// when the token no longer holds the job (nothing written). Returns
// {now, "late"} without writing anything when now is past not after
// ("late" is no status): the caller, told the write failed, sends the
// outcomes again, and that write is the one it counts.
var finishScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local not_after = tonumber(ARGV[3])
if not_after > 0 and now > not_after then return {now, 'late'} end
local cap = tonumber(ARGV[2])
local out = {now}
local nows, format = string.format('%d', now), string.format
local ok, failed = 0, 0
-- the members to take out of running, and to add to history (succeeded)
-- and dead, in one call each once the loop is done (nothing in it reads
-- those sets)
local done, hist, dead = {}, {}, {}
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  local key = KEYS[7] .. id
  local f = redis.call('HMGET', key, 'status', 'token', 'interval')
  if f[1] ~= 'running' or f[2] ~= ARGV[i+1] then
    out[#out + 1] = ''
  else
    done[#done + 1] = id
    if ARGV[i+2] == 'ok' then
      ok = ok + 1
      local interval, next_at = tonumber(f[3]) or 0, tonumber(ARGV[i+4]) or 0
      -- next_at only for a cron job (every other success is sent with 0;
      -- the check costs nothing on their path)
      if next_at > 0 and redis.call('HEXISTS', key, 'cron') == 0 then next_at = 0 end
      if interval > 0 or next_at > 0 then
        local run_at = now + interval * 1000
        if next_at > 0 then run_at = next_at end
        local runs = format('%d', run_at)
        redis.call('HSET', key, 'status', 'scheduled', 'result', ARGV[i+3], 'finished_at', nows,
          'run_at', runs, 'retries', '0', 'lease_until', '0', 'source', 'schedule')
        redis.call('ZADD', KEYS[3], runs, id)
        out[#out + 1] = 'scheduled'
      else
        redis.call('HSET', key, 'status', 'succeeded', 'result', ARGV[i+3], 'finished_at', nows, 'lease_until', '0')
        hist[#hist + 1] = nows
        hist[#hist + 1] = id
        out[#out + 1] = 'succeeded'
      end
    else
      failed = failed + 1
      local r = redis.call('HMGET', key, 'max_retries', 'retries')
      local retries = (tonumber(r[2]) or 0) + 1
      if retries > tonumber(r[1]) or ARGV[i+2] == 'final' then
        redis.call('HSET', key, 'status', 'dead', 'finished_at', nows, 'retries', format('%d', retries),
          'last_error', ARGV[i+3], 'lease_until', '0')
        dead[#dead + 1] = nows
        dead[#dead + 1] = id
        out[#out + 1] = 'dead'
      else
        local runs = format('%d', now + tonumber(ARGV[i+4]))
        redis.call('HSET', key, 'status', 'failed', 'run_at', runs, 'retries', format('%d', retries),
          'last_error', ARGV[i+3], 'lease_until', '0', 'source', 'retry')
        redis.call('ZADD', KEYS[2], runs, id)
        out[#out + 1] = 'failed'
      end
    end
  end
end
bulk('ZREM', KEYS[1], done)
bulk('ZADD', KEYS[4], hist)
bulk('ZADD', KEYS[5], dead)
trim(KEYS[4], KEYS[5], KEYS[7], cap)
if #dead > 0 then trim(KEYS[5], KEYS[4], KEYS[7], cap) end
if ok > 0 then redis.call('HINCRBY', KEYS[6], 'succeeded', ok) end
if failed > 0 then redis.call('HINCRBY', KEYS[6], 'failed', failed) end
return out
`)

// releaseScript hands running jobs back to the head of the pending list,
// not counted as an attempt (shutdown).
//
//	KEYS[1] pending  KEYS[2] running  KEYS[3] job key prefix
//	ARGV[1] now  then pairs: id, token
//
// Returns one integer per pair: 1 handed back, 0 lease lost.
var releaseScript = newScript(prelude + `
local out = {}
local n = (#ARGV - 1) / 2
for k = n, 1, -1 do
  local i = 2 * k
  local id = ARGV[i]
  local key = KEYS[3] .. id
  local f = redis.call('HMGET', key, 'status', 'token')
  if f[1] == 'running' and f[2] == ARGV[i+1] then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', key, 'lease_until')
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('HSET', key, 'status', 'pending')
    redis.call('LPUSH', KEYS[1], id)
    out[k] = 1
  else
    out[k] = 0
  end
end
return out
`)

// cancelScript cancels a job that has not finished.
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] history  KEYS[6] dead  KEYS[7] job key prefix
//	ARGV[1] now  ARGV[2] id  ARGV[3] history cap
//
// Returns {"ok", from, fields}; {"conflict", status}; {"not_found"}.
var cancelScript = newScript(prelude + unqueue + `
local now = now_ms(ARGV[1])
local id = ARGV[2]
local key = KEYS[7] .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'not_found'} end
if not unqueue(st, id, KEYS[1], KEYS[2], KEYS[3], KEYS[4]) then return {'conflict', st} end
redis.call('HDEL', key, 'lease_until')
redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now)
local fields = job(key)
to_history(KEYS[5], KEYS[6], KEYS[7], tonumber(ARGV[3]), id, now, false)
return {'ok', st, fields}
`)

// requeueHash is the one move of a dead or cancelled job's hash back to
// pending, which requeueScript and requeueDeadScript share: retries reset,
// finished_at dropped, due now. It takes key (the job's hash) and nows (now,
// formatted "%d").
const requeueHash = `
redis.call('HDEL', key, 'finished_at')
redis.call('HSET', key, 'status', 'pending', 'retries', '0', 'run_at', nows, 'ready_at', nows)
`

// requeueScript puts a dead or cancelled job back at the tail of pending,
// with its retries reset.
//
//	KEYS[1] pending  KEYS[2] history  KEYS[3] dead  KEYS[4] job key prefix
//	ARGV[1] now  ARGV[2] id
//
// Returns {"ok", from, fields}; {"conflict", status}; {"not_found"}.
var requeueScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local id = ARGV[2]
local key = KEYS[4] .. id
local st = redis.call('HGET', key, 'status')
if not st then return {'not_found'} end
if st ~= 'dead' and st ~= 'cancelled' then return {'conflict', st} end
` + oomGuard + `
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local nows = string.format('%d', now)
` + requeueHash + `
redis.call('RPUSH', KEYS[1], id)
return {'ok', st, job(key)}
`)

// requeueDeadScript moves a queue's dead jobs that died at or before a cut
// back to pending, oldest death first, each as requeueScript moves it: at
// the tail of pending, retries reset, finished_at dropped, out of dead and
// history (where a dead job of an earlier version also is). It looks at no
// more than N entries of the dead set, so that a long dead set never blocks
// Redis for long: the broker calls it again for more. It moves a job only
// when its hash says dead, so a job requeued meanwhile (requeueScript, or
// another call of this one) is never pushed twice. An entry whose hash is
// gone or is not dead is stale (a dead job leaves the set in the script
// that moves it, whatever the version): dropped from the set, as trim drops
// the entries it reaches, and never moved.
//
//	KEYS[1] pending  KEYS[2] history  KEYS[3] dead  KEYS[4] stats
//	KEYS[5] job key prefix
//	ARGV[1] now  ARGV[2] cut (ms): the latest death to take; "" (or a cut
//	        after now - 1) means now - 1, so that a job moved here that dies
//	        again dies after the cut  ARGV[3] N: the most entries to look at
//
// Returns {cut, remaining, known, id…}: the cut used; how many entries at
// or before it the dead set holds after the call; known, 0 when the call
// found no dead entry and the queue has neither finished jobs nor totals
// (the broker then asks the queue index whether it exists), else 1; then
// the ids moved, in order of death, which is their order in pending.
var requeueDeadScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local cut = tonumber(ARGV[2])
if not cut or cut > now - 1 then cut = now - 1 end
local cuts = string.format('%d', cut)
local entries = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cuts, 'LIMIT', '0', ARGV[3])
local out = {cut, 0, 1}
if #entries > 0 then
` + oomGuard + `
  local nows = string.format('%d', now)
  local moved = {}
  for _, id in ipairs(entries) do
    local key = KEYS[5] .. id
    if redis.call('HGET', key, 'status') == 'dead' then
` + requeueHash + `
      moved[#moved + 1] = id
      out[#out + 1] = id
    end
  end
  bulk('ZREM', KEYS[3], entries)
  bulk('ZREM', KEYS[2], moved)
  bulk('RPUSH', KEYS[1], moved)
elseif redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4]) == 0 then
  out[3] = 0
end
out[2] = redis.call('ZCOUNT', KEYS[3], '-inf', cuts)
return out
`)

// tickScript promotes due scheduled and failed jobs to pending and recovers
// running jobs whose lease has expired (to pending, or dead when the lost
// run was their last retry; a lost lease counts as a failed attempt).
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] history  KEYS[6] dead  KEYS[7] stats  KEYS[8] job key prefix
//	ARGV[1] now  ARGV[2] history cap  ARGV[3] batch: most jobs moved per kind
//	ARGV[4] not after (ms, 0: none)
//
// Returns {scheduled→pending, failed→pending, running→pending, running→dead,
// now, {id, type, attempts, …}}, the last a flat list naming each job made
// dead (so at most a batch of them); {0, 0, 0, 0, now, "late"} without
// moving anything when now is past not after (the broker no longer waits
// for the counts). The list was added after the counts, which kept their
// places.
var tickScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local not_after = tonumber(ARGV[4])
if not_after > 0 and now > not_after then return {0, 0, 0, 0, now, 'late'} end
` + oomGuard + `
local batch = tonumber(ARGV[3])
local counts = {}
for k, set in ipairs({KEYS[2], KEYS[3]}) do
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
  for i = 1, #due, 2 do
    redis.call('HSET', KEYS[8] .. due[i], 'status', 'pending', 'ready_at', due[i+1])
    redis.call('RPUSH', KEYS[1], due[i])
    redis.call('ZREM', set, due[i])
  end
  counts[k] = #due / 2
end
local recovered, dead, died = 0, 0, {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local key = KEYS[8] .. id
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', key, 'lease_until')
  local retries = redis.call('HINCRBY', key, 'retries', 1)
  redis.call('HSET', key, 'last_error', '` + queue.LeaseExpired + `')
  -- read before the trim below, which may delete the hash
  local f = redis.call('HMGET', key, 'max_retries', 'type', 'attempts')
  if retries > tonumber(f[1]) then
    redis.call('HSET', key, 'status', 'dead', 'finished_at', now)
    to_history(KEYS[5], KEYS[6], KEYS[8], tonumber(ARGV[2]), id, now, true, true)
    died[#died + 1] = id
    died[#died + 1] = f[2] or ''
    died[#died + 1] = tonumber(f[3]) or 0
    dead = dead + 1
  else
    redis.call('HSET', key, 'status', 'pending', 'ready_at', now)
    redis.call('RPUSH', KEYS[1], id)
    recovered = recovered + 1
  end
end
if #expired > 0 then redis.call('HINCRBY', KEYS[7], 'failed', #expired) end
if dead > 0 then trim(KEYS[6], KEYS[5], KEYS[8], tonumber(ARGV[2])) end
return {counts[1], counts[2], recovered, dead, now, died}
`)

// removeScript deletes a queue that holds no job to run, with its finished
// jobs and its totals.
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] history  KEYS[6] dead  KEYS[7] stats  KEYS[8] job key prefix
//	KEYS[9] paused flag (deleted with the rest: a queue made again runs)
//	KEYS[10] queue index (optional: only on a single Redis server; on a
//	        cluster the broker updates the index itself, see RemoveQueue)
//	ARGV[1] queue name  ARGV[2] 1 when the index lists the queue (read by
//	        the broker on a cluster; ignored given KEYS[10])
//
// Returns {"ok", jobs removed}; {"busy", pending, scheduled, retry,
// running} without changing the queue (given KEYS[10], it makes sure the
// busy queue is listed); {"not_found"} when the queue is neither listed nor
// has a finished job or a total.
var removeScript = newScript(`
local pending, scheduled = redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2])
local retry, running = redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])
if pending + scheduled + retry + running > 0 then
  if KEYS[10] then redis.call('SADD', KEYS[10], ARGV[1]) end
  return {'busy', pending, scheduled, retry, running}
end
local listed = ARGV[2] == '1'
if KEYS[10] then listed = redis.call('SISMEMBER', KEYS[10], ARGV[1]) == 1 end
if not listed and redis.call('EXISTS', KEYS[5], KEYS[6], KEYS[7]) == 0 then return {'not_found'} end
-- the finished jobs: history's and dead's, each once (a dead job of an
-- earlier version is in both)
local ids = redis.call('ZRANGE', KEYS[5], 0, -1)
local seen = {}
for _, id in ipairs(ids) do seen[id] = true end
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  if not seen[id] then ids[#ids + 1] = id end
end
for i = 1, #ids, 500 do
  local keys = {}
  for j = i, math.min(i + 499, #ids) do keys[#keys + 1] = KEYS[8] .. ids[j] end
  redis.call('DEL', unpack(keys))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9])
-- the idempotency keys, by their index (see enqueueScript)
local idem = string.sub(KEYS[8], 1, -3) .. 'idem'
local recs = redis.call('ZRANGE', idem, 0, -1)
for i = 1, #recs, 500 do
  local keys = {}
  for j = i, math.min(i + 499, #recs) do keys[#keys + 1] = idem .. ':' .. recs[j] end
  redis.call('DEL', unpack(keys))
end
redis.call('DEL', idem)
if KEYS[10] then redis.call('SREM', KEYS[10], ARGV[1]) end
return {'ok', #ids}
`)

// pauseScript pauses (ARGV[1] "1") or resumes ("0") a queue that exists
// (any of its keys does: the index lives in another slot on a cluster).
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] history  KEYS[6] dead  KEYS[7] stats  KEYS[8] paused flag
//	ARGV[1] "1" pause, "0" resume
//
// Returns {"ok", 1 changed or 0, pending jobs}; {"not_found"} writing
// nothing.
var pauseScript = newScript(`
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]) == 0 then
  return {'not_found'}
end
if ARGV[1] == '1' then
  if redis.call('SET', KEYS[8], '1', 'NX') then return {'ok', 1, 0} end
  return {'ok', 0, 0}
end
return {'ok', redis.call('DEL', KEYS[8]), redis.call('LLEN', KEYS[1])}
`)

// statsScript reads one queue's gauges and totals (read only).
//
//	KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] running
//	KEYS[5] dead  KEYS[6] stats  KEYS[7] job key prefix  KEYS[8] paused flag
//	ARGV[1] now
//
// Returns {now, pending, scheduled, retry, running, dead, oldest ready_at or
// -1, enqueued, started, succeeded, failed, paused (1 or 0)}.
//
// The oldest pending job's ready_at is its started_at when it has none, or
// 0: a job that daemons of earlier versions claimed before it was due and
// then handed back (their claim wrote no ready_at; before 58bed76 a
// scheduled job was stored with ready_at 0) became ready when it was
// claimed, its last start. Read as missing, its age would be 0 and hide the
// backlog; read as 0, 56 years, and admission control would refuse the
// queue outright. enqueued_at is the last resort.
var statsScript = newScript(prelude + `
local now = now_ms(ARGV[1])
local oldest = -1
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  local f = redis.call('HMGET', KEYS[7] .. head, 'ready_at', 'started_at', 'enqueued_at')
  for i = 1, 3 do
    local t = tonumber(f[i])
    if t and t > 0 then
      oldest = t
      break
    end
  end
end
local t = redis.call('HMGET', KEYS[6], 'enqueued', 'started', 'succeeded', 'failed')
return {now, redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), oldest,
  tonumber(t[1]) or 0, tonumber(t[2]) or 0, tonumber(t[3]) or 0, tonumber(t[4]) or 0,
  redis.call('EXISTS', KEYS[8])}
`)

// finishedScript looks for the latest finished jobs of one queue in one
// status (succeeded or cancelled in the history, dead in the dead set),
// walking the set newest first a page at a time, so that it reads the
// entries up to the ones it is after and those it skips, never the whole
// history. One call looks at a bounded number of entries, so that a long
// walk (a status no recent job has) never blocks Redis for long: it then
// answers where it stopped, and the broker calls it again from there (read
// only).
//
//	KEYS[1] history (dead: the dead set)  KEYS[2] job key prefix
//	ARGV[1] status  ARGV[2] need: jobs still to find (0: only the ties below)
//	ARGV[3] tie: finished_at of the last job of the limit, once found ("")
//	ARGV[4] from: finished_at to start at ("": the latest)
//	ARGV[5] last: the id of the last entry looked at, at finished_at = from
//	        ("" when none)
//	ARGV[6] budget: the most entries to look at in this call
//
// Returns {more, from, last, tie, fields…}: more is 1 when the budget ran
// out first (call again with the need left, tie, from and last), else 0;
// then the jobs found, latest first. Once need jobs are found, the walk goes
// on only through those finished in the same millisecond as the last of
// them (ties, which the broker orders by id across queues, as when it read
// and sorted the whole history).
//
// A walk of several calls resumes after (from, last): entries of the same
// finished_at come in reverse order of id, so those of from whose id is at
// or above last were looked at. A job that leaves that millisecond
// meanwhile (finished again, requeued) shifts nothing; one that joins it
// with a higher id (finished in that same millisecond after the walk went
// by) is not listed, as if it had come after the listing.
var finishedScript = newScript(jobFields + `
local want, need, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[6])
local tie, from, last = ARGV[3], ARGV[4], ARGV[5]
local out = {0, '', '', ''}
-- seen: the entries of from looked at, counted afresh from last (which a
-- change between two calls cannot shift, as it would an offset). Within
-- one call nothing else runs, so the walk pages by offset.
-- Ids compare byte by byte, as Redis orders equal scores (Lua's < follows
-- the server's locale).
local function at_or_above(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x > y end
  end
  return #a >= #b
end
local seen = 0
if from ~= '' and last ~= '' then
  for _, m in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], from, from)) do
    if not at_or_above(m, last) then break end
    seen = seen + 1
  end
end
-- walk looks at the entries after (from, seen) until it has found what it
-- needs (1: the budget ran out first). Each page starts at the last entry
-- looked at, so it costs what it reads, however deep the walk.
local function walk()
  local looked, page = 0, need + 1
  while true do
    local n = math.min(page, budget - looked)
    if n <= 0 then return 1 end
    local entries
    if from == '' then
      entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, n)
    else
      entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], from, '-inf', 'WITHSCORES', 'LIMIT', seen, n)
    end
    for i = 1, #entries, 2 do
      local at = entries[i+1]
      if tie ~= '' and tonumber(at) ~= tonumber(tie) then return 0 end
      looked, last = looked + 1, entries[i]
      if from ~= '' and tonumber(at) == tonumber(from) then seen = seen + 1 else from, seen = at, 1 end
      local key = KEYS[2] .. entries[i]
      if redis.call('HGET', key, 'status') == want then
        out[#out + 1] = job(key)
        if need > 0 then
          need = need - 1
          if need == 0 then tie = at end
        end
      end
    end
    if #entries < 2 * n then return 0 end
    page = math.min(2 * page, 1024)
  end
end
out[1] = walk()
out[2], out[3], out[4] = from, last, tie
return out
`)

// locateScript finds a job by id among every queue of the index, in one
// call: on a single Redis server only, since it reads the index and the
// keys of any queue (on a cluster they live in other slots; the broker
// reads each queue there). It reads the index itself, so it is never
// stale, and looks for the job's hash with EXISTS, far cheaper than reading
// it, in each queue until one has it (ids are random, 128 bits: no two
// queues hold the same one). Read only.
//
//	KEYS[1] queue index
//	ARGV[1] key prefix  ARGV[2] id
//
// Returns the job's fields (FIELDS); nil when no queue of the index has it.
var locateScript = newScript(jobFields + `
local prefix, id = ARGV[1] .. 'q:{', '}:j:' .. ARGV[2]
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = prefix .. q .. id
  if redis.call('EXISTS', key) == 1 then return job(key) end
end
return false
`)
