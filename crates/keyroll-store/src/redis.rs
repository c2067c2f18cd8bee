//! Redis backend: `<prefix>:<session_key>` → the signed session data, with an
//! absolute expiry (`PXAT`).
//!
//! Redis `SCAN` is unordered, and the bulk tools walk sessions in key order
//! with a cursor, so two sorted sets sit beside the sessions:
//!
//! - `<prefix>:__index`: every session key, score 0: `ZRANGEBYLEX` pages
//!   through it in key order, after a cursor, within a key range;
//! - `<prefix>:__expiry`: every session key scored by its expiry in
//!   microseconds since the epoch: the exact expiry for `load`/`scan`, and
//!   `purge_expired` is a `ZRANGEBYSCORE -inf now`.
//!
//! Every write is one Lua script (atomic): the data key and both sets never
//! disagree. A session Redis expired by its TTL leaves index entries behind;
//! `scan` drops them as it meets them, `purge_expired` drops them all.
//! Session keys are `[a-z0-9]`, so they never collide with `__index`.
//!
//! The scripts touch keys built from the prefix inside the script, so this
//! backend wants a single Redis server (or a proxy), not Redis Cluster.
//!
//! Nothing waits without bound (URL parameters, seconds; see
//! [`crate::open_store`]): `connect_timeout` (default 5) bounds one
//! connection attempt, `query_timeout` (default 10) each command's answer.
//! A lost connection is re-opened by the next command, one attempt at a
//! time (no retry loop behind a request: the request fails, the next one
//! tries again). On Linux, `TCP_USER_TIMEOUT` (the query timeout) closes a
//! connection whose packets go unacknowledged, so a silently dead network
//! path is noticed and replaced.
//!
//! `rediss://` is TLS by rustls (`ring` provider), the certificate and host
//! name checked against the system's roots unless redis-py's URL parameters
//! say otherwise (`ssl_ca_certs`, `ssl_cert_reqs`, `ssl_check_hostname`; see
//! [`crate::open_store`]).

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};
use time::OffsetDateTime;

use crate::store::{
    is_valid_session_key, new_session_key, KeyRange, PurgeFrom, Purged, RowCounts, SessionRecord,
    Store, StoreError, Swap,
};
use crate::timeouts::Timeouts;
use crate::tls::RedisTls;

const BACKEND: &str = "redis";
/// Fresh keys tried by `create` before giving up.
const CREATE_ATTEMPTS: usize = 10;
/// Swaps per script call (each call is atomic; keeps the server responsive).
const SWAP_CHUNK: usize = 2000;
/// Expired sessions deleted per script call in `purge_expired`.
const PURGE_CHUNK: usize = 1000;
/// Index entries a scan script examines beyond what it was asked for.
const SCAN_SLACK: usize = 1000;

/// Writes data and both index entries. KEYS: data, index, expiry.
/// ARGV: data, expiry in ms (PXAT), session key, expiry in µs, and the
/// condition: "nx" (only a new key), "xx" (only an existing key) or "any".
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ok
if ARGV[5] == 'nx' then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2])
elseif ARGV[5] == 'xx' then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PXAT', ARGV[2])
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
if not ok then return 0 end
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
",
    )
});

/// Data and expiry (µs) of one session, or nil. KEYS: data, expiry. ARGV: session key.
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if s then return {v, s} end
local p = redis.call('PTTL', KEYS[1])
if p > 0 then
  local t = redis.call('TIME')
  return {v, tonumber(t[1]) * 1000000 + tonumber(t[2]) + p * 1000}
end
return false
",
    )
});

/// Compare-and-swap of many keys, keeping their TTLs. KEYS: data keys.
/// ARGV: expected₁, new₁, expected₂, new₂, … Returns 1/0 per key.
static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v and v == ARGV[2 * i - 1] then
    redis.call('SET', k, ARGV[2 * i], 'KEEPTTL')
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
",
    )
});

/// Live sessions by the expiry index: entries expiring after `ARGV[1]` (µs).
static COUNT: LazyLock<Script> =
    LazyLock::new(|| Script::new("return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')"));

/// Deletes up to ARGV[3] sessions that expire at or before ARGV[2] (µs).
/// KEYS: index, expiry. ARGV: prefix, now (µs), limit. Returns how many.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(members) do
  redis.call('DEL', ARGV[1] .. ':' .. m)
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', KEYS[2], m)
end
return #members
",
    )
});

