//! The worker's metric updates, derived from what the runner already knows (the script
//! verdicts the completer reads, the Redis clock estimate, its own tables): no Redis round
//! trip of their own. Names and HELP texts live in [`dotjob_shared::metrics`].

use std::collections::HashMap;

use dotjob_shared::metrics::{self as m, run_labels};

/// The counters of one group's finished runs, looked up once per (job, verdict).
#[derive(Debug)]
pub(crate) struct RunCounters {
    group: String,
    by_job: HashMap<(String, &'static str), Vec<metrics::Counter>>,
}

impl RunCounters {
    pub(crate) fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            by_job: HashMap::new(),
        }
    }

    /// Counts one recorded attempt by the status the completer read from the script's
    /// verdict: `retry` counts a retry, `dead` a final `dead` run and a dead letter,
    /// anything else a final run.
    pub(crate) fn count(&mut self, job: &str, status: &'static str) {
        let key = (
            if m::job_labels() {
                job.to_owned()
            } else {
                String::new()
            },
            status,
        );
        let group = &self.group;
        let counters = self.by_job.entry(key).or_insert_with(|| match status {
            "retry" => vec![metrics::counter!(m::RETRIES, run_labels(group, job, &[]))],
            "dead" => vec![
                metrics::counter!(m::RUNS, run_labels(group, job, &[("status", "dead")])),
                metrics::counter!(m::DEAD_LETTERS, run_labels(group, job, &[])),
            ],
            s => vec![metrics::counter!(
                m::RUNS,
                run_labels(group, job, &[("status", s)])
            )],
        });
        for c in counters {
            c.increment(1);
        }
    }
}

/// Records one attempt's duration.
pub(crate) fn run_duration(group: &str, job: &str, secs: f64) {
    metrics::histogram!(m::RUN_DURATION, run_labels(group, job, &[])).record(secs);
}

/// Records the start lag of a run whose handler starts now: `now_ms` (the Redis clock
/// estimate, if known) minus the tick; a run held for its tick starts on it (0).
pub(crate) fn start_lag(group: &str, now_ms: Option<i64>, tick_ms: i64) {
    if let Some(now) = now_ms
        && tick_ms > 0
    {
        let lag = (now - tick_ms).max(0) as f64 / 1_000.0;
        metrics::histogram!(m::START_LAG, "group" => group.to_owned()).record(lag);
    }
}

/// Sets the held-for-tick and executing gauges of a worker's group.
pub(crate) fn worker_runs(group: &str, held: usize, executing: usize) {
    metrics::gauge!(m::WORKER_RUNS, "group" => group.to_owned(), "state" => "held")
        .set(held as f64);
    metrics::gauge!(m::WORKER_RUNS, "group" => group.to_owned(), "state" => "executing")
        .set(executing as f64);
}

/// Counts a run fired by a worker (a child job).
pub(crate) fn child_fired(group: &str) {
    metrics::counter!(m::TICKS_FIRED, "group" => group.to_owned(), "kind" => "child").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_their_families() {
        let mut c = RunCounters::new("g");
        c.count("j", "retry");
        c.count("j", "dead");
        c.count("j", "succeeded");
        c.count("j", "succeeded");
        assert_eq!(c.by_job.len(), 3);
        assert_eq!(c.by_job[&("j".to_owned(), "dead")].len(), 2);
        assert_eq!(c.by_job[&("j".to_owned(), "retry")].len(), 1);
    }
}
