//! [`File`] and [`OpenOptions`]: reads, writes and syncs on the ring (or the blocking pool), the
//! rest of a file's calls on the blocking pool (see the parent module's doc).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::SystemTime;

use io_uring::{opcode, types};

use super::{FileTimes, Metadata, Permissions, TryLockError};
use crate::io::op::{self, Interest};
use crate::unblock;

/// An open file, as [`std::fs::File`]. `Read`, `Write` and `Seek` are implemented for the type
/// and for `&File`.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use hilos::fs::File;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-File", std::process::id()));
/// let p = path.clone();
/// let text = hilos::spawn(move || {
///     File::create(&p).unwrap().write_all(b"hello").unwrap();
///     let mut s = String::new();
///     File::open(&p).unwrap().read_to_string(&mut s).unwrap();
///     s
/// });
/// let text = text.join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!(text, "hello");
/// ```
pub struct File {
    inner: std::fs::File,
}

/// Options to open a [`File`] with, as [`std::fs::OpenOptions`].
///
/// # Examples
/// ```
/// use std::io::Write;
/// use hilos::fs::OpenOptions;
///
/// let path = std::env::temp_dir().join(format!("hilos-doc-{}-OpenOptions", std::process::id()));
/// let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&path).unwrap();
/// f.write_all(b"a").unwrap();
/// let mut f = OpenOptions::new().append(true).open(&path).unwrap();
/// f.write_all(b"b").unwrap();
/// let exists = OpenOptions::new().write(true).create_new(true).open(&path);
/// assert_eq!(exists.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// assert_eq!(hilos::fs::read_to_string(&path).unwrap(), "ab");
/// hilos::fs::remove_file(&path).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions(std::fs::OpenOptions);

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions(std::fs::OpenOptions::new())
    }
    /// Opens for reading.
    pub fn read(&mut self, on: bool) -> &mut OpenOptions {
        self.0.read(on);
        self
    }
    /// Opens for writing.
    pub fn write(&mut self, on: bool) -> &mut OpenOptions {
        self.0.write(on);
        self
    }
    /// Opens for appending: every write goes to the end.
    pub fn append(&mut self, on: bool) -> &mut OpenOptions {
        self.0.append(on);
        self
    }
    /// Truncates the file to length 0 when opening it.
    pub fn truncate(&mut self, on: bool) -> &mut OpenOptions {
        self.0.truncate(on);
        self
    }
    /// Creates the file if it does not exist.
    pub fn create(&mut self, on: bool) -> &mut OpenOptions {
        self.0.create(on);
        self
    }
    /// Creates the file, failing if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut OpenOptions {
        self.0.create_new(on);
        self
    }
    /// Opens the file at `path` with these options, parking only the calling green thread.
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let p = path.as_ref();
        let o = &self.0;
        unblock(move || o.open(p)).map(|inner| File { inner })
    }
}

impl std::os::unix::fs::OpenOptionsExt for OpenOptions {
    fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.0.mode(mode);
        self
    }
    fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.0.custom_flags(flags);
        self
    }
}

/// io_uring's "use and advance the file position" offset.
const CUR_POS: u64 = u64::MAX;

fn clamp(len: usize) -> u32 {
    len.min(i32::MAX as usize) as u32
}

impl File {
    /// Opens `path` for reading.
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens `path` for writing, creating it or truncating it.
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates `path` for reading and writing, failing if it exists.
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// Options to open a file with.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    fn fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }

    fn read_off(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let (fd, p, len) = (self.fd(), buf.as_mut_ptr(), clamp(buf.len()));
        // SAFETY: `buf` is borrowed for the whole call, which returns only when the kernel (or
        // the pool thread) is done with it.
        unsafe {
            op::file_op(
                fd,
                Interest::Read,
                crate::task::IoOp::Read,
                || opcode::Read::new(types::Fd(fd), p, len).offset(off).build(),
                || {
                    op::cvt(if off == CUR_POS {
                        crate::real::read(fd, p.cast(), len as usize)
                    } else {
                        crate::real::pread(fd, p.cast(), len as usize, off as libc::off_t)
                    })
                },
            )
        }
    }

