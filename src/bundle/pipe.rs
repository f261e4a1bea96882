//! The two-stage pipeline shared by sealing and opening: a bounded channel of
//! fixed-size chunks between a thread that does one half of the work and the
//! caller's thread that does the other, so both cores are used and at most
//! `PIPE_DEPTH` chunks (1 MiB) are in flight.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc;

/// How many chunks may wait between the two stages.
pub(super) const PIPE_DEPTH: usize = 4;
/// Size of the chunks handed between the stages.
pub(super) const PIPE_CHUNK: usize = 256 * 1024;

/// A `Write` that hands fixed-size chunks to the other stage.
#[derive(Debug)]
pub(super) struct ChunkSender {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    pub(super) fn new(tx: mpsc::SyncSender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(PIPE_CHUNK),
        }
    }
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the other stage stopped"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (PIPE_CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIPE_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    /// Sends a partly filled chunk; call once at the end.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// A `BufRead` over the chunks the other stage sends; EOF when it hangs up.
#[derive(Debug)]
pub(super) struct ChunkReceiver {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl ChunkReceiver {
    pub(super) fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReceiver {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReceiver {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.chunk = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.chunk[self.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

/// Reads `r` to its end in chunks, sending each to `tx` while the receiver
/// listens; keeps reading (and so hashing) after it hangs up.
pub(super) fn pump(mut r: impl Read, tx: mpsc::SyncSender<Vec<u8>>) -> io::Result<()> {
    let mut listening = true;
    loop {
        let mut buf = vec![0u8; PIPE_CHUNK];
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return Ok(());
        }
        buf.truncate(filled);
        if listening && tx.send(buf).is_err() {
            listening = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_in_order_and_complete() {
        let data: Vec<u8> = (0..(PIPE_CHUNK * 3 + 17)).map(|i| i as u8).collect();
        let (tx, rx) = mpsc::sync_channel(PIPE_DEPTH);
        let got = std::thread::scope(|s| {
            s.spawn(|| pump(&data[..], tx).expect("pump"));
            let mut got = Vec::new();
            ChunkReceiver::new(rx).read_to_end(&mut got).expect("read");
            got
        });
        assert_eq!(got, data);
    }

    #[test]
    fn pump_keeps_reading_after_the_receiver_leaves() {
        let data = vec![7u8; PIPE_CHUNK * 10];
        let (tx, rx) = mpsc::sync_channel(1);
        drop(rx);
        let mut counted = crate::bundle::HashingReader::new(&data[..]);
        pump(&mut counted, tx).expect("pump");
        assert_eq!(counted.count(), data.len() as u64);
    }

    #[test]
    fn sender_writes_whole_chunks_then_the_rest() {
        let (tx, rx) = mpsc::sync_channel(16);
        let mut s = ChunkSender::new(tx);
        s.write_all(&vec![1u8; PIPE_CHUNK + 10]).expect("write");
        s.flush().expect("flush");
        drop(s);
        let sizes: Vec<usize> = rx.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![PIPE_CHUNK, 10]);
    }
}
