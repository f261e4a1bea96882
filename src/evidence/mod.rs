//! Evidence: the proof of delivery (送达证明): its container and its
//! verification ([`proof`]) and its printable page ([`render`]).

pub mod proof;
pub mod render;
