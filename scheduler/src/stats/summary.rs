//! Figures of one time window from a sample of runs: counts by status, success rate and
//! duration percentiles. Pure functions over what [`super::compute`] read.

use dotjob_shared::model::run::RunStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// One run as the stats read it: tick, status, duration, retry pending.
#[derive(Clone, Debug)]
pub struct RunSample {
    /// Its tick (the score in the job's runs index), ms.
    pub tick_ms: i64,
    /// Current status.
    pub status: RunStatus,
    /// Duration of its last attempt, when it has one.
    pub duration_ms: Option<u64>,
    /// A retry is pending (so a `failed`/`timed_out` status is not final yet).
    pub retrying: bool,
}

impl RunSample {
    /// Whether the run has a final outcome that counts for the success rate.
    fn finished(&self) -> bool {
        match self.status {
            RunStatus::Succeeded | RunStatus::Dead | RunStatus::Lost => true,
            RunStatus::Failed | RunStatus::TimedOut => !self.retrying,
            RunStatus::Queued | RunStatus::Running | RunStatus::Skipped | RunStatus::Cancelled => {
                false
            }
        }
    }
}

/// Runs by current status.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct ByStatus {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub dead: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub lost: u64,
}

impl ByStatus {
    fn add(&mut self, s: RunStatus) {
        let slot = match s {
            RunStatus::Queued => &mut self.queued,
            RunStatus::Running => &mut self.running,
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::TimedOut => &mut self.timed_out,
            RunStatus::Dead => &mut self.dead,
            RunStatus::Skipped => &mut self.skipped,
            RunStatus::Cancelled => &mut self.cancelled,
            RunStatus::Lost => &mut self.lost,
        };
        *slot += 1;
    }
}

/// Figures of the runs whose tick falls in one window ending now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Window {
    /// Start of the window (RFC 3339); it ends now.
    #[schema(format = DateTime)]
    pub from: String,
    /// Runs counted.
    pub runs: u64,
    pub by_status: ByStatus,
    /// Runs with a final outcome: succeeded, dead, lost, and failed or timed out with no
    /// retry pending.
    pub finished: u64,
    /// `succeeded / finished`; `null` when nothing finished.
    pub success_rate: Option<f64>,
    /// Median duration of the finished runs' last attempts.
    pub duration_p50_ms: Option<u64>,
    /// 95th percentile (nearest rank).
    pub duration_p95_ms: Option<u64>,
    pub duration_max_ms: Option<u64>,
    /// False when the per-job sample cap cut into this window: the figures then cover the
    /// newest runs only.
    pub complete: bool,
}

/// Nearest-rank percentile `q` (0-1] of sorted values.
fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Summarises the runs with `tick >= from_ms`; `complete` says whether the sample holds
/// every such run.
pub fn window<'a>(
    runs: impl IntoIterator<Item = &'a RunSample>,
    from_ms: i64,
    complete: bool,
) -> Window {
    let mut by_status = ByStatus::default();
    let (mut n, mut finished, mut ok) = (0u64, 0u64, 0u64);
    let mut durations = Vec::new();
    for r in runs.into_iter().filter(|r| r.tick_ms >= from_ms) {
        n += 1;
        by_status.add(r.status);
        if r.finished() {
            finished += 1;
            ok += u64::from(r.status == RunStatus::Succeeded);
            durations.extend(r.duration_ms);
        }
    }
    durations.sort_unstable();
    Window {
        from: dotjob_shared::time::rfc3339(from_ms),
        runs: n,
        by_status,
        finished,
        success_rate: (finished > 0).then(|| ok as f64 / finished as f64),
        duration_p50_ms: percentile(&durations, 0.5),
        duration_p95_ms: percentile(&durations, 0.95),
        duration_max_ms: durations.last().copied(),
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tick_ms: i64, status: RunStatus, d: u64, retrying: bool) -> RunSample {
        RunSample {
            tick_ms,
            status,
            duration_ms: Some(d),
            retrying,
        }
    }

    #[test]
    fn counts_rates_and_percentiles() {
        let mut runs: Vec<RunSample> = (1..=20)
            .map(|i| run(1_000 + i, RunStatus::Succeeded, i as u64 * 10, false))
            .collect();
        runs.push(run(1_100, RunStatus::Failed, 5, false));
        runs.push(run(1_100, RunStatus::Failed, 5, true)); // retry pending: not finished
        runs.push(run(1_100, RunStatus::Queued, 0, false));
        runs.push(run(10, RunStatus::Dead, 1, false)); // before the window
        let w = window(&runs, 1_000, true);
        assert_eq!(w.runs, 23);
        assert_eq!(w.by_status.succeeded, 20);
        assert_eq!(w.by_status.failed, 2);
        assert_eq!(w.by_status.dead, 0);
        assert_eq!(w.finished, 21);
        assert!((w.success_rate.unwrap() - 20.0 / 21.0).abs() < 1e-9);
        // 21 durations: 5, 10, 20, …, 200 → p50 is the 11th, p95 the 20th.
        assert_eq!(w.duration_p50_ms, Some(100));
        assert_eq!(w.duration_p95_ms, Some(190));
        assert_eq!(w.duration_max_ms, Some(200));
    }

    #[test]
    fn empty_window_has_no_rate() {
        let w = window(&[], 0, true);
        assert_eq!(w.runs, 0);
        assert_eq!(w.success_rate, None);
        assert_eq!(w.duration_p50_ms, None);
    }
}
