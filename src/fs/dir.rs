//! Directories: [`ReadDir`] and its [`DirEntry`]s, fetched in batches on the blocking pool, and
//! [`DirBuilder`], whose `mkdir`s go to the ring where it can (see the parent module's doc).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use io_uring::opcode;

use super::{CWD, FileType, Metadata, ring_path_op, ring_paths};
use crate::io::op::{self, Mode};
use crate::unblock;

/// How many entries one blocking-pool job fetches.
const BATCH: usize = 64;

/// An iterator over a directory's entries, as [`std::fs::ReadDir`]; made by
/// [`read_dir`](super::read_dir).
///
/// On a green thread, entries are fetched in batches of up to 64, one job on the blocking pool a
/// batch; on a kernel thread, each `next` is std's.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-ReadDir", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// for i in 0..100 {
///     hilos::fs::write(dir.join(i.to_string()), "").unwrap();
/// }
/// let d = dir.clone();
/// let n = hilos::spawn(move || hilos::fs::read_dir(d).unwrap().count()).join().unwrap();
/// assert_eq!(n, 100);
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct ReadDir {
    inner: std::fs::ReadDir,
    /// Fetched entries not yet returned.
    batch: VecDeque<io::Result<DirEntry>>,
    /// std's iterator has ended.
    ended: bool,
}

impl ReadDir {
    /// Opens the directory; on a green thread, fetches the first batch in the same job.
    pub(super) fn open(path: &Path) -> io::Result<ReadDir> {
        let green = op::mode() != Mode::Blocking;
        unblock(move || {
            let mut d = ReadDir {
                inner: std::fs::read_dir(path)?,
                batch: VecDeque::new(),
                ended: false,
            };
            if green {
                d.fill();
            }
            Ok(d)
        })
    }

    /// Takes up to [`BATCH`] entries from std's iterator (it blocks: run on the pool), each with
    /// its file type where that can be had.
    fn fill(&mut self) {
        while self.batch.len() < BATCH {
            match self.inner.next() {
                None => {
                    self.ended = true;
                    return;
                }
                Some(Ok(inner)) => {
                    let ty = inner.file_type().ok();
                    self.batch.push_back(Ok(DirEntry { inner, ty }));
                }
                Some(Err(e)) => {
                    // The error is the batch's last item; std says what comes after it.
                    self.batch.push_back(Err(e));
                    return;
                }
            }
        }
    }
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        if let Some(e) = self.batch.pop_front() {
            return Some(e);
        }
        if self.ended {
            return None;
        }
        if op::mode() == Mode::Blocking {
            // A kernel thread: std's own, entry by entry.
            return self
                .inner
                .next()
                .map(|r| r.map(|inner| DirEntry { inner, ty: None }));
        }
        unblock(|| self.fill());
        self.batch.pop_front()
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// One entry of a directory, as [`std::fs::DirEntry`]; made by [`ReadDir`].
///
/// # Examples
/// ```
/// use std::os::unix::fs::{DirEntryExt, MetadataExt};
///
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-DirEntry", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::write(dir.join("only"), "12345").unwrap();
/// let d = dir.clone();
/// hilos::spawn(move || {
///     let e = hilos::fs::read_dir(&d).unwrap().next().unwrap().unwrap();
///     assert_eq!(e.path(), d.join("only"));
///     assert_eq!(e.file_name(), "only");
///     assert!(e.file_type().unwrap().is_file());
///     let m = e.metadata().unwrap();
///     assert_eq!(m.len(), 5);
///     assert_eq!(e.ino(), m.ino());
/// })
/// .join()
/// .unwrap();
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct DirEntry {
    inner: std::fs::DirEntry,
    /// The file type, when it was read with the entry.
    ty: Option<FileType>,
}

impl DirEntry {
    /// The entry's full path: the directory's path given to `read_dir` joined with the entry's
    /// name.
    pub fn path(&self) -> PathBuf {
        self.inner.path()
    }

    /// The entry's name (no directory part).
    pub fn file_name(&self) -> OsString {
        self.inner.file_name()
    }

    /// The entry's metadata, not following a symbolic link (`fstatat` relative to the directory,
    /// on the blocking pool), as [`std::fs::DirEntry::metadata`].
    pub fn metadata(&self) -> io::Result<Metadata> {
        let e = &self.inner;
        unblock(move || e.metadata())
    }

