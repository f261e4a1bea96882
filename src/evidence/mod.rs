//! Evidence: the proof of delivery (送达证明) — its container and
//! verification ([`proof`]), its printable page ([`render`]) — and the
//! service that records the node's work in the audit log and writes the
//! proofs ([`service`]).

pub mod proof;
pub mod render;
pub mod service;
