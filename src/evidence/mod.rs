//! Evidence: the proof of delivery (送达证明): its printable page
//! ([`render`]); the container and its verification follow.

pub mod render;
