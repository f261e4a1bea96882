//! The court's follow-up: events the court issues about an application it
//! received, how they travel, and what the committee makes of them.
//!
//! - [`event`]: the signed event format (`sealpost-event/1`, `docs/event-format.md`).
//! - [`submission`]: a whole submission (event + attachments) verified in one call.
//! - [`make`]: a court's node makes and signs one (`sealpost followup make`).

pub mod event;
pub mod make;
pub mod submission;

pub use event::{Details, Event, EventError, EventId, SignedEvent, Submission};
pub use submission::VerifiedSubmission;
