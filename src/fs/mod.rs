//! Files and directories whose calls park only the calling green thread, as [`std::fs`].
//!
//! # Which calls go where
//! On a green thread of an io_uring worker:
//! - io_uring operations: a [`File`]'s reads, writes and syncs; [`create_dir`],
//!   [`create_dir_all`] and [`DirBuilder::create`] (`mkdirat`), [`remove_file`] and
//!   [`remove_dir`] (`unlinkat`), [`rename`] (`renameat`), [`hard_link`] (`linkat`) and
//!   [`symlink`] (`symlinkat`). These path operations need Linux 5.15; on a kernel whose io_uring
//!   lacks them, they run on the blocking pool instead.
//! - the blocking pool ([`crate::unblock`]), for calls io_uring has no operation for or whose
//!   result is a std type only std can build: opening a [`File`], its metadata, length,
//!   permissions and times, and the waiting [`File::lock`] and [`File::lock_shared`];
//!   [`read_dir`] (entries are fetched up to 64 per job, not one job per entry) and
//!   [`DirEntry::metadata`]; [`metadata`], [`symlink_metadata`], [`exists`], [`read_link`],
//!   [`canonicalize`], [`copy`], [`set_permissions`] and [`remove_dir_all`]; and the "is it a
//!   directory already?" checks of [`create_dir_all`].
//! - the system call itself, for calls that do not wait: [`File::try_lock`],
//!   [`File::try_lock_shared`], [`File::unlock`], seeking.
//!
//! With the epoll fallback (regular files cannot be polled), every call that may block runs on
//! the blocking pool, as std's own function. From a plain kernel thread, every call is std's own
//! (or the same system call), blocking the kernel thread as std does.

mod dir;
mod file;
pub(crate) mod owner;

use std::ffi::{CString, c_char};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use io_uring::{opcode, squeue, types};

use crate::io::op::{self, Mode};
use crate::unblock;

pub use dir::{DirBuilder, DirEntry, ReadDir};
pub use file::{File, OpenOptions};
pub use std::fs::{FileTimes, FileType, Metadata, Permissions, TryLockError};

/// Whether the calling thread submits path operations to its ring (module doc).
fn ring_paths() -> bool {
    op::mode() == Mode::Uring && crate::driver::uring::has_path_ops()
}

/// A path as the C string the kernel takes; an interior NUL is `InvalidInput`, as in std.
fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// Submits the operation `sqe` makes from `paths` (as C strings) to the ring, and waits for it.
///
/// # Safety
/// Call where [`ring_paths`] holds. The entries `sqe` makes may carry no pointer but the ones it
/// is given.
unsafe fn ring_path_op<const N: usize>(
    paths: [&Path; N],
    sqe: impl Fn([*const c_char; N]) -> squeue::Entry,
) -> io::Result<()> {
    let mut owned = Vec::with_capacity(N);
    for p in paths {
        owned.push(c_path(p)?);
    }
    let ptrs: [*const c_char; N] = std::array::from_fn(|i| owned[i].as_ptr());
    // SAFETY: in Uring mode (the caller's promise); the only pointers are into `owned`, which
    // lives until the operation is done.
    unsafe {
        op::ring_op(
            crate::task::ThreadState::Io {
                op: crate::task::IoOp::File,
                fd: -1,
            },
            || sqe(ptrs),
        )
    }
    .map(drop)
}

/// A call on paths: the operation `sqe` makes on the ring where [`ring_paths`] holds, else std's
/// `call` on the blocking pool (directly on a kernel thread).
///
/// # Safety
/// As [`ring_path_op`]'s for `sqe`.
unsafe fn path_op<const N: usize>(
    paths: [&Path; N],
    sqe: impl Fn([*const c_char; N]) -> squeue::Entry,
    call: impl FnOnce() -> io::Result<()> + Send,
) -> io::Result<()> {
    if ring_paths() {
        // SAFETY: `ring_paths` holds; the caller vouches for `sqe`.
        unsafe { ring_path_op(paths, sqe) }
    } else {
        unblock(call)
    }
}

/// The working directory, for the `*at` operations.
const CWD: types::Fd = types::Fd(libc::AT_FDCWD);

/// Reads the whole file at `path`, as [`std::fs::read`].
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-read", std::process::id()));
/// hilos::fs::write(&path, [1, 2, 3]).unwrap();
/// let p = path.clone();
/// let bytes = hilos::spawn(move || hilos::fs::read(p)).join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!(bytes.unwrap(), [1, 2, 3]);
/// ```
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Reads the whole file at `path` as UTF-8, as [`std::fs::read_to_string`].
///
/// # Examples
/// ```
/// let name = format!("hilos-doc-{}-read_to_string", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// hilos::fs::write(&path, "héllo").unwrap();
/// let p = path.clone();
/// let text = hilos::spawn(move || hilos::fs::read_to_string(p)).join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!(text.unwrap(), "héllo");
/// ```
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut s = String::new();
    f.read_to_string(&mut s)?;
    Ok(s)
}

