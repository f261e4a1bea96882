//! Transport: HTTPS with mutual TLS between nodes (and court software).
//!
//! [`tls`] builds the server's TLS configuration (client certificate required,
//! chained to the exchange CA, checked against CRLs, no session resumption),
//! keeps it live across reloads, and maps an authenticated client certificate to
//! exactly one peer of the directory; [`client`] is the HTTPS client for peers;
//! [`FileBody`] streams a file as an HTTP body. The API server is
//! [`crate::api`]; what travels is in [`crate::bundle`] and [`crate::receipt`].

pub mod client;
pub mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};

/// Streams `left` bytes of a file in 256 KiB frames. One blocking task reads
/// the file with positioned reads (`pread`, no seek) and hands frames over a
/// bounded channel (at most four in flight, so memory stays flat); the frames
/// go out without a copy.
#[derive(Debug)]
pub struct FileBody {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    left: u64,
}

const FRAME: usize = 256 * 1024;

impl FileBody {
    /// Streams the first `left` bytes of `file`.
    pub fn new(file: std::fs::File, left: u64) -> Self {
        Self::at(file, 0, left)
    }

    /// Streams `left` bytes of `file` from byte `start` on.
    pub fn at(file: std::fs::File, start: u64, left: u64) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut pos = start;
            let end = start.saturating_add(left);
            while pos < end {
                let want = FRAME.min(usize::try_from(end - pos).unwrap_or(usize::MAX));
                let mut buf = bytes::BytesMut::zeroed(want);
                let n = match file.read_at(&mut buf, pos) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "bundle file shrank",
                        )));
                        return;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                buf.truncate(n);
                pos += n as u64;
                if tx.blocking_send(Ok(buf.freeze())).is_err() {
                    return; // the client went away
                }
            }
        });
        Self { rx, left }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                Poll::Ready(Some(Err(io::Error::other("the file reader stopped"))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(chunk))) => {
                self.left -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}
