//! The one home of Lua in Tavern. Features never write Lua: a multi-key step that must
//! decide something on the server (apply only if a document is unchanged, only if a set
//! still has room, only if a member is still there) is a [`Writes`](crate::Writes) batch applied under
//! [`Condition`]s by [`Redis::apply_when`](crate::Redis::apply_when), or a
//! compare-and-set by [`Redis::apply_if`](crate::Redis::apply_if) /
//! [`Redis::apply_or_read`](crate::Redis::apply_or_read).
//!
//! Both scripts take the batch the same way, after their own arguments: for each
//! command its argument count, then its arguments (the command name first). They run
//! atomically (Redis runs a script like `MULTI`/`EXEC`), so a reader never sees half
//! of a relation, and a refused condition writes nothing.
//!
//! The keys a condition reads are declared in `KEYS`; the keys of the batch travel in
//! `ARGV`. On a single server that is all one; on a Redis Cluster every key of one
//! step must share a slot, which the seeds' key names do not allow across relations
//! (see ARCHITECTURE.md, "Seed key names win over cluster slots").

use std::sync::LazyLock;

use redis::ToRedisArgs;

/// Compare-and-set on `KEYS[1]`, then every encoded command; all or nothing.
/// `ARGV[1]` is `1` when a value is expected (`ARGV[2]`), `0` for "absent".
/// Returns 1 when applied, otherwise `{0, current value or nil}` so the caller can
/// retry without another read.
pub(crate) static COMPARE_AND_SET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return {0, current} end
elseif current then
  return {0, current}
end
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
",
    )
});

/// Every condition, then every encoded command; all or nothing. `ARGV[1]` is the number
/// of conditions; condition `c` reads `KEYS[c]` and takes a kind and its arguments
/// from `ARGV`. Returns `{1, {reply of each command}}` when applied, `{0, c}` when
/// condition `c` (1-based) did not hold.
pub(crate) static CONDITIONAL: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local a = 2
for c = 1, tonumber(ARGV[1]) do
  local kind, key, ok = ARGV[a], KEYS[c], false
  if kind == 'eq' then
    local current = redis.call('GET', key)
    if ARGV[a + 1] == '1' then ok = current == ARGV[a + 2] else ok = not current end
    a = a + 3
  elseif kind == 'hfield' then
    local current = redis.call('HGET', key, ARGV[a + 1])
    if ARGV[a + 2] == '1' then ok = current == ARGV[a + 3] else ok = not current end
    a = a + 4
  elseif kind == 'exists' then
    ok = redis.call('EXISTS', key) == 1
    a = a + 1
  elseif kind == 'absent' then
    ok = redis.call('EXISTS', key) == 0
    a = a + 1
  elseif kind == 'member' then
    ok = redis.call('SISMEMBER', key, ARGV[a + 1]) == 1
    a = a + 2
  elseif kind == 'notmember' then
    ok = redis.call('SISMEMBER', key, ARGV[a + 1]) == 0
    a = a + 2
  elseif kind == 'fewer' then
    ok = redis.call('SCARD', key) < tonumber(ARGV[a + 1])
    a = a + 2
  elseif kind == 'zmember' then
    ok = redis.call('ZSCORE', key, ARGV[a + 1]) ~= false
    a = a + 2
  else
    return redis.error_reply('unknown condition ' .. tostring(kind))
  end
  if not ok then return {0, c} end
end
local replies = {}
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  replies[#replies + 1] = redis.call(unpack(ARGV, a + 1, a + n))
  a = a + n + 1
end
return {1, replies}
",
    )
});

/// What must hold for [`Redis::apply_when`](crate::Redis::apply_when) to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The string at `key` holds `value` (`None`: the key is absent).
    Equals { key: String, value: Option<Vec<u8>> },
    /// Field `field` of the hash at `key` holds `value` (`None`: no such field).
    HashField {
        key: String,
        field: String,
        value: Option<Vec<u8>>,
    },
    /// `key` exists.
    Exists(String),
    /// `key` does not exist.
    Absent(String),
    /// `member` is in the set at `key`.
    Member { key: String, member: Vec<u8> },
    /// `member` is not in the set at `key`.
    NotMember { key: String, member: Vec<u8> },
    /// The set at `key` has fewer than `limit` members (room for one more).
    FewerThan { key: String, limit: u64 },
    /// `member` is in the sorted set at `key`.
    SortedMember { key: String, member: Vec<u8> },
}

