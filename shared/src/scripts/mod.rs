//! The Lua scripts and their typed calls: one Rust call per script, with a params struct
//! and a typed reply, so no caller spells a script argument or matches a reply string.
//!
//! Each script lives in `lua/<name>.lua` (its header lists its KEYS and ARGV, what it reads
//! and writes, and its reply) and is loaded once and invoked by SHA (redis-rs loads it on
//! `NOSCRIPT`). Every script is prefixed with the test clock offset, `local P = KEYS[1]` (the
//! group prefix) and `lua/prelude.lua` (the Redis clock and shared helpers). Every script
//! takes the group prefix as `KEYS[1]` and touches only keys of that group, so a script
//! stays within one Redis Cluster slot.
//!
//! Scripts spell no key suffix, field name or other shared name: they use the names of
//! [`crate::keys::lua_names`] (`K_RUN`, `CONSUMER_GROUP`), [`fields`] (`F_STATUS`, ...) and
//! `EVENT_CANCEL`, which the loader replaces with their values as Lua string literals when
//! it builds the script. Literals, not Lua locals: a helper function capturing a dozen
//! locals as upvalues costs microseconds on every call, a literal nothing.
//!
//! The wrapper modules own the encoding of their script's arguments and the decoding of its
//! reply; their pure parts are unit-tested without Redis.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::{Script, ScriptInvocation, ToRedisArgs};

use crate::error::Error;

mod alert_claim;
mod alert_cursor;
mod alert_enqueue;
mod alert_record;
#[cfg(test)]
mod alert_redis_tests;
mod backfill;
mod cancel;
mod claim;
mod complete;
mod due;
pub mod fields;
mod fire;
mod handback;
mod jobs;
mod lease;
mod reap;
mod recheck;
#[cfg(test)]
mod redis_tests;
mod retire;
mod shard_done;
mod start;
mod touch;
mod trigger;
mod trim;

pub use alert_claim::{ClaimAlerts, ClaimedAlert};
pub use alert_cursor::{AdvanceAlertCursor, CursorReply};
pub use alert_enqueue::{EnqueueAlert, EnqueueReply, SEEN_TTL_MS};
pub use alert_record::{AttemptStatus, RecordAlertAttempt};
pub use backfill::{Backfill, BackfillLast, BackfillReply};
pub use cancel::{Cancel, CancelOutcome};
pub use claim::{Claim, ClaimReply, Claimed};
pub use complete::{Attempt, AttemptOutcome, Complete, Recorded};
pub use due::{Due, DueJob, DueReply};
pub use fire::{Fence, Fire, FireJob, FireReply};
pub use handback::Handback;
pub use jobs::{DeleteJob, NextFire, SaveJob, SaveMode, SaveReply};
pub use lease::{Lease, LeaseAction, LeaseReply};
pub use reap::{Reap, ReapReply};
pub use recheck::{Recheck, RecheckReply, RunCheck};
pub use retire::Retire;
pub use shard_done::{SHARDS_OK_KEEP_MS, ShardDone};
pub use start::{MarkRunning, Start, StartReply, StartVerdict};
pub use touch::{Touch, TouchReply};
pub use trigger::{Idempotency, ShardSpan, Trigger, TriggerKind, TriggerReply};
pub use trim::{TrimRuns, TrimRunsReply, TrimStream, TrimStreamReply};

