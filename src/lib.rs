//! # sealpost
//!
//! Signed, end-to-end encrypted exchange of property-preservation applications
//! (财产保全) between a labor-arbitration committee and the courts.
//!
//! The pipeline, one module per box:
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the TOML file + environment overrides, validated in two phases into [`config::Config`]; the peer directory |
//! | [`pki`] | the exchange CA, signing keys and certificates, TLS identity, age encryption keys |
//! | [`application`] | an application folder (`application.toml` + documents) and its validation, with clerk-readable reasons |
//! | [`bundle`] | the sealed bundle, format version 1: seal, verify, open (spec: `docs/bundle-format.md`) |
//! | [`intake`] | the watched folder: completeness, claim by rename, quiet check (file leases), validation, reject/accept, per-item retries, disk-full pause, crash recovery |
//! | [`outbox`] | bundle files + sled index of deliveries; the delivery state machine and its deadlines |
//! | [`transport`] | mTLS: TLS configuration with CRLs and live reload ([`transport::tls`]), the HTTP API with its connection budgets ([`transport::server`]), the court's poller ([`transport::client`]), pushes ([`transport::push`]), the receiving inbox ([`transport::inbox`]) and signed receipts ([`transport::receipt`]) |
//! | [`cli`] | the `sealpost` command's subcommands, the daemon and the demo (the binary's `main` is a thin shell over this) |
//! | [`zipcheck`] | format helper: a zip file's local headers checked against its central directory, and the bytes before its first entry (used by the bundle reader and by intake for clerks' zip files) |
//!
//! Shared helpers: [`types`] (newtypes for ids, digests, times; [`types::printable`]
//! for names shown in logs and notes), [`fsutil`] (atomic, durable file
//! publication, free space, Linux file leases) and [`retry`] (capped exponential
//! backoff with jitter, for every retry loop).
//!
//! Modules still to come with later work: `daemon` (the composition root, now in
//! `cli`), `notify` (e-mail), `audit` (hash-chained log), `ops` (metrics, admin
//! socket).

pub mod api;
pub mod application;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod fsutil;
pub mod inbox;
pub mod intake;
pub mod ops;
pub mod outbox;
pub mod pki;
pub mod receipt;
pub mod retry;
pub mod status;
pub mod transport;
pub mod types;
pub mod zipcheck;
