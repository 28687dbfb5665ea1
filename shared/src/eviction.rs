//! The Redis `maxmemory-policy` guard.
//!
//! dotjob keeps job definitions, schedules and run records in Redis; a policy that evicts keys
//! when memory runs out (`allkeys-lru`, `volatile-ttl`, …) would delete them silently. The
//! scheduler and the worker binaries read the policy at start and after every reconnect (a
//! failover may bring another server) and refuse anything but `noeviction` with one line and
//! exit code 2, unless `DOTJOB_ALLOW_EVICTION` is set, which turns the refusal into a warning
//! on every start. The policy comes from `CONFIG GET maxmemory-policy`, or from `INFO memory`
//! where `CONFIG` is refused (ACLs, managed Redis); when neither answers, a warning and on.
//! On a Redis Cluster every master is read, and the first one that is not safe decides.

use std::time::Duration;

use crate::conn::Redis;
use crate::error::Result;

/// The only policy that never deletes keys.
pub const SAFE_POLICY: &str = "noeviction";

/// What the server said about its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// The policy, and which command told it.
    Known {
        /// e.g. `noeviction`, `allkeys-lru`.
        policy: String,
        /// `CONFIG GET` or `INFO memory`.
        via: &'static str,
    },
    /// Both commands were refused (the reasons, for the warning).
    Unreadable(String),
}

/// What to do about a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `noeviction`: nothing to say.
    Safe,
    /// Go on, with this warning.
    Warn(String),
    /// Stop, with this line (exit code 2).
    Refuse(String),
}

/// Reads the policy: `CONFIG GET maxmemory-policy`, else `INFO memory`'s `maxmemory_policy`.
/// Fails only when Redis cannot be reached (a refused command is a [`Reading::Unreadable`]).
pub async fn read(redis: &Redis) -> Result<Reading> {
    if redis.is_cluster() {
        return read_masters(redis).await;
    }
    let mut c = redis.conn().await?;
    let config: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut c)
        .await;
    let config_err = match config {
        Ok(pair) => match pair.get(1) {
            Some(p) => {
                return Ok(Reading::Known {
                    policy: p.clone(),
                    via: "CONFIG GET",
                });
            }
            None => "CONFIG GET maxmemory-policy answered nothing".to_owned(),
        },
        Err(e) if is_unreachable(&e) => return Err(e.into()),
        Err(e) => format!("CONFIG GET: {e}"),
    };
    let info: redis::RedisResult<String> =
        redis::cmd("INFO").arg("memory").query_async(&mut c).await;
    match info {
        Ok(text) => Ok(match info_policy(&text) {
            Some(policy) => Reading::Known {
                policy,
                via: "INFO memory",
            },
            None => {
                Reading::Unreadable(format!("{config_err}; INFO memory has no maxmemory_policy"))
            }
        }),
        Err(e) if is_unreachable(&e) => Err(e.into()),
        Err(e) => Ok(Reading::Unreadable(format!(
            "{config_err}; INFO memory: {e}"
        ))),
    }
}