/// Writes `contents` as the whole file at `path` (created or truncated), as [`std::fs::write`].
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-write", std::process::id()));
/// let p = path.clone();
/// hilos::spawn(move || {
///     hilos::fs::write(&p, "a longer first text").unwrap();
///     hilos::fs::write(&p, "second").unwrap(); // replaces it
/// })
/// .join()
/// .unwrap();
/// assert_eq!(hilos::fs::read_to_string(&path).unwrap(), "second");
/// hilos::fs::remove_file(&path).unwrap();
/// ```
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    File::create(path)?.write_all(contents.as_ref())
}

/// The metadata of the file at `path` (following symbolic links), as [`std::fs::metadata`].
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-metadata", std::process::id()));
/// hilos::fs::write(&path, "12345").unwrap();
/// let p = path.clone();
/// let m = hilos::spawn(move || hilos::fs::metadata(p)).join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// let m = m.unwrap();
/// assert!(m.is_file());
/// assert_eq!(m.len(), 5);
/// ```
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let p = path.as_ref();
    unblock(move || std::fs::metadata(p))
}

/// The metadata of `path` itself, not following a symbolic link there, as
/// [`std::fs::symlink_metadata`].
///
/// # Examples
/// ```
/// let name = format!("hilos-doc-{}-symlink_metadata", std::process::id());
/// let dir = std::env::temp_dir().join(name);
/// hilos::fs::create_dir_all(&dir).unwrap();
/// let d = dir.clone();
/// let (link, target) = hilos::spawn(move || {
///     hilos::fs::write(d.join("target"), "x").unwrap();
///     hilos::fs::symlink("target", d.join("link")).unwrap();
///     let link = hilos::fs::symlink_metadata(d.join("link")).unwrap();
///     let target = hilos::fs::metadata(d.join("link")).unwrap();
///     (link, target)
/// })
/// .join()
/// .unwrap();
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// assert!(link.is_symlink());
/// assert!(target.is_file());
/// ```
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let p = path.as_ref();
    unblock(move || std::fs::symlink_metadata(p))
}

/// Whether `path` names an existing file (following symbolic links), as [`std::fs::exists`]:
/// `Ok(false)` when it does not exist, an error when that cannot be told (no permission to look).
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-exists", std::process::id()));
/// let p = path.clone();
/// let (before, after) = hilos::spawn(move || {
///     let before = hilos::fs::exists(&p).unwrap();
///     hilos::fs::write(&p, "").unwrap();
///     (before, hilos::fs::exists(&p).unwrap())
/// })
/// .join()
/// .unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!((before, after), (false, true));
/// ```
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    let p = path.as_ref();
    unblock(move || std::fs::exists(p))
}

/// Removes the file at `path`, as [`std::fs::remove_file`].
///
/// # Examples
/// ```
/// use std::io::ErrorKind;
///
/// let name = format!("hilos-doc-{}-remove_file", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// hilos::fs::write(&path, "x").unwrap();
/// let p = path.clone();
/// hilos::spawn(move || hilos::fs::remove_file(p)).join().unwrap().unwrap();
/// let again = hilos::fs::remove_file(&path).unwrap_err();
/// assert_eq!(again.kind(), ErrorKind::NotFound);
/// assert!(hilos::fs::metadata(&path).is_err());
/// ```
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let p = path.as_ref();
    // SAFETY: the entry's only pointer is the one given.
    unsafe {
        path_op(
            [p],
            |[c]| opcode::UnlinkAt::new(CWD, c).build(),
            || std::fs::remove_file(p),
        )
    }
}

/// Creates the directory `path` (its parent must exist), as [`std::fs::create_dir`].
///
/// # Examples
/// ```
/// use std::io::ErrorKind;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-create_dir", std::process::id()));
/// let p = path.clone();
/// let again = hilos::spawn(move || {
///     hilos::fs::create_dir(&p).unwrap();
///     hilos::fs::create_dir(&p)
/// });
/// assert_eq!(again.join().unwrap().unwrap_err().kind(), ErrorKind::AlreadyExists);
/// assert!(hilos::fs::metadata(&path).unwrap().is_dir());
/// hilos::fs::remove_dir(&path).unwrap();
/// ```
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    DirBuilder::new().create(path)
}

