//! The Lua scripts, loaded once and invoked by SHA (redis-rs loads them on `NOSCRIPT`).
//!
//! Each script lives in `lua/<name>.lua` beside this file and is prefixed with `lua/now.lua`
//! (the Redis-clock helper). Every script takes the group prefix as `KEYS[1]` and touches
//! only keys of that group, so a script stays within one Redis Cluster slot.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($name:ident, $file:literal) => {
        #[doc = concat!("`lua/", $file, "`")]
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/now.lua"),
                include_str!(concat!("lua/", $file))
            ))
        });
    };
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
