//! Prometheus metrics (`/metrics` on the loopback listener), with
//! `prometheus-client`: OpenMetrics for a scraper that asks for it
//! (`Accept: application/openmetrics-text`, as Prometheus does), the classic
//! text format (0.0.4) otherwise — what `promtool check metrics`, `curl` and
//! older tools read ([`prometheus_text`]).
//!
//! Expiry is exported as a Unix timestamp, as Prometheus advises (a "days
//! left" gauge goes stale between scrapes); days left are
//! `(sealpost_certificate_expiry_timestamp_seconds - time()) / 86400` in PromQL
//! (`docs/operations.md` has alert rules).
//!
//! | metric | what |
//! |---|---|
//! | `sealpost_build_info{version}` | 1 |
//! | `sealpost_ready` | 1 when every part is working (`/readyz`) |
//! | `sealpost_part_ok{part}` | 1 or 0 per part (`api`, `intake`, `poller:<peer>`, `disk`, …) |
//! | `sealpost_deliveries{state,peer}` | deliveries in each state, per recipient (queue depth) |
//! | `sealpost_oldest_waiting_seconds{peer}` | age of the oldest delivery still waiting for `peer` |
//! | `sealpost_delivery_events_total{change,peer}` | state changes since start (queued, fetched, delivered, failed, dead, …) |
//! | `sealpost_downloads_total{peer}` | bundle downloads by each peer (every GET: mass download is how document-exchange breaches end) |
//! | `sealpost_intake_total{outcome}` | applications accepted and rejected since start |
//! | `sealpost_certificate_expiry_timestamp_seconds{certificate}` | when this node's TLS and signing certificates and the exchange CA expire (Unix time) |
//! | `sealpost_crl_next_update_timestamp_seconds{file}` | each CRL's `nextUpdate` (Unix time; past: stale) |
//! | `sealpost_disk_free_bytes{path}` | free space where the data and the clerks' folders are |
//! | `sealpost_task_restarts_total{task}` | supervised tasks restarted after they failed |

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::outbox::{Event, Outbox};
use crate::status::{Counters, Health};
use crate::types::Timestamp;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatePeer {
    state: String,
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangePeer {
    change: String,
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabel {
    part: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Certificate {
    certificate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct File {
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Task {
    task: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    ready: Gauge,
    parts: Family<PartLabel, Gauge>,
    deliveries: Family<StatePeer, Gauge>,
    oldest_waiting: Family<Peer, FloatGauge>,
    events: Family<ChangePeer, Counter>,
    downloads: Family<Peer, Counter>,
    intake: Family<Outcome, Counter>,
    cert_expiry: Family<Certificate, FloatGauge>,
    crl_next_update: Family<File, FloatGauge>,
    disk_free: Family<PathLabel, Gauge>,
    restarts: Family<Task, Counter>,
    notify_pending: Family<ChannelLabel, Gauge>,
    notify_oldest: Family<ChannelLabel, FloatGauge>,
    notify_sent: Family<ChannelLabel, Counter>,
    notify_failed: Family<ChannelLabel, Counter>,
    audit_records: Gauge,
    audit_failures: Counter,
    audit_checkpoint: Gauge,
    proofs_written: Counter,
    proofs_pending: Gauge,
    /// What the counters above last absorbed from [`Counters`].
    seen: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sealpost");
        let build: Family<Version, Gauge> = Family::default();
        build
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The sealpost version running", build);
        let mut m = Self {
            ready: Gauge::default(),
            parts: Family::default(),
            deliveries: Family::default(),
            oldest_waiting: Family::default(),
            events: Family::default(),
            downloads: Family::default(),
            intake: Family::default(),
            cert_expiry: Family::default(),
            crl_next_update: Family::default(),
            disk_free: Family::default(),
            restarts: Family::default(),
            notify_pending: Family::default(),
            notify_oldest: Family::default(),
            notify_sent: Family::default(),
            notify_failed: Family::default(),
            audit_records: Gauge::default(),
            audit_failures: Counter::default(),
            audit_checkpoint: Gauge::default(),
            proofs_written: Counter::default(),
            proofs_pending: Gauge::default(),
            seen: Mutex::new(BTreeMap::new()),
            registry,
        };
        let r = &mut m.registry;
        r.register(
            "ready",
            "1 when every part of the node is working",
            m.ready.clone(),
        );
        r.register(
            "part_ok",
            "1 when this part of the node is working",
            m.parts.clone(),
        );
        r.register(
            "deliveries",
            "Deliveries in each state, per recipient",
            m.deliveries.clone(),
        );
        r.register(
            "oldest_waiting_seconds",
            "Age of the oldest delivery still waiting for the peer",
            m.oldest_waiting.clone(),
        );
        r.register(
            "delivery_events",
            "Delivery state changes since start",
            m.events.clone(),
        );
        r.register(
            "downloads",
            "Bundle downloads by each peer since start",
            m.downloads.clone(),
        );
        r.register(
            "intake",
            "Applications accepted and rejected since start",
            m.intake.clone(),
        );
        r.register(
            "certificate_expiry_timestamp_seconds",
            "When the certificate expires (Unix time)",
            m.cert_expiry.clone(),
        );
        r.register(
            "crl_next_update_timestamp_seconds",
            "The CRL's nextUpdate: a fresh CRL is due then (Unix time)",
            m.crl_next_update.clone(),
        );
        r.register(
            "disk_free_bytes",
            "Free space where the node keeps its data and the clerks' folders",
            m.disk_free.clone(),
        );
        r.register(
            "task_restarts",
            "Supervised tasks restarted after they failed",
            m.restarts.clone(),
        );
        r.register(
            "notifications_pending",
            "Notifications to applicants waiting to be sent (or being sent), per channel",
            m.notify_pending.clone(),
        );
        r.register(
            "notifications_oldest_pending_seconds",
            "Age of the oldest notification still waiting to be sent, per channel",
            m.notify_oldest.clone(),
        );
        r.register(
            "notifications_sent",
            "Notifications accepted by the mail relay or SMS gateway, per channel",
            m.notify_sent.clone(),
        );
        r.register(
            "notifications_failed",
            "Notifications that failed for good (refused address, permanent error), per channel",
            m.notify_failed.clone(),
        );
        r.register(
            "audit_records",
            "Records in the audit chain (the last record's seq)",
            m.audit_records.clone(),
        );
        r.register(
            "audit_append_failures",
            "Audit records that could not be appended (the log's health shows why)",
            m.audit_failures.clone(),
        );
        r.register(
            "audit_last_checkpoint_timestamp_seconds",
            "When this process last signed an audit checkpoint (Unix time; 0: not yet)",
            m.audit_checkpoint.clone(),
        );
        r.register(
            "proofs_written",
            "Proofs of delivery written",
            m.proofs_written.clone(),
        );
        r.register(
            "proofs_pending",
            "Delivered applications whose proof of delivery is still to be made",
            m.proofs_pending.clone(),
        );
        m
    }

    /// Counts an outbox event (subscribed to the outbox's bus).
    pub fn observe(&self, e: &Event) {
        self.events
            .get_or_create(&ChangePeer {
                change: e.name().to_owned(),
                peer: e.peer.to_string(),
            })
            .inc();
    }

    /// Brings the counters derived from `counters` up to date: each grows by
    /// what was added since the last scrape.
    fn catch_up(&self, counters: &Counters) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut delta = |key: String, total: u64| -> u64 {
            let last = seen.entry(key).or_insert(0);
            let d = total.saturating_sub(*last);
            *last = total;
            d
        };
        let (accepted, rejected) = counters.intake();
        for (outcome, total) in [("accepted", accepted), ("rejected", rejected)] {
            let d = delta(format!("intake/{outcome}"), total);
            self.intake
                .get_or_create(&Outcome {
                    outcome: outcome.to_owned(),
                })
                .inc_by(d);
        }
        for (peer, total) in counters.downloads() {
            let d = delta(format!("downloads/{peer}"), total);
            self.downloads
                .get_or_create(&Peer {
                    peer: peer.to_string(),
                })
                .inc_by(d);
        }
        for (task, total) in counters.restarts() {
            let d = delta(format!("restarts/{task}"), total);
            self.restarts
                .get_or_create(&Task { task: task.clone() })
                .inc_by(d);
        }
    }

    /// Reads everything that is measured at scrape time and renders the
    /// registry.
    pub fn render(
        &self,
        config: &Config,
        outbox: &Outbox,
        counters: &Counters,
        health: &Health,
        notifier: Option<&crate::notify::Notifier>,
        evidence: Option<&crate::evidence::service::Evidence>,
    ) -> String {
        let now = Timestamp::now();
        if let Some(ev) = evidence {
            let st = ev.audit().stats();
            let (written, _, pending) = ev.counts();
            self.audit_records
                .set(i64::try_from(st.head_seq).unwrap_or(i64::MAX));
            self.audit_checkpoint
                .set(i64::try_from(st.last_checkpoint_unix).unwrap_or(i64::MAX));
            self.proofs_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for (key, total, counter) in [
                ("audit/failed", st.failed, &self.audit_failures),
                ("proofs/written", written, &self.proofs_written),
            ] {
                let last = seen.entry(key.to_owned()).or_insert(0);
                counter.inc_by(total.saturating_sub(*last));
                *last = total.max(*last);
            }
        }
        let unix = |t: Timestamp| t.unix() as f64;
        self.ready.set(i64::from(health.is_ready()));
        for (name, part) in health.parts() {
            self.parts
                .get_or_create(&PartLabel { part: name })
                .set(i64::from(part.ok));
        }
        if let Ok(counts) = outbox.counts() {
            for (state, peer, n) in counts {
                self.deliveries
                    .get_or_create(&StatePeer {
                        state,
                        peer: peer.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        if let Ok(waiting) = outbox.all_waiting() {
            let mut oldest: BTreeMap<String, Timestamp> = BTreeMap::new();
            for d in waiting {
                let e = oldest.entry(d.peer.to_string()).or_insert(d.queued_at);
                if d.queued_at < *e {
                    *e = d.queued_at;
                }
            }
            self.oldest_waiting.clear();
            for (peer, t) in oldest {
                self.oldest_waiting
                    .get_or_create(&Peer { peer })
                    .set((now.unix() - t.unix()).max(0) as f64);
            }
        }
        self.catch_up(counters);
        if let Some(stats) = notifier.and_then(|n| n.stats(now).ok()) {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            self.notify_oldest.clear();
            for (channel, st) in stats.by_channel {
                let label = ChannelLabel {
                    channel: channel.name().to_owned(),
                };
                self.notify_pending
                    .get_or_create(&label)
                    .set(i64::try_from(st.pending).unwrap_or(i64::MAX));
                if let Some(age) = st.oldest_pending_age_secs {
                    self.notify_oldest.get_or_create(&label).set(age as f64);
                }
                for (what, total, family) in [
                    ("sent", st.sent, &self.notify_sent),
                    ("failed", st.failed, &self.notify_failed),
                ] {
                    let last = seen.entry(format!("notify/{what}/{channel}")).or_insert(0);
                    family
                        .get_or_create(&label)
                        .inc_by(total.saturating_sub(*last));
                    *last = total.max(*last);
                }
            }
        }
        let mut certs = vec![
            ("tls".to_owned(), config.keys.tls.summary.not_after),
            (
                "signing".to_owned(),
                config.keys.signing.cert().summary().not_after,
            ),
        ];
        for (i, ca) in config.trust.summaries().enumerate() {
            certs.push((format!("exchange-ca-{i}"), ca.not_after));
        }
        for (name, not_after) in certs {
            self.cert_expiry
                .get_or_create(&Certificate { certificate: name })
                .set(unix(not_after));
        }
        for file in &config.crl_files {
            if let Ok(updates) = crate::pki::crl_next_update(file) {
                if let Some(next) = updates.into_iter().flatten().min() {
                    self.crl_next_update
                        .get_or_create(&File {
                            file: file.display().to_string(),
                        })
                        .set(unix(next));
                }
            }
        }
        for (name, path) in [
            ("data", &config.node.data_dir),
            ("intake", &config.intake.root),
        ] {
            if let Ok(free) = crate::fsutil::free_space(path) {
                self.disk_free
                    .get_or_create(&PathLabel {
                        path: name.to_owned(),
                    })
                    .set(i64::try_from(free).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition
/// as `prometheus-client` writes it: a counter's `# HELP`/`# TYPE` name gets
/// its samples' `_total`, `# UNIT` and `# EOF` go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = lines
                .peek()
                .is_some_and(|t| *t == format!("# TYPE {name} counter"));
            if counter {
                out.push_str(&format!(
                    "# HELP {name}_total {help}\n# TYPE {name}_total counter\n"
                ));
                lines.next();
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_name_and_openmetrics_markers_go() {
        let om = "# HELP x_downloads Downloads.\n# TYPE x_downloads counter\nx_downloads_total{peer=\"a\"} 1\n# HELP x_ready Ready.\n# TYPE x_ready gauge\nx_ready 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP x_downloads_total Downloads.\n# TYPE x_downloads_total counter\nx_downloads_total{peer=\"a\"} 1\n# HELP x_ready Ready.\n# TYPE x_ready gauge\nx_ready 1\n"
        );
    }

    #[test]
    fn every_metric_is_rendered_with_help() {
        let m = Metrics::new();
        m.catch_up(&Counters::default());
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
        let text = prometheus_text(&out);
        assert!(
            text.contains("# TYPE sealpost_intake_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}
