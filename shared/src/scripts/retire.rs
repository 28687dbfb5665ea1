//! `retire.lua`: an executor leaving at shutdown ends its unfinished broadcast runs (`lost`:
//! no other executor may run them) and deletes its own stream.

use redis::aio::ConnectionLike;

use super::{RETIRE, ScriptArgs};
use crate::error::Result;

/// Retires one executor's own stream.
#[derive(Clone, Copy, Debug)]
pub struct Retire<'a> {
    /// The executor leaving.
    pub executor: &'a str,
}

impl Retire<'_> {
    /// Runs `retire.lua` for the group `prefix`; returns how many runs ended `lost`.
    pub async fn call<C: ConnectionLike + Send>(self, c: &mut C, prefix: &str) -> Result<u64> {
        let mut inv = RETIRE.prepare_invoke();
        self.encode(&mut inv, prefix);
        Ok(inv.invoke_async(c).await?)
    }

    fn encode(self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix).arg(self.executor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn a_retire_names_the_executor() {
        let mut r = Recorder::default();
        Retire { executor: "h-1-ab" }.encode(&mut r, "p:{g}:");
        assert_eq!(
            (r.keys, r.args),
            (vec!["p:{g}:".to_owned()], vec!["h-1-ab".to_owned()])
        );
    }
}