    fn write_off(&self, buf: &[u8], off: u64) -> io::Result<usize> {
        let (fd, p, len) = (self.fd(), buf.as_ptr(), clamp(buf.len()));
        // SAFETY: as in read_off.
        unsafe {
            op::file_op(
                fd,
                Interest::Write,
                crate::task::IoOp::Write,
                || {
                    opcode::Write::new(types::Fd(fd), p, len)
                        .offset(off)
                        .build()
                },
                || {
                    op::cvt(if off == CUR_POS {
                        crate::real::write(fd, p.cast(), len as usize)
                    } else {
                        crate::real::pwrite(fd, p.cast(), len as usize, off as libc::off_t)
                    })
                },
            )
        }
    }

    /// Reads from `offset` without moving the file position (`pread`).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        check_offset(offset)?;
        self.read_off(buf, offset)
    }

    /// Writes at `offset` without moving the file position (`pwrite`).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        check_offset(offset)?;
        self.write_off(buf, offset)
    }

    /// Reads exactly `buf.len()` bytes from `offset`.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ));
                }
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    fn fsync(&self, data_only: bool) -> io::Result<()> {
        let fd = self.fd();
        let flags = if data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        // SAFETY: the entry carries no pointer.
        unsafe {
            op::file_op(
                fd,
                Interest::Write,
                crate::task::IoOp::File,
                || opcode::Fsync::new(types::Fd(fd)).flags(flags).build(),
                || {
                    op::cvt(if data_only {
                        libc::fdatasync(fd)
                    } else {
                        libc::fsync(fd)
                    } as isize)
                },
            )
        }
        .map(drop)
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub fn sync_all(&self) -> io::Result<()> {
        self.fsync(false)
    }

    /// Flushes data to the device (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        self.fsync(true)
    }

    /// Truncates or extends the file to `size` bytes (extending leaves a hole).
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let f = &self.inner;
        unblock(move || f.set_len(size))
    }

    /// The file's metadata.
    pub fn metadata(&self) -> io::Result<Metadata> {
        let f = &self.inner;
        unblock(move || f.metadata())
    }

    /// Changes the file's permissions.
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        let f = &self.inner;
        unblock(move || f.set_permissions(perm))
    }

    /// A new handle to the same open file (sharing its position).
    pub fn try_clone(&self) -> io::Result<File> {
        Ok(File {
            inner: self.inner.try_clone()?,
        })
    }

    /// Takes an exclusive advisory lock on the file (`flock`), waiting while another handle holds
    /// a lock on it, as [`std::fs::File::lock`]. The wait runs on the blocking pool: it parks only
    /// the calling green thread, however long it lasts.
    ///
    /// # Examples
    /// ```
    /// use hilos::fs::{File, TryLockError};
    ///
    /// let path = std::env::temp_dir().join(format!("hilos-doc-{}-lock", std::process::id()));
    /// let p = path.clone();
    /// hilos::spawn(move || {
    ///     let a = File::create(&p).unwrap();
    ///     let b = File::open(&p).unwrap();
    ///     a.lock().unwrap();
    ///     assert!(matches!(b.try_lock_shared(), Err(TryLockError::WouldBlock)));
    ///     a.unlock().unwrap();
    ///     b.lock_shared().unwrap();
    /// })
    /// .join()
    /// .unwrap();
    /// hilos::fs::remove_file(&path).unwrap();
    /// ```
    pub fn lock(&self) -> io::Result<()> {
        let f = &self.inner;
        unblock(move || f.lock())
    }

    /// Takes a shared advisory lock on the file, waiting while another handle holds an exclusive
    /// one, as [`std::fs::File::lock_shared`] (on the blocking pool, as [`File::lock`]).
    pub fn lock_shared(&self) -> io::Result<()> {
        let f = &self.inner;
        unblock(move || f.lock_shared())
    }

    /// Takes an exclusive advisory lock if no other handle holds a lock, else fails at once with
    /// [`TryLockError::WouldBlock`], as [`std::fs::File::try_lock`]. It never waits, so it is the
    /// system call, on any thread.
    pub fn try_lock(&self) -> Result<(), TryLockError> {
        self.inner.try_lock()
    }

    /// Takes a shared advisory lock if no other handle holds an exclusive one, else fails at once
    /// with [`TryLockError::WouldBlock`], as [`std::fs::File::try_lock_shared`].
    pub fn try_lock_shared(&self) -> Result<(), TryLockError> {
        self.inner.try_lock_shared()
    }

    /// Releases this handle's lock, as [`std::fs::File::unlock`] (the system call: it does not
    /// wait).
    pub fn unlock(&self) -> io::Result<()> {
        self.inner.unlock()
    }

    /// Sets the file's access and modification times, as [`std::fs::File::set_times`].
    ///
    /// # Examples
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use hilos::fs::{File, FileTimes};
    ///
    /// let path = std::env::temp_dir().join(format!("hilos-doc-{}-set_times", std::process::id()));
    /// let p = path.clone();
    /// let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    /// let m = hilos::spawn(move || {
    ///     let f = File::create(&p).unwrap();
    ///     f.set_times(FileTimes::new().set_accessed(then).set_modified(then)).unwrap();
    ///     f.metadata().unwrap()
    /// });
    /// let m = m.join().unwrap();
    /// hilos::fs::remove_file(&path).unwrap();
    /// assert_eq!(m.modified().unwrap(), then);
    /// assert_eq!(m.accessed().unwrap(), then);
    /// ```
    pub fn set_times(&self, times: FileTimes) -> io::Result<()> {
        let f = &self.inner;
        unblock(move || f.set_times(times))
    }

    /// Sets the file's modification time, as [`std::fs::File::set_modified`].
    pub fn set_modified(&self, time: SystemTime) -> io::Result<()> {
        self.set_times(FileTimes::new().set_modified(time))
    }
}

