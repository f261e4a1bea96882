//! When is a drop complete: file set, sizes and times unchanged for
//! `intake.settle` across two scans (or a `READY` marker); and the snapshots
//! that also tell whether a claimed item changed while it was sealed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::READY;

/// Decides when an item is complete (see the module doc).
#[derive(Debug, Default)]
pub struct Scanner {
    seen: HashMap<OsString, (Snapshot, Instant)>,
    present: Vec<OsString>,
}

/// One entry of a [`Snapshot`]: name, inode, size, modification and change
/// times (ctime changes on every write, whoever makes it), whether a folder.
pub(crate) type Stamp = (OsString, u64, u64, (i64, i64), (i64, i64), bool);

/// File set, sizes and times of an item (the item and its direct entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(pub(crate) Vec<Stamp>);

fn stamp(name: OsString, m: &fs::Metadata) -> Stamp {
    (
        name,
        m.ino(),
        m.size(),
        (m.mtime(), m.mtime_nsec()),
        (m.ctime(), m.ctime_nsec()),
        m.is_dir(),
    )
}

pub(crate) fn snapshot(path: &Path) -> io::Result<Snapshot> {
    let meta = fs::symlink_metadata(path)?;
    let mut v = vec![stamp(OsString::new(), &meta)];
    if meta.is_dir() {
        for e in fs::read_dir(path)? {
            let e = e?;
            let m = e.metadata()?;
            v.push(stamp(e.file_name(), &m));
        }
    }
    v.sort();
    Ok(Snapshot(v))
}

impl Scanner {
    /// Items in `intake/` that are complete now. Call once per scan.
    pub fn ready(
        &mut self,
        intake: &Path,
        settle: Duration,
        now: Instant,
    ) -> io::Result<Vec<OsString>> {
        let mut ready = Vec::new();
        let mut present = Vec::new();
        for e in fs::read_dir(intake)? {
            let e = e?;
            let name = e.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue; // hidden: partial uploads by some clients (.~lock, .tmp)
            }
            present.push(name.clone());
            let path = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && path.join(READY).symlink_metadata().is_ok() {
                ready.push(name);
                continue;
            }
            let Ok(snap) = snapshot(&path) else { continue };
            match self.seen.get(&name) {
                Some((prev, since)) if *prev == snap => {
                    if now.duration_since(*since) >= settle {
                        ready.push(name);
                    }
                }
                _ => {
                    self.seen.insert(name, (snap, now));
                }
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        for r in &ready {
            self.seen.remove(r);
        }
        ready.sort();
        self.present = present;
        Ok(ready)
    }

    /// The (visible) names found in `intake/` by the last scan.
    pub fn present(&self) -> Vec<OsString> {
        self.present.clone()
    }
}