/// Creates the directory `path` and any missing parents, as [`std::fs::create_dir_all`]: a
/// directory that is already there is no error.
///
/// # Examples
/// ```
/// let top = std::env::temp_dir().join(format!("hilos-doc-{}-create_dir_all", std::process::id()));
/// let deep = top.join("a/b/c");
/// let d = deep.clone();
/// hilos::spawn(move || {
///     hilos::fs::create_dir_all(&d).unwrap();
///     hilos::fs::create_dir_all(&d).unwrap(); // there already: fine
/// })
/// .join()
/// .unwrap();
/// assert!(hilos::fs::metadata(&deep).unwrap().is_dir());
/// hilos::fs::remove_dir_all(&top).unwrap();
/// ```
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    DirBuilder::new().recursive(true).create(path)
}

/// Removes the empty directory `path`, as [`std::fs::remove_dir`].
///
/// # Examples
/// ```
/// use std::io::ErrorKind;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-remove_dir", std::process::id()));
/// hilos::fs::create_dir_all(path.join("inner")).unwrap();
/// let p = path.clone();
/// let not_empty = hilos::spawn(move || {
///     let e = hilos::fs::remove_dir(&p).unwrap_err();
///     hilos::fs::remove_dir(p.join("inner")).unwrap();
///     hilos::fs::remove_dir(&p).unwrap();
///     e
/// });
/// assert_eq!(not_empty.join().unwrap().kind(), ErrorKind::DirectoryNotEmpty);
/// assert!(!hilos::fs::exists(&path).unwrap());
/// ```
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let p = path.as_ref();
    // SAFETY: the entry's only pointer is the one given.
    unsafe {
        path_op(
            [p],
            |[c]| {
                opcode::UnlinkAt::new(CWD, c)
                    .flags(libc::AT_REMOVEDIR)
                    .build()
            },
            || std::fs::remove_dir(p),
        )
    }
}

/// Removes the directory `path` with everything in it, as [`std::fs::remove_dir_all`] (which
/// runs, whole, on the blocking pool: it does not follow symbolic links out of the tree).
///
/// # Examples
/// ```
/// let top = std::env::temp_dir().join(format!("hilos-doc-{}-remove_dir_all", std::process::id()));
/// hilos::fs::create_dir_all(top.join("a/b")).unwrap();
/// hilos::fs::write(top.join("a/b/file"), "x").unwrap();
/// let t = top.clone();
/// hilos::spawn(move || hilos::fs::remove_dir_all(t)).join().unwrap().unwrap();
/// assert!(!hilos::fs::exists(&top).unwrap());
/// ```
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let p = path.as_ref();
    unblock(move || std::fs::remove_dir_all(p))
}

/// Renames `from` to `to`, replacing `to` if it is a file (or an empty directory, when `from` is
/// a directory), as [`std::fs::rename`].
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-rename", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::write(dir.join("old"), "text").unwrap();
/// let d = dir.clone();
/// hilos::spawn(move || hilos::fs::rename(d.join("old"), d.join("new")))
///     .join()
///     .unwrap()
///     .unwrap();
/// assert!(!hilos::fs::exists(dir.join("old")).unwrap());
/// assert_eq!(hilos::fs::read_to_string(dir.join("new")).unwrap(), "text");
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    // SAFETY: the entry's only pointers are the ones given.
    unsafe {
        path_op(
            [from, to],
            |[f, t]| opcode::RenameAt::new(CWD, f, CWD, t).build(),
            || std::fs::rename(from, to),
        )
    }
}

/// Copies the contents and permissions of the file `from` to `to` (created or truncated), and
/// returns the number of bytes copied, as [`std::fs::copy`] (which runs, whole, on the blocking
/// pool, with the kernel's in-kernel copy where it has one).
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-copy", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::write(dir.join("a"), "12345").unwrap();
/// let d = dir.clone();
/// let n = hilos::spawn(move || hilos::fs::copy(d.join("a"), d.join("b"))).join().unwrap();
/// assert_eq!(n.unwrap(), 5);
/// assert_eq!(hilos::fs::read_to_string(dir.join("b")).unwrap(), "12345");
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    unblock(move || std::fs::copy(from, to))
}

/// The absolute form of `path`, with every symbolic link and `.`/`..` resolved (`realpath`), as
/// [`std::fs::canonicalize`]. The path must exist.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-canonicalize", std::process::id()));
/// hilos::fs::create_dir_all(dir.join("sub")).unwrap();
/// let d = dir.clone();
/// let c = hilos::spawn(move || hilos::fs::canonicalize(d.join("sub/../sub/.")));
/// let c = c.join().unwrap().unwrap();
/// assert_eq!(c, std::fs::canonicalize(dir.join("sub")).unwrap());
/// assert!(c.is_absolute());
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let p = path.as_ref();
    unblock(move || std::fs::canonicalize(p))
}

