//! The court's follow-up: events the court issues about an application it
//! received, how they travel, and what the committee makes of them.
//!
//! - [`event`]: the signed event format (`sealpost-event/1`, `docs/event-format.md`).

pub mod event;

pub use event::{Details, Event, EventError, EventId, SignedEvent, Submission};
