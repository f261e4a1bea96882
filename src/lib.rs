//! # sealpost
//!
//! Signed, end-to-end encrypted exchange of property-preservation applications
//! (财产保全) between a labor-arbitration committee and the courts.
//!
//! ## The map
//!
//! Data flows one way, down this table: a module imports only from its own
//! floor's helpers and the floors below it (no import cycles).
//!
//! | floor | module | job |
//! |---|---|---|
//! | composition root | [`daemon`] | builds the node from a validated configuration; starts every task under one supervisor (restart with backoff, health), signals, reload, readiness, drain |
//! | entry points | [`cli`] | the `sealpost` command: parses and dispatches (`main` is a thin shell over it); `ctl` talks to the daemon |
//! | | [`api`] | the mTLS HTTP API (listing, download with Range, receipts, pushes, online submissions, court events and case views) with its connection budgets |
//! | | [`ops`] | what a sysadmin runs the node with: admin socket ([`ops::admin`]), metrics and health listener ([`ops::http`], [`ops::metrics`]), systemd notify and watchdog, log setup |
//! | | [`demo`] | `sealpost demo`: the committee and two courts on loopback walking the example applications, then the court's follow-up to the applicant's e-mail and the clerks' status file |
//! | services | [`intake`] | the watched folder (an entry point too: [`intake::watch`]): completeness, claim, quiet check (file leases), validation, reject/accept, retries, disk-full pause, crash recovery |
//! | | [`delivery`] | pushes queued bundles to peers that take pushes, and takes their signed receipts |
//! | | [`notify`] | applicant notifications: e-mail (lettre: SMTP or `.eml` files) and SMS (HMAC-signed webhook) from a durable queue with retries and stable message ids (`docs/notifications.md`) |
//! | | [`inbox`] | the receiving side: verify, claim the id, open, sign the receipt once; the court's poller ([`inbox::poll`]); recovery at start |
//! | | [`evidence`] | the proof of delivery (送达证明): its container and offline verification ([`evidence::proof`], `docs/proof-format.md`), its printable bilingual page ([`evidence::render`]), and the service ([`evidence::service`]) that records the outbox's changes in the audit log, signs checkpoints and writes a proof for every stored receipt (beside the clerks' status file too) |
//! | | [`followup`] | the court's follow-up. Court side: the watched folder where court clerks drop events (an entry point too: [`followup::folder`]; `event.toml` read by [`followup::form`]), signing ([`followup::make`] for `sealpost followup make`), the spool of signed events ([`followup::spool`]) and the sender that posts them to the committee over mTLS with per-event retries ([`followup::send`]). Committee side: [`followup::casework`] puts delivery changes, court events and notification outcomes on the case's timeline, queues the applicant's notifications and rewrites the clerks' status file ([`followup::status`]) |
//! | stores and formats | [`outbox`] | bundle files + sled index of deliveries: typed transitions that raise [`outbox::Event`]s to subscribers, waiting index per peer, counters, backup |
//! | | [`audit`] | the hash-chained audit log: records, group-committed appends, torn-tail recovery, signed checkpoints and their witness, verification naming the first bad record, redacted excerpts (`docs/audit-format.md`) |
//! | | [`receipt`] | the signed receipt (proof of delivery): format, signing, verification |
//! | | [`event`] | the court's signed follow-up event (`sealpost-event/1`): kinds and their fields, signing, verification; a whole submission ([`event::VerifiedSubmission`]) |
//! | | [`cases`] | the committee's case files: applicant, bundles, stored court events (files), the timeline (sled tree beside the outbox's) |
//! | | [`bundle`] | the sealed bundle, format version 1: seal, verify, open (spec: `docs/bundle-format.md`) |
//! | | [`application`] | an application folder (`application.toml` + documents) and its validation, with clerk-readable reasons |
//! | | [`transport`] | mTLS plumbing: TLS configuration with CRLs and live swap ([`transport::tls`]), the peer client ([`transport::client`]), a file-backed response body |
//! | foundation | [`config`] | plain settings: the TOML file + environment overrides, validated in two phases into [`config::Config`]; the peer directory; the court's `[followup]` folder ([`config::FollowupSettings`]) |
//! | | [`status`] | how the node is doing, as plain data: readiness of each part ([`status::Health`]) and service counters |
//! | | [`pki`] | the exchange CA, signing keys and certificates, TLS identity, age keys, CRLs |
//! | | [`fsutil`] | atomic, durable file publication, free space, Linux file leases, tree copies for backups |
//! | | [`types`] | newtypes for ids, digests, times; [`types::printable`] for names shown in logs and notes |
//! | | [`zipcheck`] | a zip file's local headers checked against its central directory |
//! | | [`retry`] | capped exponential backoff with jitter, for every retry loop |
//!
//! `notify` keeps its queue in its own module (`notify::queue`, a sled tree
//! beside the outbox's). The services that record evidence (intake, inbox,
//! casework, the court's sender, the admin socket) append to [`audit`]
//! directly; the outbox's changes reach it through [`evidence::service`],
//! a subscriber of the outbox's events.

pub mod api;
pub mod application;
pub mod audit;
pub mod bundle;
pub mod cases;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod event;
pub mod evidence;
pub mod followup;
pub mod fsutil;
pub mod inbox;
pub mod intake;
pub mod notify;
pub mod ops;
pub mod outbox;
pub mod pki;
pub mod receipt;
pub mod retry;
pub mod status;
pub mod transport;
pub mod types;
pub mod zipcheck;
