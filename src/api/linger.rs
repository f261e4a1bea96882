//! Lingering close (nginx's `lingering_close`; point 6 of the module doc of
//! [`super`]).
//!
//! A request answered before its body was read — `403`, `404`, `413`, `408`,
//! any refusal decided from the head — ends its connection with the rest of
//! the body still on its way. Were the socket simply closed, the kernel would
//! answer the unread bytes (those already received and those still coming)
//! with a TCP reset, and a reset destroys the answer in flight: the client
//! sees `ECONNRESET` instead of the `404` it was sent, and a court that
//! resends after a lost connection would resend for ever.
//!
//! So once the last answer is written, the connection is closed in two steps:
//!
//! 1. **Half-close.** TLS `close_notify`, then the TCP write side is shut
//!    (a FIN): the client gets the whole answer and then the end of the stream.
//! 2. **Linger.** What the client still sends is read from the TCP socket and
//!    thrown away, undecrypted, until the client closes its side — at most
//!    [`LINGER_BYTES`] bytes, for at most [`LINGER_TIME`] in all, and never
//!    more than [`LINGER_IDLE`] waiting for the next bytes. Then the socket is
//!    closed. A client sending more than that, or stalling, is reset as before.
//!
//! A connection that ends because the client closed it (every keep-alive
//! connection whose bodies were read) finds the end of its stream at the first
//! read and is closed at once. A lingering connection keeps its place in the
//! authenticated budget ([`super::budget`]) until it is closed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::server::TlsStream;

/// The most a client may still send after the answer (then it is reset).
pub(super) const LINGER_BYTES: u64 = 4 << 20;
/// The longest a connection lingers, the half-close included.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(5);
/// The longest wait for the client's next bytes while lingering.
pub(super) const LINGER_IDLE: Duration = Duration::from_secs(1);

/// How a lingering close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client closed its side: a clean close.
    ClientClosed,
    /// The client sent nothing for [`LINGER_IDLE`].
    Idle,
    /// [`LINGER_TIME`] ran out (the half-close included).
    TimeUp,
    /// The client sent more than [`LINGER_BYTES`].
    TooMuch,
    /// The socket failed (the client reset it, most likely).
    Failed,
}

/// Half-closes `tls` (close_notify, then FIN) and lingers on its socket; see
/// the module doc. Returns how it ended and how many bytes were thrown away.
pub(super) async fn close(mut tls: TlsStream<TcpStream>) -> (Ended, u64) {
    let deadline = Instant::now() + LINGER_TIME;
    match timeout_at(deadline, tls.shutdown()).await {
        Err(_) => return (Ended::TimeUp, 0),
        Ok(Err(_)) => return (Ended::Failed, 0),
        Ok(Ok(())) => {}
    }
    // Whatever TLS records still come are not decrypted: the socket is read raw.
    let (tcp, _) = tls.into_inner();
    discard(tcp, deadline).await
}

/// Reads and throws away what `io` yields until it ends or a bound of the
/// module doc is reached (`deadline` for the total time).
pub(super) async fn discard<R: AsyncRead + Unpin>(io: R, deadline: Instant) -> (Ended, u64) {
    // One byte past the bound, to tell "exactly the bound, then closed" from "more".
    let mut io = io.take(LINGER_BYTES + 1);
    let mut buf = vec![0u8; 8 * 1024];
    let mut thrown: u64 = 0;
    loop {
        let until = deadline.min(Instant::now() + LINGER_IDLE);
        match timeout_at(until, io.read(&mut buf)).await {
            Err(_) if until == deadline => return (Ended::TimeUp, thrown),
            Err(_) => return (Ended::Idle, thrown),
            Ok(Err(_)) => return (Ended::Failed, thrown),
            Ok(Ok(0)) if thrown > LINGER_BYTES => return (Ended::TooMuch, thrown),
            Ok(Ok(0)) => return (Ended::ClientClosed, thrown),
            Ok(Ok(n)) => thrown += n as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn deadline() -> Instant {
        Instant::now() + LINGER_TIME
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_finishes_sending_and_closes_is_closed_cleanly() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let sender = tokio::spawn(async move {
            client
                .write_all(&vec![b'x'; 3_000_000])
                .await
                .expect("send");
            client.shutdown().await.expect("close");
        });
        assert_eq!(
            discard(server, deadline()).await,
            (Ended::ClientClosed, 3_000_000)
        );
        sender.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_already_closed_costs_one_read() {
        let (client, server) = tokio::io::duplex(1024);
        drop(client);
        let started = Instant::now();
        assert_eq!(discard(server, deadline()).await, (Ended::ClientClosed, 0));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_idle_timeout() {
        let (_client, server) = tokio::io::duplex(1024);
        let started = Instant::now();
        assert_eq!(discard(server, deadline()).await, (Ended::Idle, 0));
        assert_eq!(started.elapsed(), LINGER_IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_trickling_is_dropped_when_the_time_is_up() {
        let (mut client, server) = tokio::io::duplex(1024);
        let _sender = tokio::spawn(async move {
            // A byte every half idle timeout, for ever.
            while client.write_all(b"x").await.is_ok() {
                tokio::time::sleep(LINGER_IDLE / 2).await;
            }
        });
        let started = Instant::now();
        let (ended, _) = discard(server, deadline()).await;
        assert_eq!(ended, Ended::TimeUp);
        assert_eq!(started.elapsed(), LINGER_TIME);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_too_much_is_dropped_at_the_bound() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let _sender = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            while client.write_all(&chunk).await.is_ok() {}
        });
        assert_eq!(
            discard(server, deadline()).await,
            (Ended::TooMuch, LINGER_BYTES + 1)
        );
    }
}