/// One page of a key-ordered scan. KEYS: index, expiry.
/// ARGV: prefix, ZRANGEBYLEX min, max, rows wanted, index entries it may examine.
/// Returns {exhausted (0/1), last key examined, key₁, data₁, expiry₁, …};
/// index entries whose session is gone are removed on the way.
static SCAN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local want = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local min = ARGV[2]
local out = {0, ''}
local found = 0
while found < want and budget > 0 do
  local n = want - found
  if n > budget then n = budget end
  local members = redis.call('ZRANGEBYLEX', KEYS[1], min, ARGV[3], 'LIMIT', 0, n)
  for _, m in ipairs(members) do
    out[2] = m
    local k = ARGV[1] .. ':' .. m
    local v = redis.call('GET', k)
    if v then
      local s = redis.call('ZSCORE', KEYS[2], m)
      if not s then
        local p = redis.call('PTTL', k)
        if p > 0 then
          local t = redis.call('TIME')
          s = tonumber(t[1]) * 1000000 + tonumber(t[2]) + p * 1000
        end
      end
      if s then
        out[#out + 1] = m
        out[#out + 1] = v
        out[#out + 1] = s
        found = found + 1
      end
    else
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', KEYS[2], m)
    end
  end
  budget = budget - #members
  if #members < n then
    out[1] = 1
    return out
  end
  min = '(' .. out[2]
end
return out
",
    )
});

/// A session store in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    index: String,
    expiry: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host:port[/db]`, or `rediss://`),
    /// sessions under `<prefix>:`. Checks the server answers.
    ///
    /// The URL may set `connect_timeout` and `query_timeout` in seconds
    /// (defaults 5 and 10), and for `rediss://` (TLS by rustls, the
    /// certificate checked against the system's roots by default) redis-py's
    /// `ssl_ca_certs`, `ssl_cert_reqs`, `ssl_check_hostname`, `ssl_certfile`
    /// and `ssl_keyfile` (see [`crate::open_store`]); keyroll takes them out
    /// before the driver parses the rest.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a URL that does not parse, a bad timeout
    /// or TLS parameter, a certificate file that cannot be read, a server
    /// certificate that fails the checks (`certificate verify failed: …`);
    /// [`StoreError::Unavailable`] for a server that cannot be reached
    /// (refused at once; no answer within `connect_timeout`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let (url, timeouts) = Timeouts::take_from_url(BACKEND, url)?;
        let (url, tls) = RedisTls::take_from_url(BACKEND, &url)?;
        // The URL may hold a password: never echo it.
        let client = tls.client(BACKEND, &url)?;
        let tcp = redis::io::tcp::TcpSettings::default();
        #[cfg(target_os = "linux")]
        let tcp = tcp.set_user_timeout(timeouts.query);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeouts.connect)
            .set_response_timeout(timeouts.query)
            .set_tcp_settings(tcp)
            // One attempt per (re)connection: a request waits at most one
            // connect_timeout for it; if it fails, the next command tries again.
            .set_number_of_retries(0);
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| connect_err(e, timeouts.connect))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| connect_err(e, timeouts.connect))?;
        Ok(Self::with_connection(conn, prefix))
    }

    /// A store over the application's own connection manager, sessions under
    /// `<prefix>:`. Timeouts are the manager's own (set its connection and
    /// response timeouts: keyroll adds none). Nothing is checked here.
    pub fn with_connection(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            index: format!("{prefix}:__index"),
            expiry: format!("{prefix}:__expiry"),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn data_key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    async fn write(
        &self,
        key: &str,
        data: &str,
        expires: OffsetDateTime,
        condition: &'static str,
    ) -> Result<bool, StoreError> {
        let us = micros(expires);
        // PXAT wants a positive whole millisecond; round up so Redis never
        // drops a session before its expiry.
        let ms = (us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0)).max(1);
        let mut inv = SAVE.prepare_invoke();
        inv.key(self.data_key(key))
            .key(&self.index)
            .key(&self.expiry)
            .arg(data)
            .arg(ms)
            .arg(key)
            .arg(us)
            .arg(condition);
        let done: i64 = self.invoke(&inv).await?;
        Ok(done == 1)
    }

    /// Runs a script. A command that failed on a connection already known
    /// to be lost (the error of the last reconnect attempt, or a dropped
    /// connection) is tried once more: that retry waits for the reconnect
    /// the failure started, so the first request after the server is back
    /// succeeds. Timeouts are not retried (the bound stays one
    /// `connect_timeout` plus one `query_timeout`). Every script is safe to
    /// run twice: writes are plain sets, `NX` or compare-and-swap.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match inv.invoke_async(&mut self.conn.clone()).await {
            Err(e) if stale_connection(&e) => inv
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(redis_err),
            r => r.map_err(redis_err),
        }
    }

    async fn swap_chunk(&self, swaps: &[&Swap]) -> Result<Vec<bool>, StoreError> {
        let mut inv = SWAP.prepare_invoke();
        for s in swaps {
            inv.key(self.data_key(&s.key)).arg(&s.expected).arg(&s.new);
        }
        let done: Vec<i64> = self.invoke(&inv).await?;
        if done.len() != swaps.len() {
            return Err(StoreError::backend(
                BACKEND,
                "unexpected reply to compare-and-swap",
            ));
        }
        Ok(done.into_iter().map(|d| d == 1).collect())
    }
}

