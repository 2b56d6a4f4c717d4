//! std's Unix-only file calls (`std::os::unix::fs::{chown, fchown, lchown, chroot}`), on the
//! blocking pool so that only the calling green thread waits (io_uring has no opcode for them).
//! Reached through [`crate::os::unix::fs`], where std has them.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::unblock;

/// Changes the owner and group of the file at path `dir` (std's parameter name; symbolic links
/// are followed), as [`std::os::unix::fs::chown`]: `None` leaves that id as it is. Parks only the
/// calling green thread.
///
/// # Examples
/// ```
/// use std::os::unix::fs::MetadataExt;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-chown", std::process::id()));
/// hilos::fs::write(&path, "x").unwrap();
/// let gid = hilos::fs::metadata(&path).unwrap().gid();
/// // Setting the group a file already has is allowed to its owner.
/// let p = path.clone();
/// hilos::spawn(move || hilos::os::unix::fs::chown(&p, None, Some(gid))).join().unwrap().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// ```
pub fn chown<P: AsRef<Path>>(dir: P, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let dir = dir.as_ref();
    unblock(move || std::os::unix::fs::chown(dir, uid, gid))
}

/// As [`chown`], on an open file, as [`std::os::unix::fs::fchown`].
///
/// # Examples
/// ```
/// use std::os::unix::fs::MetadataExt;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-fchown", std::process::id()));
/// let f = hilos::fs::File::create(&path).unwrap();
/// let uid = f.metadata().unwrap().uid();
/// hilos::os::unix::fs::fchown(&f, Some(uid), None).unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// ```
pub fn fchown<F: AsFd>(fd: F, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let fd = fd.as_fd();
    unblock(move || std::os::unix::fs::fchown(fd, uid, gid))
}

/// As [`chown`], but on a symbolic link itself, as [`std::os::unix::fs::lchown`].
///
/// # Examples
/// ```
/// use std::os::unix::fs::MetadataExt;
///
/// let dir = std::env::temp_dir().join(format!("hilos-doc-{}-lchown", std::process::id()));
/// hilos::fs::create_dir_all(&dir).unwrap();
/// hilos::fs::symlink("nowhere", dir.join("link")).unwrap(); // dangling: lchown still works
/// let uid = hilos::fs::symlink_metadata(dir.join("link")).unwrap().uid();
/// hilos::os::unix::fs::lchown(dir.join("link"), Some(uid), None).unwrap();
/// hilos::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn lchown<P: AsRef<Path>>(dir: P, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let dir = dir.as_ref();
    unblock(move || std::os::unix::fs::lchown(dir, uid, gid))
}

/// Changes the process's root directory, as [`std::os::unix::fs::chroot`] (process-wide: every
/// green and kernel thread sees the new root; it needs `CAP_SYS_CHROOT`).
///
/// # Examples
/// ```no_run
/// hilos::os::unix::fs::chroot("/sandbox").unwrap();
/// std::env::set_current_dir("/").unwrap();
/// ```
pub fn chroot<P: AsRef<Path>>(dir: P) -> io::Result<()> {
    let dir = dir.as_ref();
    unblock(move || std::os::unix::fs::chroot(dir))
}
