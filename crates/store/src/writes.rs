use redis::{Pipeline, ScriptInvocation, ToRedisArgs};

/// A batch of Redis write commands, applied together by [`crate::Redis::apply`] or
/// [`crate::Redis::apply_if`].
///
/// Building the batch first and sending it once keeps every multi-key change a single
/// atomic step: a reader never sees half a relation.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    commands: Vec<Vec<Vec<u8>>>,
}

/// One command being added to a [`Writes`]; add arguments with [`WriteCmd::arg`].
#[derive(Debug)]
pub struct WriteCmd<'a> {
    args: &'a mut Vec<Vec<u8>>,
}

impl WriteCmd<'_> {
    pub fn arg<T: ToRedisArgs>(self, value: T) -> Self {
        self.args.extend(value.to_redis_args());
        self
    }
}

impl Writes {
    pub fn new() -> Writes {
        Writes::default()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Adds any write command by name, e.g. `writes.command("ZADD").arg(key).arg(score).arg(member)`.
    pub fn command(&mut self, name: &str) -> WriteCmd<'_> {
        self.commands.push(vec![name.as_bytes().to_vec()]);
        let args = match self.commands.last_mut() {
            Some(args) => args,
            None => unreachable!("a command was just pushed"),
        };
        WriteCmd { args }
    }

    pub fn set<V: ToRedisArgs>(&mut self, key: &str, value: V) -> &mut Self {
        self.command("SET").arg(key).arg(value);
        self
    }

    /// `SET key value EX seconds`.
    pub fn set_ex<V: ToRedisArgs>(&mut self, key: &str, value: V, seconds: u64) -> &mut Self {
        self.command("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(seconds);
        self
    }

    pub fn del(&mut self, key: &str) -> &mut Self {
        self.command("DEL").arg(key);
        self
    }

    pub fn sadd<V: ToRedisArgs>(&mut self, key: &str, member: V) -> &mut Self {
        self.command("SADD").arg(key).arg(member);
        self
    }

    pub fn srem<V: ToRedisArgs>(&mut self, key: &str, member: V) -> &mut Self {
        self.command("SREM").arg(key).arg(member);
        self
    }

    pub fn hset<V: ToRedisArgs>(&mut self, key: &str, field: &str, value: V) -> &mut Self {
        self.command("HSET").arg(key).arg(field).arg(value);
        self
    }

    pub fn hincrby(&mut self, key: &str, field: &str, by: i64) -> &mut Self {
        self.command("HINCRBY").arg(key).arg(field).arg(by);
        self
    }

    pub fn incr(&mut self, key: &str) -> &mut Self {
        self.command("INCR").arg(key);
        self
    }

    pub fn zadd<V: ToRedisArgs>(&mut self, key: &str, score: f64, member: V) -> &mut Self {
        self.command("ZADD").arg(key).arg(score).arg(member);
        self
    }

    pub fn expire(&mut self, key: &str, seconds: u64) -> &mut Self {
        self.command("EXPIRE").arg(key).arg(seconds);
        self
    }

    pub fn persist(&mut self, key: &str) -> &mut Self {
        self.command("PERSIST").arg(key);
        self
    }

    /// Appends every command of `other`.
    pub fn extend(&mut self, other: Writes) -> &mut Self {
        self.commands.extend(other.commands);
        self
    }

    pub(crate) fn to_pipeline(&self) -> Pipeline {
        let mut pipe = redis::pipe();
        for command in &self.commands {
            let mut parts = command.iter();
            if let Some(name) = parts.next() {
                let mut cmd = redis::cmd(&String::from_utf8_lossy(name));
                for arg in parts {
                    cmd.arg(arg.as_slice());
                }
                pipe.add_command(cmd).ignore();
            }
        }
        pipe
    }

    /// Encodes the commands for the scripts of [`crate::lua`]: for each command its argument count,
    /// then its arguments.
    pub(crate) fn append_script_args(&self, invocation: &mut ScriptInvocation<'_>) {
        for command in &self.commands {
            invocation.arg(command.len());
            for arg in command {
                invocation.arg(arg.as_slice());
            }
        }
    }
}
