//! The Lua scripts, loaded once and invoked by SHA (redis-rs loads them on `NOSCRIPT`).
//!
//! Each script lives in `lua/<name>.lua` beside this file and is prefixed with
//! `lua/prelude.lua` (the Redis clock and shared helpers). Every script takes the group prefix
//! as `KEYS[1]` and touches only keys of that group, so a script stays within one Redis
//! Cluster slot.

use std::sync::LazyLock;

use redis::Script;

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

fn build(body: &str) -> Script {
    Script::new(&format!(
        "local CLOCK_OFFSET_MS = {}\n{}{}",
        clock_offset_ms(),
        include_str!("lua/prelude.lua"),
        body
    ))
}

macro_rules! script {
    ($name:ident, $file:literal) => {
        #[doc = concat!("`lua/", $file, "`")]
        pub static $name: LazyLock<Script> =
            LazyLock::new(|| build(include_str!(concat!("lua/", $file))));
    };
}

/// Every script, by file name (a test loads each into Redis to catch syntax errors).
pub fn all() -> Vec<(&'static str, &'static Script)> {
    vec![
        ("due.lua", &DUE),
        ("fire.lua", &FIRE),
        ("save_job.lua", &SAVE_JOB),
        ("delete_job.lua", &DELETE_JOB),
        ("trigger.lua", &TRIGGER),
        ("start.lua", &START),
        ("complete.lua", &COMPLETE),
        ("trim_runs.lua", &TRIM_RUNS),
        ("claim.lua", &CLAIM),
        ("touch.lua", &TOUCH),
        ("handback.lua", &HANDBACK),
        ("trim_stream.lua", &TRIM_STREAM),
        ("reap.lua", &REAP),
        ("lease.lua", &LEASE),
        ("cancel.lua", &CANCEL),
        ("mark.lua", &MARK),
        ("recheck.lua", &RECHECK),
    ]
}

script!(DUE, "due.lua");
script!(FIRE, "fire.lua");
script!(SAVE_JOB, "save_job.lua");
script!(DELETE_JOB, "delete_job.lua");
script!(TRIGGER, "trigger.lua");
script!(START, "start.lua");
script!(COMPLETE, "complete.lua");
script!(TRIM_RUNS, "trim_runs.lua");
script!(CLAIM, "claim.lua");
script!(TOUCH, "touch.lua");
script!(HANDBACK, "handback.lua");
script!(TRIM_STREAM, "trim_stream.lua");
script!(REAP, "reap.lua");
script!(LEASE, "lease.lua");
script!(CANCEL, "cancel.lua");
script!(MARK, "mark.lua");
script!(RECHECK, "recheck.lua");
