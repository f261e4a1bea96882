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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};

/// Streams `left` bytes of a file in 64 KiB frames, with positioned reads
/// (no seek). A frame already in the page cache — the usual case for a bundle
/// just sealed or fetched before — is read inline on the runtime with
/// `preadv2(RWF_NOWAIT)`, which never waits for the disk; only a frame that
/// would have to come from the disk is read on the blocking pool. One frame is
/// read at a time, when hyper asks for it, so memory stays flat, and frames go
/// out without a copy. 64 KiB stays below glibc's `mmap` threshold, so the
/// buffers come from the heap instead of fresh (faulted, zeroed) pages.
#[derive(Debug)]
pub struct FileBody {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
    left: u64,
    /// A frame being read on the blocking pool.
    reading: Option<tokio::task::JoinHandle<io::Result<Bytes>>>,
    /// Whether the file system takes `RWF_NOWAIT` (cleared when it refuses).
    nowait: bool,
}

const FRAME: usize = 64 * 1024;

/// Reads up to `want` bytes of `file` at `pos` with `flags`; a read of
/// nothing before the end the body promised is an error (the file shrank).
fn read_frame(
    file: &std::fs::File,
    pos: u64,
    want: usize,
    flags: rustix::io::ReadWriteFlags,
) -> io::Result<Bytes> {
    let mut buf = vec![0u8; want];
    let n = loop {
        match rustix::io::preadv2(file, &mut [io::IoSliceMut::new(&mut buf)], pos, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "bundle file shrank",
        ));
    }
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

impl FileBody {
    /// Streams the first `left` bytes of `file`.
    pub fn new(file: std::fs::File, left: u64) -> Self {
        Self::at(file, 0, left)
    }

    /// Streams `left` bytes of `file` from byte `start` on.
    pub fn at(file: std::fs::File, start: u64, left: u64) -> Self {
        Self {
            file: std::sync::Arc::new(file),
            pos: start,
            left,
            reading: None,
            nowait: true,
        }
    }

    fn advance(&mut self, frame: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let n = (frame.len() as u64).min(self.left);
        self.pos += n;
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(frame))))
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
        loop {
            if let Some(task) = &mut this.reading {
                let read = std::task::ready!(Pin::new(task).poll(cx));
                this.reading = None;
                return match read {
                    Ok(Ok(frame)) => this.advance(frame),
                    Ok(Err(e)) => Poll::Ready(Some(Err(e))),
                    Err(e) => Poll::Ready(Some(Err(io::Error::other(format!(
                        "the file reader stopped: {e}"
                    ))))),
                };
            }
            let want = FRAME.min(usize::try_from(this.left).unwrap_or(usize::MAX));
            if this.nowait {
                match read_frame(
                    &this.file,
                    this.pos,
                    want,
                    rustix::io::ReadWriteFlags::NOWAIT,
                ) {
                    Ok(frame) => return this.advance(frame),
                    // Not (all) in the page cache: from the disk, on the blocking pool.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // A file system (or kernel) without RWF_NOWAIT for reads.
                    Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => this.nowait = false,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            let (file, pos) = (this.file.clone(), this.pos);
            // Polled at the top of the loop, so that the task wakes this body.
            this.reading = Some(tokio::task::spawn_blocking(move || {
                read_frame(&file, pos, want, rustix::io::ReadWriteFlags::empty())
            }));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, std::fs::File) {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(bytes).expect("write");
        f.as_file().sync_all().expect("sync");
        let opened = std::fs::File::open(f.path()).expect("open");
        (f, opened)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// From the page cache (inline reads) and, once its pages are dropped,
    /// from the disk (the blocking pool): the same bytes, a range too.
    #[tokio::test]
    async fn a_file_streams_whole_and_in_part_from_the_cache_and_from_the_disk() {
        let bytes = data(3 * FRAME + 123);
        let (_keep, file) = file_of(&bytes);
        let got = FileBody::new(file.try_clone().expect("clone"), bytes.len() as u64)
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(got, bytes);
        // Out of the page cache (the file is synced, so its pages can go):
        // the first inline read would wait for the disk and is not done inline.
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        let got = FileBody::at(file, 1000, 2 * FRAME as u64)
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(got, bytes[1000..1000 + 2 * FRAME]);
    }

    /// A file shorter than the body promised ends the body with an error, not
    /// with a short body that would look complete.
    #[tokio::test]
    async fn a_file_that_shrank_is_an_error() {
        let bytes = data(FRAME + 10);
        let (_keep, file) = file_of(&bytes);
        let err = FileBody::new(file, bytes.len() as u64 + 5)
            .collect()
            .await
            .expect_err("a shrunk file");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
