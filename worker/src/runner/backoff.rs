//! The delay between attempts to reach Redis again (reader, claimer, completer, listener):
//! 100 ms doubling to 5 s, back to 100 ms after a success. Each task owns its own.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

/// Exponential reconnect delay.
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Self(FIRST)
    }

    /// The delay to wait now; the next one is twice as long (capped).
    fn step(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX);
        now
    }

    /// Waits the current delay (cut short by `stop`) and doubles it.
    pub(super) async fn wait(&mut self, stop: &CancellationToken) {
        let delay = self.step();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {}
        }
    }

    /// Back to the first delay, after a success.
    pub(super) fn reset(&mut self) {
        self.0 = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new();
        let ms: Vec<u128> = (0..8).map(|_| b.step().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        b.reset();
        assert_eq!(b.step(), FIRST);
    }

    #[tokio::test]
    async fn a_stop_cuts_the_wait_short() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut b = Backoff::new();
        for _ in 0..6 {
            b.step();
        }
        let t0 = std::time::Instant::now();
        b.wait(&stop).await;
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
