//! Redis Cluster: the cluster-aware connection behind [`crate::conn::Conn`] when
//! `REDIS_CLUSTER_URLS` is set.
//!
//! redis-rs' `cluster_async::ClusterConnection` routes each command to the master of its
//! key's slot, follows `MOVED`/`ASK`, refreshes the slot map after a failover and splits
//! multi-key commands (`MGET`, `DEL`, `EXISTS` …) per slot; `EVALSHA` goes by its first key
//! (every script's `KEYS[1]` is a group prefix, so the group's master) and `SCRIPT LOAD` to
//! every node, so the `NOSCRIPT` fallback works per node. What it does not do is split a
//! pipeline: it sends the whole pipeline to the first key's node and refuses one that spans
//! slots. [`ClusterConn`] adds that: a pipeline whose commands carry more than one hash tag
//! is cut into one sub-pipeline per tag (run concurrently, each on its node) and the replies
//! are put back in order, so the views that read many groups in one pipeline work unchanged.
//! Atomic (`MULTI`) pipelines are never split: they must stay within one slot.
//!
//! One `ClusterConnection` is multiplexed over one connection per node and reconnects by
//! itself, so a process keeps one (cloned per checkout) instead of a pool; blocking reads get
//! a connection of their own with a longer reply timeout (see `conn.rs`).

use std::collections::HashMap;

use futures::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A cluster connection that splits pipelines by hash tag.
#[derive(Clone)]
pub struct ClusterConn {
    inner: ClusterConnection,
}

impl ClusterConn {
    /// Wraps a connected cluster connection.
    pub fn new(inner: ClusterConnection) -> Self {
        Self { inner }
    }

    /// Runs `cmd` on every master; one reply (or error) per master, by address.
    pub async fn on_masters(&mut self, cmd: &Cmd) -> RedisResult<Vec<(String, Value)>> {
        let v = self
            .inner
            .route_command(
                cmd.clone(),
                RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
            )
            .await?;
        per_node(v)
    }
}

/// A multi-node reply (`address → reply` map) as pairs.
fn per_node(v: Value) -> RedisResult<Vec<(String, Value)>> {
    match v {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Ok((redis::from_redis_value::<String>(k)?, v)))
            .collect(),
        other => Ok(vec![(String::new(), other)]),
    }
}

/// Where a command goes, as far as splitting a pipeline is concerned.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// No key (`TIME`, `PUBLISH`, `WAIT` …): goes wherever the pipeline goes.
    Keyless,
    /// The slot of this hash tag (or whole key, when it has none).
    Tag(Vec<u8>),
    /// Keys of several tags (`MGET a b`): sent on its own, split by the client.
    Spread,
}

/// The part of `key` that decides its slot: the hash tag if it has one.
fn tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The target of one command.
fn target(cmd: &Cmd) -> Target {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            _ => None,
        })
        .collect();
    let Some(name) = args.first() else {
        return Target::Keyless;
    };
    let name = name.to_ascii_uppercase();
    let keys: Vec<&[u8]> = match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let n: usize = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
                .unwrap_or(0);
            args.iter().skip(3).take(n).copied().collect()
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
                .map_or(args.len(), |i| i + 1);
            let rest = &args[at..];
            rest[..rest.len() / 2].to_vec()
        }
        b"MGET" | b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" | b"SUNION" | b"SINTER" | b"SDIFF" => {
            args[1..].to_vec()
        }
        b"PING" | b"TIME" | b"INFO" | b"PUBLISH" | b"WAIT" | b"SCRIPT" | b"CONFIG" | b"CLUSTER"
        | b"CLIENT" | b"DBSIZE" | b"ECHO" | b"MULTI" | b"EXEC" | b"COMMAND" => Vec::new(),
        _ => args.get(1).copied().into_iter().collect(),
    };
    let mut tags = keys.iter().map(|k| tag(k));
    match tags.next() {
        None => Target::Keyless,
        Some(first) if tags.all(|t| t == first) => Target::Tag(first.to_vec()),
        Some(_) => Target::Spread,
    }
}