/// A driver error. Redis replies name commands and scripts, never values.
fn redis_err(e: RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::unavailable(
            BACKEND,
            format_args!("timed out: no answer within query_timeout or connect_timeout ({e})"),
        );
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return StoreError::unavailable(BACKEND, e);
    }
    StoreError::backend(BACKEND, e)
}

/// True for a failure of the connection rather than of the command, that
/// came at once (not a timeout): worth one more try on a fresh connection.
fn stale_connection(e: &RedisError) -> bool {
    !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
}

/// An error of the first connection.
fn connect_err(e: RedisError, after: Duration) -> StoreError {
    if e.is_timeout() {
        return StoreError::unavailable(
            BACKEND,
            format_args!(
                "timed out after {:.1} s: connect_timeout (no answer from the server)",
                after.as_secs_f64()
            ),
        );
    }
    if let Some(text) = crate::tls::describe(&e) {
        return StoreError::backend(BACKEND, text);
    }
    StoreError::unavailable(BACKEND, format_args!("cannot connect: {e}"))
}

fn bad_reply() -> StoreError {
    StoreError::backend(BACKEND, "unexpected reply from a script")
}

/// Microseconds since the epoch.
fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// An expiry (µs since the epoch) as Redis replied it: an integer, or a score string.
fn expiry_of(v: &Value) -> Result<OffsetDateTime, StoreError> {
    let us: i128 = match v {
        Value::Int(i) => i128::from(*i),
        Value::BulkString(b) => {
            let s = std::str::from_utf8(b).map_err(|_| bad_reply())?;
            match s.parse::<i64>() {
                Ok(i) => i128::from(i),
                // A score Redis wrote in exponent form: exact below 2^53 µs (year 2255).
                Err(_) => s.parse::<f64>().map_err(|_| bad_reply())?.round() as i128,
            }
        }
        Value::Double(d) => d.round() as i128,
        _ => return Err(bad_reply()),
    };
    OffsetDateTime::from_unix_timestamp_nanos(us * 1000).map_err(|_| bad_reply())
}

