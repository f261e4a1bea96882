//! Transport: HTTPS with mutual TLS between nodes (and court software).
//!
//! This is the first slice of the transport work: [`tls`] builds the server's
//! TLS configuration (client certificate required, chained to the exchange CA,
//! checked against CRLs, no session resumption) and maps an authenticated
//! client certificate to exactly one peer of the directory. The HTTP API, the
//! court-side client and receipts build on it.

pub mod client;
pub mod receipt;
pub mod server;
pub mod tls;
