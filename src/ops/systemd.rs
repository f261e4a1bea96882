//! systemd's notification protocol (`sd_notify`): readiness, reloads,
//! stopping, status lines and the watchdog. Without `NOTIFY_SOCKET` (not under
//! systemd) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The node is up and serving (`READY=1`), with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload has begun (`RELOADING=1` with the monotonic time systemd asks
/// for); [`ready`] ends it.
pub fn reloading() {
    let usec = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = u64::try_from(usec.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(usec.tv_nsec).unwrap_or(0) / 1_000;
    let monotonic = format!("MONOTONIC_USEC={usec}");
    send(&[
        NotifyState::Reloading,
        NotifyState::Custom(&monotonic),
        NotifyState::Status("reloading the configuration"),
    ]);
}

/// The node is stopping (`STOPPING=1`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// A status line for `systemctl status`.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// The watchdog interval systemd expects pings within (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog (`WATCHDOG=1`).
pub fn ping_watchdog() {
    send(&[NotifyState::Watchdog]);
}
