//! `due.lua`: which jobs of a group are due, on the Redis clock.

use redis::aio::ConnectionLike;

use super::{DUE, bad_reply};
use crate::error::Result;

/// Asks for the due jobs of a group.
#[derive(Clone, Copy, Debug)]
pub struct Due {
    /// Most jobs to return.
    pub max_jobs: usize,
    /// How far ahead of now to look (ms): ticks are fired that much early.
    pub look_ahead_ms: u64,
}

/// A job whose next fire instant is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueJob {
    /// Its id.
    pub id: String,
    /// Its schedule score: the fire instant expected (ms).
    pub score: i64,
    /// The version of its definition; 0 when the definition is gone.
    pub version: u64,
}

/// What [`Due`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueReply {
    /// The Redis clock when the script ran (ms).
    pub now_ms: i64,
    /// The earliest score not in `jobs`: past the look-ahead, or when `jobs` is a full
    /// batch the last one returned (more are due); `None` when nothing else is scheduled.
    pub next_score: Option<i64>,
    /// The due jobs, earliest first.
    pub jobs: Vec<DueJob>,
}

impl Due {
    /// Runs `due.lua` for the group `prefix` (`Keys::group_prefix`).
    pub async fn call<C: ConnectionLike + Send>(self, c: &mut C, prefix: &str) -> Result<DueReply> {
        let raw: (String, String, Vec<String>) = DUE
            .key(prefix)
            .arg(self.max_jobs)
            .arg(self.look_ahead_ms)
            .invoke_async(c)
            .await?;
        decode(raw)
    }
}

/// Scores come back as Redis formats them (`1790000000000` or `1.79e12`).
fn score(s: &str) -> Option<i64> {
    s.parse::<f64>().ok().map(|f| f as i64)
}

fn decode((now, next, flat): (String, String, Vec<String>)) -> Result<DueReply> {
    let now_ms = now
        .parse()
        .map_err(|_| bad_reply("due.lua", format!("now {now:?}")))?;
    if flat.len() % 3 != 0 {
        return Err(bad_reply("due.lua", "jobs not in triples"));
    }
    let jobs = flat
        .chunks_exact(3)
        .map(|row| DueJob {
            id: row[0].clone(),
            score: score(&row[1]).unwrap_or_default(),
            version: row[2].parse().unwrap_or(0),
        })
        .collect();
    Ok(DueReply {
        now_ms,
        next_score: score(&next),
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_reads_into_jobs() {
        let s = |v: &str| v.to_owned();
        let r = decode((
            s("1790000000000"),
            s("1789999999000"),
            vec![
                s("01a"),
                s("1789999999000"),
                s("3"),
                s("01b"),
                s("1.79e12"),
                s(""),
            ],
        ))
        .unwrap();
        assert_eq!(
            (r.now_ms, r.next_score),
            (1_790_000_000_000, Some(1_789_999_999_000))
        );
        assert_eq!(
            r.jobs,
            [
                DueJob {
                    id: s("01a"),
                    score: 1_789_999_999_000,
                    version: 3
                },
                DueJob {
                    id: s("01b"),
                    score: 1_790_000_000_000,
                    version: 0
                },
            ]
        );
        let idle = decode((s("5"), s(""), vec![])).unwrap();
        assert_eq!((idle.next_score, idle.jobs.len()), (None, 0));
        assert!(decode((s("5"), s(""), vec![s("01a")])).is_err());
    }
}