fn bytes<T: ToRedisArgs>(value: T) -> Vec<u8> {
    value.to_redis_args().concat()
}

impl Condition {
    pub fn equals<V: ToRedisArgs>(key: impl Into<String>, value: Option<V>) -> Condition {
        Condition::Equals {
            key: key.into(),
            value: value.map(bytes),
        }
    }
    pub fn hash_field<V: ToRedisArgs>(
        key: impl Into<String>,
        field: impl Into<String>,
        value: Option<V>,
    ) -> Condition {
        Condition::HashField {
            key: key.into(),
            field: field.into(),
            value: value.map(bytes),
        }
    }
    pub fn exists(key: impl Into<String>) -> Condition {
        Condition::Exists(key.into())
    }
    pub fn absent(key: impl Into<String>) -> Condition {
        Condition::Absent(key.into())
    }
    pub fn member<V: ToRedisArgs>(key: impl Into<String>, member: V) -> Condition {
        Condition::Member {
            key: key.into(),
            member: bytes(member),
        }
    }
    pub fn not_member<V: ToRedisArgs>(key: impl Into<String>, member: V) -> Condition {
        Condition::NotMember {
            key: key.into(),
            member: bytes(member),
        }
    }
    pub fn fewer_than(key: impl Into<String>, limit: u64) -> Condition {
        Condition::FewerThan {
            key: key.into(),
            limit,
        }
    }
    pub fn sorted_member<V: ToRedisArgs>(key: impl Into<String>, member: V) -> Condition {
        Condition::SortedMember {
            key: key.into(),
            member: bytes(member),
        }
    }

    pub(crate) fn key(&self) -> &str {
        match self {
            Condition::Equals { key, .. }
            | Condition::HashField { key, .. }
            | Condition::Exists(key)
            | Condition::Absent(key)
            | Condition::Member { key, .. }
            | Condition::NotMember { key, .. }
            | Condition::FewerThan { key, .. }
            | Condition::SortedMember { key, .. } => key,
        }
    }

    /// Appends this condition's `ARGV` part for [`CONDITIONAL`].
    pub(crate) fn append_args(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        fn expected(invocation: &mut redis::ScriptInvocation<'_>, value: &Option<Vec<u8>>) {
            match value {
                Some(v) => invocation.arg("1").arg(v.as_slice()),
                None => invocation.arg("0").arg(""),
            };
        }
        match self {
            Condition::Equals { value, .. } => {
                invocation.arg("eq");
                expected(invocation, value);
            }
            Condition::HashField { field, value, .. } => {
                invocation.arg("hfield").arg(field.as_str());
                expected(invocation, value);
            }
            Condition::Exists(_) => {
                invocation.arg("exists");
            }
            Condition::Absent(_) => {
                invocation.arg("absent");
            }
            Condition::Member { member, .. } => {
                invocation.arg("member").arg(member.as_slice());
            }
            Condition::NotMember { member, .. } => {
                invocation.arg("notmember").arg(member.as_slice());
            }
            Condition::FewerThan { limit, .. } => {
                invocation.arg("fewer").arg(*limit);
            }
            Condition::SortedMember { member, .. } => {
                invocation.arg("zmember").arg(member.as_slice());
            }
        }
    }
}

/// What [`Redis::apply_when`](crate::Redis::apply_when) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional {
    /// Every condition held; these are the replies of the batch's commands, in order.
    Applied(Vec<redis::Value>),
    /// The condition at this index (0-based) did not hold; nothing was written.
    Refused(usize),
}

impl Conditional {
    pub fn applied(&self) -> bool {
        matches!(self, Conditional::Applied(_))
    }

    /// The integer reply of command `index` of the batch (an `INCR`, `HINCRBY`, `SCARD`,
    /// `SADD`), when applied.
    pub fn int(&self, index: usize) -> Option<i64> {
        match self {
            Conditional::Applied(replies) => match replies.get(index) {
                Some(redis::Value::Int(n)) => Some(*n),
                _ => None,
            },
            Conditional::Refused(_) => None,
        }
    }
}
