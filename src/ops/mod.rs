//! The operations surface: what a sysadmin runs the node with. systemd's
//! notification protocol and watchdog ([`systemd`]), the log's destination
//! and format ([`logging`]), Prometheus metrics ([`metrics`]) and the
//! loopback listener serving them with the health checks ([`http`]), and the
//! admin socket behind `sealpost ctl` ([`admin`]).
//!
//! Everything here reads the node's state (`crate::status`, the outbox, the
//! configuration in force); nothing here makes delivery decisions.

pub mod admin;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod systemd;
