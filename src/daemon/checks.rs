//! The node's periodic checks: the conditions it depends on (free disk,
//! certificates and CRLs in date), the store answering, the outbox's deadlines
//! (sweep), expiry warnings (at start and daily), and the systemd watchdog.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::outbox::Outbox;
use crate::status::Health;
use crate::transport::tls::{Live, Shared};
use crate::types::{human_bytes, Timestamp};

/// How often the conditions are checked.
const EVERY: Duration = Duration::from_secs(30);
/// How often the outbox's deadlines are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How often expiry warnings are repeated.
const WARN_EVERY: Duration = Duration::from_secs(86_400);

/// Health part names.
pub const DISK: &str = "disk";
/// Certificates in date.
pub const CERTIFICATES: &str = "certificates";
/// CRLs readable and not past their nextUpdate.
pub const CRLS: &str = "crls";
/// The store answering (process scope).
pub const STORE: &str = "store";

/// Something that expires: a certificate or a CRL's `nextUpdate`.
#[derive(Debug, Clone)]
pub struct Expiring {
    /// What it is, in words (`the TLS certificate`, `CRL /etc/…/ca.crl`).
    pub what: String,
    /// When.
    pub at: Timestamp,
    /// Whether it is a CRL (stale rather than expired).
    pub crl: bool,
}

/// Everything that expires, from the configuration in force.
pub fn expiring(config: &Config) -> (Vec<Expiring>, Vec<String>) {
    let mut list = vec![
        Expiring {
            what: "the TLS certificate".into(),
            at: config.keys.tls.summary.not_after,
            crl: false,
        },
        Expiring {
            what: "the signing certificate".into(),
            at: config.keys.signing.cert().summary().not_after,
            crl: false,
        },
    ];
    for ca in config.trust.summaries() {
        list.push(Expiring {
            what: format!("the exchange CA certificate {}", ca.subject),
            at: ca.not_after,
            crl: false,
        });
    }
    let mut unreadable = Vec::new();
    for file in &config.crl_files {
        match crate::pki::crl_next_update(file) {
            Ok(updates) => {
                if let Some(next) = updates.into_iter().flatten().min() {
                    list.push(Expiring {
                        what: format!("CRL {}", file.display()),
                        at: next,
                        crl: true,
                    });
                }
            }
            Err(e) => unreadable.push(format!("CRL {}: {e}", file.display())),
        }
    }
    (list, unreadable)
}

fn days(at: Timestamp, now: Timestamp) -> i64 {
    (at.unix() - now.unix()).div_euclid(86_400)
}

/// Logs a warning for everything that expires within `window_days` (or has
/// expired). Returns how many warnings were logged.
pub fn warn_expiring(config: &Config, now: Timestamp) -> usize {
    let (list, unreadable) = expiring(config);
    let window = i64::from(config.expiry_warning_days);
    let mut n = 0;
    for e in list {
        let d = days(e.at, now);
        if e.at <= now {
            n += 1;
            if e.crl {
                tracing::error!(what = %e.what, next_update = %e.at, "a CRL is past its nextUpdate: publish a fresh one (revocations may be missed)");
            } else {
                tracing::error!(what = %e.what, not_after = %e.at, "a certificate has expired");
            }
        } else if d < window {
            n += 1;
            if e.crl {
                tracing::warn!(what = %e.what, next_update = %e.at, days = d, "a CRL needs refreshing soon");
            } else {
                tracing::warn!(what = %e.what, not_after = %e.at, days = d, "a certificate expires soon: renew it");
            }
        }
    }
    for u in unreadable {
        n += 1;
        tracing::error!(problem = %u, "cannot read a CRL");
    }
    n
}