/// What the symbolic link `path` points to, as [`std::fs::read_link`].
///
/// # Examples
/// ```
/// use std::path::Path;
///
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-read_link", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// let d = dir.clone();
/// let target = hilos::spawn(move || {
///     hilos::fs::symlink("somewhere/else", d.join("link")).unwrap();
///     hilos::fs::read_link(d.join("link"))
/// });
/// assert_eq!(target.join().unwrap().unwrap(), Path::new("somewhere/else"));
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let p = path.as_ref();
    unblock(move || std::fs::read_link(p))
}

/// Makes `link` a new name (a hard link) for the file `original`, as [`std::fs::hard_link`]
/// (a symbolic link as `original` is linked itself, not followed).
///
/// # Examples
/// ```
/// use std::os::unix::fs::MetadataExt;
///
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-hard_link", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::write(dir.join("a"), "shared").unwrap();
/// let d = dir.clone();
/// hilos::spawn(move || hilos::fs::hard_link(d.join("a"), d.join("b")))
///     .join()
///     .unwrap()
///     .unwrap();
/// assert_eq!(hilos::fs::metadata(dir.join("a")).unwrap().nlink(), 2);
/// assert_eq!(hilos::fs::read_to_string(dir.join("b")).unwrap(), "shared");
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    // SAFETY: the entry's only pointers are the ones given.
    unsafe {
        path_op(
            [original, link],
            |[o, l]| opcode::LinkAt::new(CWD, o, CWD, l).build(),
            || std::fs::hard_link(original, link),
        )
    }
}

/// Makes `link` a symbolic link to `original`, as [`std::os::unix::fs::symlink`] (std has it
/// in `std::os::unix::fs`; hilos has it here). `original` is stored as given: a relative one is
/// resolved from `link`'s directory when the link is followed.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-symlink", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::write(dir.join("target"), "through the link").unwrap();
/// let d = dir.clone();
/// hilos::spawn(move || hilos::fs::symlink("target", d.join("link")))
///     .join()
///     .unwrap()
///     .unwrap();
/// let text = hilos::fs::read_to_string(dir.join("link")).unwrap();
/// assert_eq!(text, "through the link");
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    // SAFETY: the entry's only pointers are the ones given.
    unsafe {
        path_op(
            [original, link],
            |[o, l]| opcode::SymlinkAt::new(CWD, o, l).build(),
            || std::os::unix::fs::symlink(original, link),
        )
    }
}

/// Makes a symbolic link, as std's deprecated [`std::fs::soft_link`]: use [`symlink`] (std's
/// `std::os::unix::fs::symlink`).
///
/// # Examples
/// ```
/// #![allow(deprecated)]
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-soft-link", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::soft_link("target", dir.join("link")).unwrap();
/// assert_eq!(hilos::fs::read_link(dir.join("link")).unwrap(), std::path::Path::new("target"));
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
#[deprecated(
    since = "0.1.0",
    note = "replaced with `hilos::fs::symlink`, as in std"
)]
pub fn soft_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    symlink(original, link)
}

/// Changes the permissions of the file at `path` (following symbolic links), as
/// [`std::fs::set_permissions`].
///
/// # Examples
/// ```
/// use std::os::unix::fs::PermissionsExt;
///
/// let name = format!("hilos-doc-{}-set_permissions", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// hilos::fs::write(&path, "x").unwrap();
/// let p = path.clone();
/// hilos::spawn(move || {
///     let perm = hilos::fs::Permissions::from_mode(0o640);
///     hilos::fs::set_permissions(&p, perm)
/// })
/// .join()
/// .unwrap()
/// .unwrap();
/// let mode = hilos::fs::metadata(&path).unwrap().permissions().mode();
/// assert_eq!(mode & 0o777, 0o640);
/// hilos::fs::remove_file(&path).unwrap();
/// ```
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    let p = path.as_ref();
    unblock(move || std::fs::set_permissions(p, perm))
}

/// The entries of the directory `path`, as [`std::fs::read_dir`]: an iterator of
/// [`DirEntry`]s, in no particular order, without `.` and `..`. On a green thread, opening the
/// directory and each batch of up to 64 entries is one job on the blocking pool.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-read_dir", std::process::id()));
/// hilos::fs::create_dir_all(dir.join("sub")).unwrap();
/// hilos::fs::write(dir.join("file"), "x").unwrap();
/// let d = dir.clone();
/// let mut names = hilos::spawn(move || {
///     let mut names = Vec::new();
///     for entry in hilos::fs::read_dir(&d).unwrap() {
///         let entry = entry.unwrap();
///         let is_dir = entry.file_type().unwrap().is_dir();
///         names.push((entry.file_name().into_string().unwrap(), is_dir));
///     }
///     names
/// })
/// .join()
/// .unwrap();
/// names.sort();
/// assert_eq!(names, [("file".to_string(), false), ("sub".to_string(), true)]);
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    ReadDir::open(path.as_ref())
}