/// [`read`] on every master of a cluster: the first reading that is not `noeviction`, its
/// node named in `via`; `noeviction` when all are.
async fn read_masters(redis: &Redis) -> Result<Reading> {
    let config = redis
        .on_masters(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
        .await?;
    let mut info: Option<Vec<(String, redis::Value)>> = None;
    for (node, reply) in config {
        let reading = match redis::from_redis_value::<Vec<String>>(reply) {
            Ok(pair) if pair.len() == 2 => Reading::Known {
                policy: pair[1].clone(),
                via: "CONFIG GET",
            },
            Ok(_) | Err(_) => {
                // CONFIG refused on this node: INFO memory (read once, for every master).
                if info.is_none() {
                    info = Some(redis.on_masters(redis::cmd("INFO").arg("memory")).await?);
                }
                let text = info
                    .iter()
                    .flatten()
                    .find(|(n, _)| *n == node)
                    .and_then(|(_, v)| redis::from_redis_value::<String>(v.clone()).ok());
                match text.as_deref().and_then(info_policy) {
                    Some(policy) => Reading::Known {
                        policy,
                        via: "INFO memory",
                    },
                    None => Reading::Unreadable(format!(
                        "node {node}: CONFIG GET and INFO memory answered no policy"
                    )),
                }
            }
        };
        match reading {
            Reading::Known { policy, .. } if policy == SAFE_POLICY => {}
            Reading::Known { policy, via } => {
                return Ok(Reading::Known {
                    policy: format!("{policy}` on node `{node}"),
                    via,
                });
            }
            unreadable @ Reading::Unreadable(_) => return Ok(unreadable),
        }
    }
    Ok(Reading::Known {
        policy: SAFE_POLICY.to_owned(),
        via: "CONFIG GET",
    })
}

fn is_unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// `maxmemory_policy` of an `INFO memory` text.
fn info_policy(info: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let v = l.strip_prefix("maxmemory_policy:")?.trim();
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// What to do about `reading`; `allow` is `DOTJOB_ALLOW_EVICTION`.
pub fn verdict(reading: &Reading, allow: bool) -> Verdict {
    match reading {
        Reading::Known { policy, .. } if policy == SAFE_POLICY => Verdict::Safe,
        Reading::Known { policy, via } if allow => Verdict::Warn(format!(
            "Redis maxmemory-policy is `{policy}` ({via}), allowed by DOTJOB_ALLOW_EVICTION: \
             when memory runs out Redis will silently delete job definitions and run records"
        )),
        Reading::Known { policy, via } => Verdict::Refuse(format!(
            "Redis maxmemory-policy is `{policy}` ({via}): when memory runs out Redis would \
             silently delete job definitions and run records; set `maxmemory-policy noeviction` \
             on the server, or DOTJOB_ALLOW_EVICTION=1 to run anyway"
        )),
        Reading::Unreadable(why) => Verdict::Warn(format!(
            "cannot read Redis maxmemory-policy ({why}); make sure it is `noeviction`, or \
             Redis may silently delete job definitions and run records"
        )),
    }
}

/// Checks the policy once: the refusal line for the caller to print before exiting 2, or
/// `None` (a warning is logged here; an unreachable Redis is checked by [`watch`] later).
pub async fn check(redis: &Redis, allow: bool) -> Option<String> {
    match read(redis).await {
        Ok(r) => match verdict(&r, allow) {
            Verdict::Safe => None,
            Verdict::Warn(w) => {
                tracing::warn!("{w}");
                None
            }
            Verdict::Refuse(line) => Some(line),
        },
        Err(_) => None,
    }
}

/// Checks the policy after every reconnect (and every 10 s until a first check got an
/// answer); resolves with the refusal line when a server with an evicting policy appears.
/// Run it beside the process and exit 2 when it resolves.
pub async fn watch(redis: Redis, allow: bool) -> String {
    let mut known = false;
    loop {
        let reconnected = redis.link().reconnected();
        if !known {
            tokio::select! {
                () = reconnected => {}
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        } else {
            reconnected.await;
        }
        match read(&redis).await {
            Ok(r) => {
                known = true;
                match verdict(&r, allow) {
                    Verdict::Safe => {}
                    Verdict::Warn(w) => tracing::warn!("{w}"),
                    Verdict::Refuse(line) => return line,
                }
            }
            Err(_) => known = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(p: &str) -> Reading {
        Reading::Known {
            policy: p.to_owned(),
            via: "CONFIG GET",
        }
    }

    #[test]
    fn only_noeviction_passes_without_the_override() {
        assert_eq!(verdict(&known("noeviction"), false), Verdict::Safe);
        let Verdict::Refuse(line) = verdict(&known("allkeys-lru"), false) else {
            panic!("allkeys-lru was not refused");
        };
        assert!(line.contains("`allkeys-lru`"), "{line}");
        assert!(line.contains("job definitions and run records"), "{line}");
        assert!(matches!(
            verdict(&known("volatile-ttl"), true),
            Verdict::Warn(w) if w.contains("DOTJOB_ALLOW_EVICTION")
        ));
        assert!(matches!(
            verdict(&Reading::Unreadable("NOPERM".into()), false),
            Verdict::Warn(w) if w.contains("NOPERM")
        ));
    }

    #[test]
    fn the_policy_is_read_from_info_memory() {
        let info = "# Memory\r\nused_memory:1\r\nmaxmemory_policy:allkeys-lfu\r\n";
        assert_eq!(info_policy(info).as_deref(), Some("allkeys-lfu"));
        assert_eq!(info_policy("# Memory\r\nused_memory:1\r\n"), None);
    }
}