/// Checks the conditions once and reports them into `health`.
pub fn check(config: &Config, outbox: &Outbox, health: &Health, now: Timestamp) {
    // Free space where the node writes.
    let min = config.intake.min_free_space;
    let mut places: Vec<(&str, PathBuf)> = vec![("node.data_dir", config.node.data_dir.clone())];
    if config.node.role != crate::config::Role::Court {
        places.push(("intake.root", config.intake.root.clone()));
    }
    let mut short = Vec::new();
    let mut free_text = Vec::new();
    for (key, path) in &places {
        match crate::fsutil::free_space(path) {
            Ok(free) => {
                free_text.push(format!("{key}: {} free", human_bytes(free)));
                if free < min {
                    short.push(format!(
                        "{key} ({}) has {} free, below intake.min_free_space {}",
                        path.display(),
                        human_bytes(free),
                        human_bytes(min)
                    ));
                }
            }
            Err(e) => short.push(format!("{key} ({}): {e}", path.display())),
        }
    }
    if short.is_empty() {
        health.set(DISK, true, free_text.join("; "));
    } else {
        health.set(DISK, false, short.join("; "));
    }

    // Certificates and CRLs in date.
    let (list, unreadable) = expiring(config);
    let mut expired = Vec::new();
    let mut stale = unreadable;
    let mut soonest: Option<&Expiring> = None;
    for e in &list {
        if e.at <= now {
            if e.crl {
                stale.push(format!("{} is past its nextUpdate ({})", e.what, e.at));
            } else {
                expired.push(format!("{} expired on {}", e.what, e.at));
            }
        }
        if !e.crl && soonest.is_none_or(|s| e.at < s.at) {
            soonest = Some(e);
        }
    }
    if let Some(not_before) = [
        config.keys.tls.summary.not_before,
        config.keys.signing.cert().summary().not_before,
    ]
    .into_iter()
    .find(|t| *t > now)
    {
        expired.push(format!(
            "a certificate of this node is not valid before {not_before}"
        ));
    }
    if expired.is_empty() {
        let detail = soonest.map_or_else(String::new, |s| {
            format!(
                "in date; the first to expire is {} in {} days",
                s.what,
                days(s.at, now)
            )
        });
        health.set(CERTIFICATES, true, detail);
    } else {
        health.set(CERTIFICATES, false, expired.join("; "));
    }
    if config.crl_files.is_empty() {
        health.remove(CRLS);
    } else if stale.is_empty() {
        health.set(
            CRLS,
            true,
            format!("{} CRL file(s) in date", config.crl_files.len()),
        );
    } else {
        health.set(CRLS, false, stale.join("; "));
    }

    // The store answers and can make a change durable.
    match outbox.probe(now) {
        Ok(()) => health.set_process(STORE, true, "the outbox store answers"),
        Err(e) => health.set_process(STORE, false, format!("the outbox store fails: {e}")),
    }
}

/// Runs the checks every 30 s, the sweep every hour and the expiry warnings
/// every day (the first of each at once), until `stop`.
pub async fn run(
    live: Shared<Live>,
    outbox: Outbox,
    health: Health,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut last_sweep: Option<tokio::time::Instant> = None;
    let mut last_warn: Option<tokio::time::Instant> = None;
    loop {
        let config = live.get().config.clone();
        let now_i = tokio::time::Instant::now();
        let sweep = last_sweep.is_none_or(|t| now_i.duration_since(t) >= SWEEP_EVERY);
        let warn = last_warn.is_none_or(|t| now_i.duration_since(t) >= WARN_EVERY);
        let (o, h) = (outbox.clone(), health.clone());
        tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            check(&config, &o, &h, now);
            if warn {
                warn_expiring(&config, now);
            }
            if sweep {
                match o.sweep(now) {
                    Ok(s) if !s.expired.is_empty() => {
                        tracing::info!(
                            expired = s.expired.len(),
                            "outbox sweep: deliveries past their deadline went dead"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox sweep failed; retried in an hour"),
                }
            }
        })
        .await
        .map_err(|e| format!("the checks failed: {e}"))?;
        if sweep {
            last_sweep = Some(now_i);
        }
        if warn {
            last_warn = Some(now_i);
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Pings systemd's watchdog at a third of its interval, while the node's own
/// machinery works (`Health::is_alive`); when it does not, the pings stop and
/// systemd restarts the node once the interval has passed.
pub async fn watchdog(
    interval: Duration,
    health: Health,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut withheld = false;
    loop {
        // The first ping waits a third of the interval too: the tasks just
        // started have then had time to report a failure at start.
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval / 3) => {}
        }
        if health.is_alive() {
            crate::ops::systemd::ping_watchdog();
            if withheld {
                tracing::info!("the node works again; watchdog pings resumed");
            }
            withheld = false;
        } else if !withheld {
            let what: Vec<String> = health
                .problems()
                .into_iter()
                .filter(|(_, p)| p.process)
                .map(|(n, p)| format!("{n}: {}", p.detail))
                .collect();
            tracing::error!(problems = %what.join("; "), "the node's own machinery fails; watchdog pings withheld (systemd restarts the node if this lasts)");
            withheld = true;
        }
    }
}