fn string_of(v: Value) -> Result<String, StoreError> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).map_err(|_| bad_reply()),
        Value::SimpleString(s) => Ok(s),
        _ => Err(bad_reply()),
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Redis has no schema: nothing to do.
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(None);
        }
        let mut inv = LOAD.prepare_invoke();
        inv.key(self.data_key(key)).key(&self.expiry).arg(key);
        let reply: Value = self.invoke(&inv).await?;
        let Value::Array(parts) = reply else {
            return Ok(None);
        };
        let mut parts = parts.into_iter();
        let (Some(data), Some(expiry)) = (parts.next(), parts.next()) else {
            return Err(bad_reply());
        };
        let expires = expiry_of(&expiry)?;
        if expires <= now {
            return Ok(None);
        }
        Ok(Some(SessionRecord {
            key: key.to_owned(),
            data: string_of(data)?,
            expires,
        }))
    }

    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let key = new_session_key();
            if self.write(&key, data, expires, "nx").await? {
                return Ok(key);
            }
        }
        Err(StoreError::KeyExhausted)
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        self.write(&record.key, &record.data, record.expires, "any")
            .await?;
        Ok(())
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        self.write(&record.key, &record.data, record.expires, "xx")
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(false); // never stored: nothing to delete (and never touch `__index`)
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.data_key(key))
            .zrem(&self.index, key)
            .zrem(&self.expiry, key);
        let (deleted, _, _): (i64, i64, i64) = match pipe.query_async(&mut self.conn.clone()).await
        {
            Err(e) if stale_connection(&e) => pipe.query_async(&mut self.conn.clone()).await,
            r => r,
        }
        .map_err(redis_err)?;
        Ok(deleted == 1)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(false);
        }
        let swap = Swap {
            key: key.to_owned(),
            expected: expected.to_owned(),
            new: new.to_owned(),
        };
        Ok(self
            .swap_chunk(&[&swap])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        let mut out = vec![false; swaps.len()];
        let valid: Vec<(usize, &Swap)> = swaps
            .iter()
            .enumerate()
            .filter(|(_, s)| is_valid_session_key(&s.key))
            .collect();
        for chunk in valid.chunks(SWAP_CHUNK) {
            let batch: Vec<&Swap> = chunk.iter().map(|(_, s)| *s).collect();
            let done = self.swap_chunk(&batch).await?;
            for ((i, _), ok) in chunk.iter().zip(done) {
                if let Some(slot) = out.get_mut(*i) {
                    *slot = ok;
                }
            }
        }
        Ok(out)
    }

    async fn scan(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut min = match (range.start.as_deref(), after) {
            (None, None) => "-".to_owned(),
            (Some(s), None) => format!("[{s}"),
            (None, Some(a)) => format!("({a}"),
            (Some(s), Some(a)) if a >= s => format!("({a}"),
            (Some(s), Some(_)) => format!("[{s}"),
        };
        let max = range
            .end
            .as_deref()
            .map_or_else(|| "+".to_owned(), |e| format!("({e}"));
        let mut out = Vec::with_capacity(limit.min(10_000));
        while out.len() < limit {
            let want = limit - out.len();
            let mut inv = SCAN.prepare_invoke();
            inv.key(&self.index)
                .key(&self.expiry)
                .arg(&self.prefix)
                .arg(&min)
                .arg(&max)
                .arg(want)
                .arg(want.saturating_add(SCAN_SLACK));
            let reply: Vec<Value> = self.invoke(&inv).await?;
            let mut parts = reply.into_iter();
            let exhausted = matches!(parts.next(), Some(Value::Int(1)));
            let last = string_of(parts.next().ok_or_else(bad_reply)?)?;
            while let Some(key) = parts.next() {
                let (Some(data), Some(expiry)) = (parts.next(), parts.next()) else {
                    return Err(bad_reply());
                };
                out.push(SessionRecord {
                    key: string_of(key)?,
                    data: string_of(data)?,
                    expires: expiry_of(&expiry)?,
                });
            }
            if exhausted || last.is_empty() {
                break;
            }
            min = format!("({last}");
        }
        Ok(out)
    }

    /// The whole table counted in the expiry index (a range is walked). No
    /// row is expired: Redis drops an expired session itself (its index
    /// entries stay until [`Store::purge_expired`]).
    async fn count_rows(
        &self,
        range: &KeyRange,
        now: OffsetDateTime,
    ) -> Result<RowCounts, StoreError> {
        if *range != KeyRange::all() {
            return crate::store::count_by_scan(self, range, now).await;
        }
        let mut inv = COUNT.prepare_invoke();
        inv.key(&self.expiry).arg(micros(now));
        let live: u64 = self.invoke(&inv).await?;
        // Redis dropped the expired sessions themselves; what is left of
        // them are index entries, not rows.
        Ok(RowCounts { live, expired: 0 })
    }

    /// Index entries of expired sessions (Redis drops the sessions
    /// themselves), in one script run of at most `limit` (and at most 1000).
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        _from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let mut inv = PURGE.prepare_invoke();
        inv.key(&self.index)
            .key(&self.expiry)
            .arg(&self.prefix)
            .arg(micros(now))
            .arg(limit.clamp(1, PURGE_CHUNK));
        let deleted: u64 = self.invoke(&inv).await?;
        let found = usize::try_from(deleted).unwrap_or(usize::MAX);
        Ok(Purged::batch(
            deleted,
            found,
            limit.clamp(1, PURGE_CHUNK),
            PurgeFrom::Start,
        ))
    }
}
