//! Supervision: every long-running task of the node is started here, under a
//! name. A task that ends while the node is not stopping — it returned, failed
//! or panicked — is logged at error priority, counted
//! (`sealpost_task_restarts_total`), marked in the health registry and
//! restarted after a backoff (1 s doubling to 5 min, reset after 10 min of
//! good running). Nothing is ever silently gone.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::status::{Counters, Health};

/// First and longest wait before a failed task is started again.
const RESTART: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));
/// A task that ran this long before failing starts its backoff afresh.
const GOOD_RUN: Duration = Duration::from_secs(600);

/// Starts and restarts the node's tasks.
#[derive(Debug, Clone)]
pub struct Supervisor {
    health: Health,
    counters: Counters,
}

impl Supervisor {
    /// Reports into `health` (part `task:<name>`, process scope) and counts
    /// restarts into `counters`.
    pub fn new(health: Health, counters: Counters) -> Self {
        Self { health, counters }
    }

    /// Runs `make()`'s future in `tracker` until `stop` is cancelled, starting
    /// it again whenever it ends before that. The future must itself return
    /// soon after `stop` is cancelled.
    pub fn spawn<F, Fut>(
        &self,
        tracker: &TaskTracker,
        name: String,
        stop: CancellationToken,
        make: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let health = self.health.clone();
        let counters = self.counters.clone();
        tracker.spawn(async move {
            let part = format!("task:{name}");
            let mut failures = 0u32;
            loop {
                health.set_process(&part, true, "running");
                let started = Instant::now();
                // A task of its own, so that a panic ends only this attempt.
                let outcome = tokio::spawn(make()).await;
                if stop.is_cancelled() {
                    health.remove(&part);
                    return;
                }
                let why = match outcome {
                    Ok(Ok(())) => "it ended unexpectedly".to_owned(),
                    Ok(Err(e)) => e,
                    Err(e) if e.is_panic() => {
                        let p = e.into_panic();
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".to_owned());
                        format!("it panicked: {msg}")
                    }
                    Err(e) => e.to_string(),
                };
                if started.elapsed() >= GOOD_RUN {
                    failures = 0;
                }
                let wait = crate::retry::delay(failures, RESTART.0, RESTART.1);
                failures = failures.saturating_add(1);
                counters.restarted(&name);
                tracing::error!(task = %name, error = %why, attempt = failures, restart_in = ?wait, "a task of the node failed; restarting it");
                health.set_process(
                    &part,
                    false,
                    format!("failed ({why}); restarting in {}", humantime::format_duration(round(wait))),
                );
                tokio::select! {
                    _ = stop.cancelled() => {
                        health.remove(&part);
                        return;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_fails_or_panics_is_restarted_counted_and_reported() {
        let health = Health::default();
        let counters = Counters::default();
        let sup = Supervisor::new(health.clone(), counters.clone());
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        {
            let runs = runs.clone();
            let stop2 = stop.clone();
            sup.spawn(&tracker, "flaky".into(), stop.clone(), move || {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                let stop = stop2.clone();
                let tx = tx.clone();
                async move {
                    let _ = tx.send(n);
                    match n {
                        0 => Err("disk on fire".to_owned()),
                        1 => panic!("boom"),
                        _ => {
                            stop.cancelled().await;
                            Ok(())
                        }
                    }
                }
            });
        }
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.recv().await, Some(1), "restarted after an error");
        assert_eq!(rx.recv().await, Some(2), "restarted after a panic");
        assert_eq!(counters.restarts().get("flaky"), Some(&2));
        assert!(health.is_alive(), "running again: {:?}", health.parts());
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(
            health.parts().is_empty(),
            "a stopped task leaves no part behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_task_marks_the_node_not_alive_until_it_runs_again() {
        let health = Health::default();
        let sup = Supervisor::new(health.clone(), Counters::default());
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        sup.spawn(&tracker, "broken".into(), stop.clone(), || async {
            Err("cannot bind".to_owned())
        });
        // Let the first attempt fail; the task then sleeps in its backoff.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let p = health.parts();
        let part = p.get("task:broken").expect("reported");
        assert!(!part.ok && part.detail.contains("cannot bind"), "{part:?}");
        assert!(!health.is_alive());
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