/// How a pipeline is sent: whole, or as these parts (command indexes of each).
fn plan(pipeline: &Pipeline) -> Option<Vec<Vec<usize>>> {
    if pipeline.is_transaction() {
        return None;
    }
    let mut by_tag: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let mut keyless: Vec<usize> = Vec::new();
    let mut spread = false;
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        match target(cmd) {
            Target::Keyless => keyless.push(i),
            Target::Tag(t) => {
                let at = *by_tag.entry(t).or_insert_with(|| {
                    parts.push(Vec::new());
                    parts.len() - 1
                });
                parts[at].push(i);
            }
            Target::Spread => {
                spread = true;
                parts.push(vec![i]);
            }
        }
    }
    if parts.len() <= 1 && !spread {
        // One node (or none): the client routes it as it is.
        return None;
    }
    // Keyless commands on their own (the client routes each).
    parts.extend(keyless.into_iter().map(|i| vec![i]));
    Some(parts)
}

impl ConnectionLike for ClusterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Some(parts) = plan(pipeline) else {
            return self.inner.req_packed_commands(pipeline, offset, count);
        };
        Box::pin(async move {
            let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
            let calls = parts.iter().map(|idx| {
                let mut c = self.inner.clone();
                let cmds = &cmds;
                async move {
                    if let [i] = idx.as_slice() {
                        // One command alone is routed (and a multi-slot one split) by the
                        // client's command path.
                        return c.req_packed_command(cmds[*i]).await.map(|v| vec![v]);
                    }
                    let mut sub = redis::pipe();
                    for &i in idx {
                        sub.add_command(cmds[i].clone());
                    }
                    c.req_packed_commands(&sub, 0, sub.len()).await
                }
            });
            let replies = try_join_all(calls).await?;
            let mut out: Vec<Value> = vec![Value::Nil; cmds.len()];
            for (idx, values) in parts.iter().zip(replies) {
                for (&i, v) in idx.iter().zip(values) {
                    out[i] = v;
                }
            }
            Ok(out.into_iter().skip(offset).take(count).collect())
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_go_by_their_keys_hash_tag() {
        let t = |c: &mut Cmd| target(c);
        assert_eq!(
            t(redis::cmd("HGET").arg("p:{billing}:job:1").arg("f")),
            Target::Tag(b"billing".to_vec())
        );
        assert_eq!(
            t(redis::cmd("SMEMBERS").arg("p:groups")),
            Target::Tag(b"p:groups".to_vec())
        );
        assert_eq!(
            t(redis::cmd("EVALSHA")
                .arg("abc")
                .arg(1)
                .arg("p:{mail}:")
                .arg("x")),
            Target::Tag(b"mail".to_vec())
        );
        assert_eq!(
            t(redis::cmd("EVALSHA").arg("abc").arg(0).arg("x")),
            Target::Keyless
        );
        assert_eq!(
            t(redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("BLOCK")
                .arg(100)
                .arg("STREAMS")
                .arg("p:{a}:stream")
                .arg(">")),
            Target::Tag(b"a".to_vec())
        );
        assert_eq!(
            t(redis::cmd("MGET").arg("p:{a}:x").arg("p:{b}:x")),
            Target::Spread
        );
        assert_eq!(
            t(redis::cmd("MGET").arg("p:{a}:x").arg("p:{a}:y")),
            Target::Tag(b"a".to_vec())
        );
        assert_eq!(t(&mut redis::cmd("TIME")), Target::Keyless);
        assert_eq!(t(redis::cmd("WAIT").arg(1).arg(100)), Target::Keyless);
        // An empty tag `{}` is no tag: the whole key decides.
        assert_eq!(
            t(redis::cmd("GET").arg("a{}b")),
            Target::Tag(b"a{}b".to_vec())
        );
    }

    #[test]
    fn pipelines_are_split_only_across_tags() {
        let mut one = redis::pipe();
        one.hget("p:{a}:x", "f")
            .zcard("p:{a}:y")
            .cmd("WAIT")
            .arg(1)
            .arg(10);
        assert_eq!(plan(&one), None);
        let mut two = redis::pipe();
        two.hget("p:{a}:x", "f")
            .zcard("p:{b}:y")
            .hget("p:{a}:z", "f")
            .cmd("TIME");
        assert_eq!(plan(&two), Some(vec![vec![0, 2], vec![1], vec![3]]));
        let mut atomic = redis::pipe();
        atomic.atomic().hget("p:{a}:x", "f").zcard("p:{b}:y");
        assert_eq!(plan(&atomic), None);
        let mut spread = redis::pipe();
        spread.cmd("MGET").arg("p:{a}:x").arg("p:{b}:x");
        assert_eq!(plan(&spread), Some(vec![vec![0]]));
    }
}
