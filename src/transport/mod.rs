//! Transport: HTTPS with mutual TLS between nodes (and court software).
//!
//! This is the first slice of the transport work: [`tls`] builds the server's
//! TLS configuration (client certificate required, chained to the exchange CA,
//! checked against CRLs, no session resumption) and maps an authenticated
//! client certificate to exactly one peer of the directory. The HTTP API, the
//! court-side client and receipts build on it.

pub mod client;
pub mod inbox;
pub mod receipt;
pub mod server;
pub mod tls;

pub mod push;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::io::{AsyncRead, ReadBuf};

/// Streams `left` bytes of a file in 64 KiB frames (memory stays flat).
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Vec<u8>,
}

impl FileBody {
    /// Streams the next `left` bytes of `file`.
    pub fn new(file: tokio::fs::File, left: u64) -> Self {
        Self {
            file,
            left,
            buf: vec![0; 64 * 1024],
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = this
            .buf
            .len()
            .min(usize::try_from(this.left).unwrap_or(usize::MAX));
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "bundle file shrank",
                    ))));
                }
                this.left -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
                    &this.buf[..n],
                )))))
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
