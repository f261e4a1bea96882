//! The court's follow-up: events the court issues about an application it
//! received, how they travel, and what the committee makes of them.
//!
//! On a court node, a clerk drops a folder with `event.toml` (and the
//! documents it lists) into the follow-up folder; the node checks it against
//! its inbox, signs the event and sends it to the committee that delivered
//! the bundle (`POST /v1/cases/{case}/events`). Clerk's guide:
//! `docs/followup-folder.md`.
//!
//! The event format is [`crate::event`]; the committee's case files are
//! [`crate::cases`].
//!
//! - [`casework`]: the committee's service: delivery changes, court events and
//!   notification outcomes onto the timeline, notifications queued, the
//!   clerks' status files ([`status`]) rewritten.
//! - [`form`]: `event.toml`, the clerk's form, with bilingual reasons and stable codes.
//! - [`folder`]: the watched folder (an entry point, like intake's): completeness,
//!   claim, quiet check, validation, reject/accept, signing, recovery.
//! - [`spool`]: `<data_dir>/followup/{outgoing,sent,failed,items}` and the
//!   clerk's notes about each event's fate.
//! - [`send`]: the sender task: posts each waiting event to its committee over
//!   mTLS, with per-event retries; records `sent/` or `failed/`.
//! - [`make`]: a court's node makes and signs one (`sealpost followup make`).

pub mod casework;
pub mod folder;
pub mod form;
pub mod make;
pub mod send;
pub mod spool;
pub mod status;
