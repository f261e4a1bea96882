//! Durable file-system primitives: atomic publication of files and directories.
//!
//! The recipe everywhere is the same: write to a temporary name in the target
//! directory, `fsync` the data, `rename` into place, `fsync` the directory. After
//! that sequence returns, a crash cannot leave a half-written file under the final
//! name, and the name survives power loss.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Opens an existing file for reading without following a symbolic link in its
/// last component (`O_NOFOLLOW`), refusing anything that is not a regular file.
pub fn open_regular_nofollow(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Removes the temporary files [`AtomicFile`] leaves behind when a process is
/// killed mid-write (`.<name>.tmp-<tag>`). Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let b = name.as_encoded_bytes();
        if b.starts_with(b".") && b.windows(5).any(|w| w == b".tmp-") && e.file_type()?.is_file() {
            fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Bytes available to this process on the file system holding `path`
/// (`statvfs`: blocks available to unprivileged users × fragment size).
pub fn free_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether `e` says the disk (or the quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Whether `e` or anything in its `source()` chain says the disk is full.
pub fn chain_is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if is_disk_full(io) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Copies the tree `from` into `to` (created), file by file, each file and
/// folder synced; names starting with `.` and ending a temporary file
/// (`.…tmp-…`) are skipped, as are symbolic links. For backups of folders
/// whose files are written once and never changed. Returns the files copied.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<usize> {
    fs::create_dir_all(to)?;
    let mut n = 0;
    for e in fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let b = name.as_encoded_bytes();
        if b.starts_with(b".") && b.windows(5).any(|w| w == b".tmp-") {
            continue;
        }
        let ty = e.file_type()?;
        let target = to.join(&name);
        if ty.is_dir() {
            n += copy_tree(&e.path(), &target)?;
        } else if ty.is_file() {
            fs::copy(e.path(), &target)?;
            File::open(&target)?.sync_all()?;
            n += 1;
        }
    }
    sync_dir(to)?;
    Ok(n)
}

/// `fsync` on a directory, so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a growing file back to disk while it is still being written, so
/// that its final `fsync` waits only for the last few MiB instead of all of
/// it: a helper thread `fdatasync`s a clone of the descriptor each time the
/// writer reports [`EarlyWriteback::STEP`] more bytes (skipped while the
/// previous pass still runs). The writer never waits for it. The thread is
/// started at the first step, so small files cost nothing.
///
/// It only moves work earlier: the caller still syncs the file before it
/// publishes it, and [`EarlyWriteback::finish`] returns the first error of a
/// pass, which the caller must treat as a failed write (after a failed
/// `fsync` Linux may report success for the same lost pages next time).
#[derive(Debug)]
pub struct EarlyWriteback {
    file: Option<File>,
    pass: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
    next: u64,
}

impl EarlyWriteback {
    /// Bytes written between two passes.
    pub const STEP: u64 = 16 << 20;

    /// For `file` (cloned: the writer keeps its own handle).
    pub fn new(file: &File) -> io::Result<Self> {
        Ok(Self {
            file: Some(file.try_clone()?),
            pass: None,
            thread: None,
            next: Self::STEP,
        })
    }

    /// The writer has written `written` bytes so far.
    pub fn progress(&mut self, written: u64) {
        if written < self.next {
            return;
        }
        self.next = written.saturating_add(Self::STEP);
        if self.pass.is_none() {
            let Some(file) = self.file.take() else { return };
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            let spawned = std::thread::Builder::new().name("writeback".into()).spawn(
                move || -> io::Result<()> {
                    for () in rx {
                        file.sync_data()?;
                    }
                    Ok(())
                },
            );
            // Without the thread the final fsync simply does all the work.
            let Ok(thread) = spawned else { return };
            self.pass = Some(tx);
            self.thread = Some(thread);
        }
        if let Some(tx) = &self.pass {
            // Full: a pass is running and one is queued; Disconnected: a pass
            // failed, which `finish` reports.
            let _ = tx.try_send(());
        }
    }

    /// Waits for the helper and returns the first error of its passes.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.pass = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the writeback thread panicked")),
        }
    }
}

