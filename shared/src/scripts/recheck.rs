//! `recheck.lua`: runs fired ahead of their tick, checked just before they start.

use redis::aio::ConnectionLike;

use super::{RECHECK, ScriptArgs, bad_reply};
use crate::error::Result;
use crate::model::run::RunStatus;

/// Checks runs fired ahead.
#[derive(Clone, Copy, Debug)]
pub struct Recheck<'a> {
    /// The runs: (run id, job id).
    pub runs: &'a [(&'a str, &'a str)],
}

/// One run as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCheck {
    /// Its status; `None` when its record is gone (recalled).
    pub status: Option<RunStatus>,
    /// Its job's current version; `None` when the job is gone.
    pub job_version: Option<u64>,
}

/// What [`Recheck`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecheckReply {
    /// The Redis clock when the script ran (ms).
    pub now_ms: i64,
    /// One check per run, in order.
    pub runs: Vec<RunCheck>,
}

impl Recheck<'_> {
    /// Runs `recheck.lua` for the group `prefix`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        prefix: &str,
    ) -> Result<RecheckReply> {
        let mut inv = RECHECK.prepare_invoke();
        self.encode(&mut inv, prefix);
        let raw: (i64, Vec<String>) = inv.invoke_async(c).await?;
        decode(raw, self.runs.len())
    }

    fn encode(&self, inv: &mut impl ScriptArgs, prefix: &str) {
        inv.key(prefix);
        for (run, job) in self.runs {
            inv.arg(run).arg(job);
        }
    }
}

fn decode((now_ms, flat): (i64, Vec<String>), runs: usize) -> Result<RecheckReply> {
    if flat.len() != 2 * runs {
        return Err(bad_reply(
            "recheck.lua",
            format!("{} values for {runs} runs", flat.len()),
        ));
    }
    Ok(RecheckReply {
        now_ms,
        runs: flat
            .chunks_exact(2)
            .map(|pair| RunCheck {
                status: RunStatus::parse(&pair[0]),
                job_version: pair[1].parse().ok(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    #[test]
    fn runs_encode_and_checks_read_back() {
        let mut r = Recorder::default();
        Recheck {
            runs: &[("01a-5", "01a")],
        }
        .encode(&mut r, "p:{g}:");
        assert_eq!(r.args, ["01a-5", "01a"]);
        let flat = ["queued", "4", "", ""].map(str::to_owned).to_vec();
        let reply = decode((17, flat), 2).unwrap();
        assert_eq!(
            reply.runs,
            [
                RunCheck {
                    status: Some(RunStatus::Queued),
                    job_version: Some(4)
                },
                RunCheck {
                    status: None,
                    job_version: None
                }
            ]
        );
        assert!(decode((17, vec![]), 1).is_err());
    }
}
