//! The court's follow-up: events the court issues about an application it
//! received, how they travel, and what the committee makes of them.
//!
//! - [`event`]: the signed event format (`sealpost-event/1`, `docs/event-format.md`).
//! - [`cases`]: the committee's case files and timelines (store).
//! - [`casework`]: the committee's service: delivery changes, court events and
//!   notification outcomes onto the timeline, notifications queued, the
//!   clerks' status files ([`status`]) rewritten.

pub mod cases;
pub mod casework;
pub mod event;
pub mod status;

pub use event::{Details, Event, EventError, EventId, SignedEvent, Submission};