    /// The entry's file type, not following a symbolic link, as
    /// [`std::fs::DirEntry::file_type`]. On a green thread it is read when the entry is fetched
    /// (from the directory entry itself where the file system records it, else with an `lstat`
    /// in the same pool job), so the call does not wait; std reads it at the call, which differs
    /// only if the entry is replaced in between.
    pub fn file_type(&self) -> io::Result<FileType> {
        match self.ty {
            Some(t) => Ok(t),
            None => {
                let e = &self.inner;
                unblock(move || e.file_type())
            }
        }
    }
}

impl std::os::unix::fs::DirEntryExt for DirEntry {
    fn ino(&self) -> u64 {
        self.inner.ino()
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// Creates directories with options, as [`std::fs::DirBuilder`]. The permission bits of new
/// directories (before the umask) are 0o777 unless set with
/// [`DirBuilderExt::mode`](std::os::unix::fs::DirBuilderExt::mode).
///
/// # Examples
/// ```
/// use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
/// use hilos::fs::DirBuilder;
///
/// let top = std::env::temp_dir().join(format!("hilos-doc-{}-DirBuilder", std::process::id()));
/// let deep = top.join("x/y");
/// let d = deep.clone();
/// hilos::spawn(move || DirBuilder::new().recursive(true).mode(0o700).create(d))
///     .join()
///     .unwrap()
///     .unwrap();
/// let m = hilos::fs::metadata(&deep).unwrap();
/// assert!(m.is_dir());
/// assert_eq!(m.permissions().mode() & 0o777, 0o700);
/// hilos::fs::remove_dir_all(&top).unwrap();
/// ```
#[derive(Debug)]
pub struct DirBuilder {
    mode: u32,
    recursive: bool,
}

impl Default for DirBuilder {
    fn default() -> DirBuilder {
        DirBuilder::new()
    }
}

impl DirBuilder {
    /// A builder for one directory (not recursive), mode 0o777.
    pub fn new() -> DirBuilder {
        DirBuilder {
            mode: 0o777,
            recursive: false,
        }
    }

    /// Whether [`DirBuilder::create`] also creates missing parents, and accepts a directory that
    /// is already there (as [`create_dir_all`](super::create_dir_all)).
    pub fn recursive(&mut self, recursive: bool) -> &mut DirBuilder {
        self.recursive = recursive;
        self
    }

    /// Creates the directory `path` with these options, as [`std::fs::DirBuilder::create`].
    pub fn create<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let p = path.as_ref();
        if !ring_paths() {
            // std's own, whole, in one pool job.
            let b = self.to_std();
            return unblock(move || b.create(p));
        }
        if self.recursive {
            self.create_all(p)
        } else {
            self.mkdir(p)
        }
    }

    fn to_std(&self) -> std::fs::DirBuilder {
        use std::os::unix::fs::DirBuilderExt;
        let mut b = std::fs::DirBuilder::new();
        b.recursive(self.recursive).mode(self.mode);
        b
    }

    /// One `mkdir` on the ring (called only where [`ring_paths`] holds).
    fn mkdir(&self, p: &Path) -> io::Result<()> {
        let mode = self.mode;
        // SAFETY: `create` checked `ring_paths`; the entry's only pointer is the one given.
        unsafe { ring_path_op([p], |[c]| opcode::MkDirAt::new(CWD, c).mode(mode).build()) }
    }

    /// Creates `path` and its missing ancestors: climbs until a `mkdir` succeeds or meets a
    /// directory that is there, then makes the missing ones top down. A directory that another
    /// thread makes meanwhile is no error.
    fn create_all(&self, path: &Path) -> io::Result<()> {
        let is_dir = |p: &Path| super::metadata(p).is_ok_and(|m| m.is_dir());
        let mut missing = Vec::new();
        let mut at = path;
        while !at.as_os_str().is_empty() {
            match self.mkdir(at) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing.push(at);
                    at = at
                        .parent()
                        .ok_or_else(|| io::Error::other("failed to create whole tree"))?;
                }
                Err(_) if is_dir(at) => break,
                Err(e) => return Err(e),
            }
        }
        for p in missing.into_iter().rev() {
            match self.mkdir(p) {
                Err(_) if is_dir(p) => {}
                r => r?,
            }
        }
        Ok(())
    }
}

impl std::os::unix::fs::DirBuilderExt for DirBuilder {
    fn mode(&mut self, mode: u32) -> &mut DirBuilder {
        self.mode = mode;
        self
    }
}