fn check_offset(off: u64) -> io::Result<()> {
    if off > i64::MAX as u64 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

impl std::os::unix::fs::FileExt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        File::read_at(self, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        File::write_at(self, buf, offset)
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_off(buf, CUR_POS)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let buf = bufs
            .iter_mut()
            .find(|b| !b.is_empty())
            .map_or(&mut [][..], |b| &mut **b);
        self.read(buf)
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_off(buf, CUR_POS)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let buf = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        // lseek(2) touches no data: it does not block.
        (&self.inner).seek(pos)
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}
impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}
impl FromRawFd for File {
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: the caller gives us ownership of an open file.
        File::from(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}
impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from(std::fs::File::from(fd))
    }
}
impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        f.inner.into()
    }
}
impl From<std::fs::File> for File {
    fn from(inner: std::fs::File) -> File {
        File { inner }
    }
}
impl From<File> for std::fs::File {
    fn from(f: File) -> std::fs::File {
        f.inner
    }
}
impl File {
    /// Whether the file is a terminal, as [`std::io::IsTerminal`] on std's `File` (which hilos's
    /// types cannot implement: std seals it).
    ///
    /// # Examples
    /// ```
    /// let f = hilos::fs::File::open("/dev/null").unwrap();
    /// assert!(!f.is_terminal());
    /// ```
    pub fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        self.inner.is_terminal()
    }
}
impl From<File> for std::process::Stdio {
    /// A child's stream that reads or writes this file, as std's `From<File>`.
    fn from(f: File) -> std::process::Stdio {
        std::process::Stdio::from(f.inner)
    }
}
impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