/// `DOTJOB_TEST_CLOCK_OFFSET_MS`: for tests only, shifts the Redis clock every script of this
/// process sees (e.g. to a daylight-saving day). Read once; 0 when unset.
pub fn clock_offset_ms() -> i64 {
    static OFFSET: LazyLock<i64> = LazyLock::new(|| {
        std::env::var("DOTJOB_TEST_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    });
    *OFFSET
}

const PRELUDE: &str = include_str!("../lua/prelude.lua");

/// The shared names the scripts use, with their values.
fn lua_names() -> HashMap<String, &'static str> {
    crate::keys::lua_names()
        .chain(fields::all())
        .chain([("EVENT_CANCEL".to_owned(), crate::events::CANCEL_KIND)])
        .collect()
}

/// The full source of a script: the clock offset, `P`, the prelude, then `body`, with every
/// shared name replaced by its value.
fn source(body: &str) -> String {
    let text = format!(
        "local CLOCK_OFFSET_MS = {}\nlocal P = KEYS[1]\n{}{PRELUDE}{body}",
        clock_offset_ms(),
        crate::views::last::lua_last_code()
    );
    expand(&text, &lua_names())
}

/// Writes `lua` with every identifier found in `names` replaced by its value as a quoted
/// Lua string (values are plain names: no quote or backslash).
fn expand(lua: &str, names: &HashMap<String, &str>) -> String {
    let mut out = String::with_capacity(lua.len() + lua.len() / 8);
    let mut rest = lua;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        match names.get(word) {
            Some(value) => {
                out.push('\'');
                out.push_str(value);
                out.push('\'');
            }
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

macro_rules! scripts {
    ($($name:ident = $file:literal;)*) => {
        $(
            #[doc = concat!("`lua/", $file, "`")]
            static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(&source(include_str!(concat!("../lua/", $file)))));
        )*

        /// Every script, by file name (a test loads each into Redis to catch syntax errors).
        pub fn all() -> Vec<(&'static str, &'static Script)> {
            vec![$(($file, &*$name)),*]
        }

        /// Every Lua source file with its text, the prelude included.
        #[cfg(test)]
        fn lua_files() -> Vec<(&'static str, &'static str)> {
            vec![
                ("prelude.lua", PRELUDE),
                $(($file, include_str!(concat!("../lua/", $file)))),*
            ]
        }
    };
}

scripts! {
    DUE = "due.lua";
    FIRE = "fire.lua";
    SAVE_JOB = "save_job.lua";
    DELETE_JOB = "delete_job.lua";
    TRIGGER = "trigger.lua";
    START = "start.lua";
    COMPLETE = "complete.lua";
    TRIM_RUNS = "trim_runs.lua";
    CLAIM = "claim.lua";
    TOUCH = "touch.lua";
    HANDBACK = "handback.lua";
    TRIM_STREAM = "trim_stream.lua";
    REAP = "reap.lua";
    LEASE = "lease.lua";
    CANCEL = "cancel.lua";
    MARK = "mark.lua";
    RECHECK = "recheck.lua";
    BACKFILL = "backfill.lua";
    SHARD_DONE = "shard_done.lua";
    BACKFILL_LAST = "backfill_last.lua";
    RETIRE = "retire.lua";
    ALERT_CURSOR = "alert_cursor.lua";
    ALERT_ENQUEUE = "alert_enqueue.lua";
    ALERT_CLAIM = "alert_claim.lua";
    ALERT_RECORD = "alert_record.lua";
}

/// Where a wrapper writes its script's keys and arguments: the invocation, or in unit tests
/// a [`Recorder`] (generic, so the invocation path costs nothing extra).
trait ScriptArgs {
    /// Adds `KEYS[n]`.
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self;
    /// Adds `ARGV[n]` (a slice adds one argument per item).
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl ScriptArgs for ScriptInvocation<'_> {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        ScriptInvocation::key(self, key)
    }
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        ScriptInvocation::arg(self, arg)
    }
}

/// The keys and arguments a wrapper encodes, as text.
#[cfg(test)]
#[derive(Debug, Default)]
struct Recorder {
    keys: Vec<String>,
    args: Vec<String>,
}

#[cfg(test)]
impl ScriptArgs for Recorder {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        for k in key.to_redis_args() {
            self.keys.push(String::from_utf8_lossy(&k).into_owned());
        }
        self
    }
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        for a in arg.to_redis_args() {
            self.args.push(String::from_utf8_lossy(&a).into_owned());
        }
        self
    }
}

/// An error reply a script returned on purpose (`redis.error_reply('CODE detail')`), as its
/// code and detail. Redis 7 prefixes an error reply that is a single word with `ERR`
/// (`ERR NOTFOUND`), so the code may arrive as the first word of the detail.
fn refusal(e: &redis::RedisError) -> (Option<&str>, Option<&str>) {
    split_refusal(e.code(), e.detail())
}

fn split_refusal<'a>(
    code: Option<&'a str>,
    detail: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>) {
    match (code, detail) {
        (Some("ERR"), Some(d)) => {
            let mut words = d.splitn(2, ' ');
            (words.next(), words.next())
        }
        (code, detail) => (code, detail),
    }
}

/// A reply that does not have the shape the script promises.
fn bad_reply(script: &'static str, detail: impl Into<String>) -> Error {
    Error::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        script,
        detail.into(),
    )))
}

/// Whether stream id `a` sorts before `b` (`<ms>-<seq>`; an unreadable part counts as 0).
fn stream_id_lt(a: &str, b: &str) -> bool {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parts(a) < parts(b)
}