impl Drop for EarlyWriteback {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The parent directory of `path`, or `.` for a bare file name.
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A sibling temporary name for `path`: `.<name>.tmp-<random>`, in the same
/// directory so that the final rename is atomic.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_owned());
    // Keep the temporary name within the 255-byte limit however long `name` is.
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let tag = crate::types::BundleId::generate();
    parent_of(path).join(format!(".{}.tmp-{}", &name[..end], &tag.as_str()[..10]))
}

/// A file being written under a temporary name; [`AtomicFile::commit`] publishes
/// it under its final name. Dropped without `commit`, the temporary is removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`. Fails if `dest` already exists
    /// (checked again at commit, which never overwrites).
    pub fn create(dest: &Path) -> io::Result<Self> {
        if dest.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            ));
        }
        let tmp = temp_sibling(dest);
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_owned(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("present until commit")
    }

    /// fsync, link into place without overwriting, fsync the directory.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let file = self.file.take().expect("present until commit");
        file.sync_all()?;
        drop(file);
        rename_noreplace(&self.tmp, &self.dest)?;
        sync_dir(parent_of(&self.dest))?;
        Ok(self.dest.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing an
/// existing `to`. Works for files and directories (Linux `renameat2(RENAME_NOREPLACE)`,
/// with a hard-link fallback for files on file systems without it).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS)
            if !from.symlink_metadata()?.is_dir() =>
        {
            // File system without RENAME_NOREPLACE: link(2) fails with EEXIST
            // rather than replacing, which is just as race-free for files.
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Writes `bytes` to `dest` atomically, replacing what is there (notes that
/// are rewritten at every change). A reader sees the old or the new file,
/// never a mix.
pub fn write_replace_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = temp_sibling(dest);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dest)?;
        sync_dir(parent_of(dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` atomically (never replacing an existing file).
pub fn write_new_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = AtomicFile::create(dest)?;
    f.file().write_all(bytes)?;
    f.commit()?;
    Ok(())
}

/// A directory being filled under a temporary name; [`AtomicDir::commit`] renames
/// it to its final name. Dropped without `commit`, the temporary tree is removed,
/// so a failed operation leaves nothing visible.
#[derive(Debug)]
pub struct AtomicDir {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// Creates the temporary directory next to `dest`; fails if `dest` exists.
    pub fn create(dest: &Path) -> io::Result<Self> {
        if dest.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", dest.display()),
            ));
        }
        let tmp = temp_sibling(dest);
        fs::create_dir(&tmp)?;
        Ok(Self {
            tmp,
            dest: dest.to_owned(),
            committed: false,
        })
    }

    /// Where to write the contents.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs every directory in the tree, renames into place, fsyncs the parent.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        sync_tree_dirs(&self.tmp)?;
        rename_noreplace(&self.tmp, &self.dest)?;
        sync_dir(parent_of(&self.dest))?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

fn sync_tree_dirs(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree_dirs(&entry.path())?;
        }
    }
    sync_dir(dir)
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Linux file leases: knowing that no one holds a file open for writing, and
/// noticing when someone tries to open it for writing afterwards.
///
/// A read lease (`fcntl(F_SETLEASE, F_RDLCK)`) is granted only while no
/// process has the file open for writing. While it is held, an `open` for
/// writing (or a truncate) blocks for up to `/proc/sys/fs/lease-break-time`
/// seconds and the kernel signals the holder (SIGIO, which this module
/// ignores) and marks the lease as being broken, which [`lease::Lease::intact`] sees.
/// The lease ends when the file is closed.
///
/// Leases need the file to belong to this process's user, or `CAP_LEASE`
/// (docs/operations.md: the clerks' share, or a drop-in for the unit), and a
/// file system that supports them (local ones do; network file systems often
/// do not): [`lease::Probe::Unsupported`] says so and the caller falls back to
/// watching sizes and times.
pub mod lease {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// A read lease, held until dropped.
    #[derive(Debug)]
    pub struct Lease {
        file: File,
    }

    /// What [`probe`] found.
    #[derive(Debug)]
    pub enum Probe {
        /// No one has the file open for writing; the lease is held.
        Quiet(Lease),
        /// Someone has the file open for writing now.
        Busy,
        /// This file system or this process cannot take leases here.
        Unsupported(io::Error),
    }

    impl Lease {
        /// Whether the lease still stands (no one has tried to open the file
        /// for writing since it was taken).
        pub fn intact(&self) -> bool {
            matches!(get_lease(&self.file), Ok(t) if t == libc::F_RDLCK)
        }
    }

    /// Tries to take a read lease on `path` (a regular file; symbolic links
    /// are not followed).
    pub fn probe(path: &Path) -> io::Result<Probe> {
        ignore_sigio()?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        match set_read_lease(&file) {
            Ok(()) => Ok(Probe::Quiet(Lease { file })),
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY) => Ok(Probe::Busy),
                Some(libc::EINVAL | libc::ENOLCK | libc::EACCES | libc::EPERM | libc::ENOSYS) => {
                    Ok(Probe::Unsupported(e))
                }
                _ => Err(e),
            },
        }
    }

    /// Lease breaks are signalled with SIGIO, whose default action ends the
    /// process: registered once, to a flag nobody needs to read (the lease
    /// state itself is asked with `F_GETLEASE`).
    fn ignore_sigio() -> io::Result<()> {
        static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        REGISTERED
            .get_or_init(|| {
                let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                signal_hook::flag::register(libc::SIGIO, flag)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(io::Error::other)
    }

    #[allow(unsafe_code, reason = "fcntl(F_SETLEASE) has no safe wrapper")]
    fn set_read_lease(file: &File) -> io::Result<()> {
        // SAFETY: `file` is open for the whole call, so the descriptor is
        // valid; F_SETLEASE takes an integer argument and touches no memory.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
        if r == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    #[allow(unsafe_code, reason = "fcntl(F_GETLEASE) has no safe wrapper")]
    fn get_lease(file: &File) -> io::Result<libc::c_int> {
        // SAFETY: as above; F_GETLEASE takes no argument and returns an int.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLEASE) };
        if r == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_never_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("a.bin");
        write_new_atomic(&dest, b"one").expect("first write");
        let err = write_new_atomic(&dest, b"two").expect_err("second write must fail");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).expect("read"), b"one");
        {
            let _abandoned = AtomicFile::create(&dir.path().join("b.bin")).expect("create");
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
    }

    #[test]
    fn atomic_dir_is_invisible_until_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out");
        {
            let d = AtomicDir::create(&dest).expect("create");
            fs::write(d.path().join("x"), b"x").expect("write");
        }
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
        let d = AtomicDir::create(&dest).expect("create");
        fs::write(d.path().join("x"), b"x").expect("write");
        d.commit().expect("commit");
        assert_eq!(fs::read(dest.join("x")).expect("read"), b"x");
    }

    #[test]
    fn a_lease_tells_a_file_open_for_writing_from_a_quiet_one() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scan.pdf");
        let mut writer = fs::File::create(&path).expect("create");
        writer.write_all(b"%PDF-").expect("write");
        assert!(
            matches!(lease::probe(&path).expect("probe"), lease::Probe::Busy),
            "a file open for writing was called quiet"
        );
        drop(writer);
        let lease::Probe::Quiet(held) = lease::probe(&path).expect("probe") else {
            panic!("a closed file was not quiet");
        };
        assert!(held.intact());
        // Someone opens it for writing: the open waits for the lease break
        // (non-blocking here, so it fails at once) and the lease is broken.
        let opened = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        assert!(opened.is_err(), "opened for writing under a read lease");
        assert!(!held.intact(), "the lease break went unnoticed");
    }

    #[test]
    fn nofollow_refuses_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("real"), b"x").expect("write");
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link"))
            .expect("symlink");
        assert!(open_regular_nofollow(&dir.path().join("real")).is_ok());
        assert!(open_regular_nofollow(&dir.path().join("link")).is_err());
    }
}