/// No Lua source spells a key suffix, the consumer group, the cancel event kind or a field
/// name itself: they come from the rendered declarations.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CONSUMER_GROUP, suffix};

    fn quoted(word: &str) -> [String; 2] {
        [format!("'{word}'"), format!("\"{word}\"")]
    }

    #[test]
    fn no_lua_file_spells_a_key_suffix() {
        for (file, text) in lua_files() {
            // A suffix literal is a key once concatenated (a name like `'dead'` is also a
            // run status); one ending in ':' is a key wherever it appears.
            for (_, s) in suffix::ALL {
                for q in quoted(s) {
                    let as_key = text.contains(&format!(".. {q}"))
                        || text.contains(&format!("{q} .."))
                        || (s.ends_with(':') && text.contains(&q));
                    assert!(!as_key, "{file} spells the key suffix {q}");
                }
            }
            for q in quoted(CONSUMER_GROUP) {
                assert!(!text.contains(&q), "{file} spells the consumer group {q}");
            }
            for q in quoted(crate::events::CANCEL_KIND) {
                assert!(!text.contains(&q), "{file} spells the cancel event kind");
            }
            // Keys are built from the prefix only through the K_ constants.
            for (i, line) in text.lines().enumerate() {
                if let Some(at) = line.find("P .. ") {
                    assert!(
                        line[at + 5..].starts_with("K_"),
                        "{file}:{}: a key not built from a K_ suffix: {line}",
                        i + 1
                    );
                }
                assert!(!line.contains("KEYS[1] .."), "{file}:{}: {line}", i + 1);
            }
        }
    }

    #[test]
    fn no_lua_file_spells_a_field_name() {
        for (file, text) in lua_files() {
            for (_, field) in fields::all() {
                for q in quoted(field) {
                    assert!(!text.contains(&q), "{file} spells the field {q}");
                }
            }
        }
    }

    #[test]
    fn names_expand_as_whole_words_into_literals() {
        let names: HashMap<String, &str> = [("K_RUN".to_owned(), "run:")].into();
        assert_eq!(
            expand(
                "local rk = P .. K_RUN .. id -- K_RUNS xK_RUN K_RUN1",
                &names
            ),
            "local rk = P .. 'run:' .. id -- K_RUNS xK_RUN K_RUN1"
        );
        assert_eq!(expand("é K_RUN", &names), "é 'run:'");
        for (name, value) in lua_names() {
            assert!(!value.contains(['\'', '\\']), "{name}");
        }
    }

    #[test]
    fn every_script_names_only_known_shared_names_and_has_a_header() {
        let names = lua_names();
        for (file, text) in lua_files() {
            let src = source(text);
            assert!(src.starts_with("local CLOCK_OFFSET_MS = "));
            assert!(src.contains("\nlocal P = KEYS[1]\n"));
            // A name left unexpanded would be an undefined global at run time.
            for word in src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let shared = (word.len() > 2
                    && ["K_", "F_", "E_", "D_"].iter().any(|p| word.starts_with(p)))
                    || word == "CONSUMER_GROUP"
                    || word == "EVENT_CANCEL";
                assert!(!shared, "{file}: unknown shared name {word}");
            }
            if file != "prelude.lua" {
                let header: Vec<&str> = text.lines().take_while(|l| l.starts_with("--")).collect();
                let header = header.join("\n");
                for part in ["KEYS[1]", "Reads:", "Writes:", "Reply:"] {
                    assert!(header.contains(part), "{file}: header without {part}");
                }
            }
        }
        assert!(names.contains_key("K_CANCEL") && names.contains_key("F_RETRY_AT"));
        assert!(source("return P .. K_CANCEL").ends_with("return P .. 'cancel'"));
    }

    #[test]
    fn a_refusal_is_read_with_or_without_the_err_prefix() {
        assert_eq!(
            split_refusal(Some("ERR"), Some("NOTFOUND")),
            (Some("NOTFOUND"), None)
        );
        assert_eq!(
            split_refusal(Some("ERR"), Some("INFLIGHT 01abc-5")),
            (Some("INFLIGHT"), Some("01abc-5"))
        );
        assert_eq!(
            split_refusal(Some("INFLIGHT"), Some("01abc-5")),
            (Some("INFLIGHT"), Some("01abc-5"))
        );
    }

    #[test]
    fn stream_ids_order_by_ms_then_sequence() {
        assert!(stream_id_lt("9-5", "10-0"));
        assert!(stream_id_lt("10-2", "10-10"));
        assert!(!stream_id_lt("10-10", "10-10"));
    }
}
