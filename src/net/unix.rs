//! Unix domain sockets whose blocking calls park only the calling green thread, as
//! [`std::os::unix::net`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self as unet, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use super::addr::RawAddr;
use super::sys::{self, Timeouts};
use super::tcp::fd_conversions;

/// A Unix stream socket server, as [`std::os::unix::net::UnixListener`].
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use hilos::net::{UnixListener, UnixStream};
///
/// let name = format!("hilos-doc-{}-UnixListener.sock", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// let _ = hilos::fs::remove_file(&path); // left by an earlier, failed run
/// let listener = UnixListener::bind(&path).unwrap();
/// let server = hilos::spawn(move || listener.accept().unwrap().0.write_all(b"hi").unwrap());
/// let mut reply = String::new();
/// UnixStream::connect(&path).unwrap().read_to_string(&mut reply).unwrap();
/// server.join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!(reply, "hi");
/// ```
pub struct UnixListener {
    inner: unet::UnixListener,
    /// Only the non-blocking flag is used.
    timeouts: Timeouts,
}

/// A Unix stream socket, as [`std::os::unix::net::UnixStream`].
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use hilos::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// let echo = hilos::spawn(move || {
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).unwrap();
///     b.write_all(&buf).unwrap();
/// });
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// a.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// echo.join().unwrap();
/// ```
pub struct UnixStream {
    inner: unet::UnixStream,
    timeouts: Timeouts,
}

/// A Unix datagram socket, as [`std::os::unix::net::UnixDatagram`].
///
/// # Examples
/// ```
/// use hilos::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair().unwrap();
/// let h = hilos::spawn(move || {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).unwrap(); // one datagram, whole
///     buf[..n].to_vec()
/// });
/// a.send(b"one").unwrap();
/// assert_eq!(h.join().unwrap(), b"one");
/// ```
pub struct UnixDatagram {
    inner: unet::UnixDatagram,
    timeouts: Timeouts,
}

/// An iterator over the connections of a [`UnixListener`], from [`UnixListener::incoming`].
///
/// # Examples
/// ```
/// use hilos::net::{UnixIncoming, UnixListener, UnixStream};
///
/// let name = format!("hilos-doc-{}-UnixIncoming.sock", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// let _ = hilos::fs::remove_file(&path); // left by an earlier, failed run
/// let listener = UnixListener::bind(&path).unwrap();
/// let p = path.clone();
/// let client = hilos::spawn(move || UnixStream::connect(p).unwrap());
/// let incoming: UnixIncoming<'_> = listener.incoming();
/// let accepted = incoming.take(1).filter(|s| s.is_ok()).count();
/// client.join().unwrap();
/// hilos::fs::remove_file(&path).unwrap();
/// assert_eq!(accepted, 1);
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

/// `path` as a `sockaddr_un`.
fn path_addr(path: &Path) -> io::Result<RawAddr> {
    let mut r = RawAddr::empty();
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
    let sun = unsafe { &mut *r.as_mut_ptr().cast::<libc::sockaddr_un>() };
    if bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN",
        ));
    }
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "paths must not contain interior null bytes",
        ));
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    r.len = (base + bytes.len() + 1) as libc::socklen_t;
    Ok(r)
}

/// A std Unix socket address as a `sockaddr_un`.
fn std_addr(a: &SocketAddr) -> io::Result<RawAddr> {
    if let Some(p) = a.as_pathname() {
        return path_addr(p);
    }
    if let Some(name) = a.as_abstract_name() {
        let mut r = RawAddr::empty();
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        let sun = unsafe { &mut *r.as_mut_ptr().cast::<libc::sockaddr_un>() };
        if name.len() + 1 > sun.sun_path.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long"));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, &s) in sun.sun_path[1..].iter_mut().zip(name) {
            *d = s as libc::c_char;
        }
        let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        r.len = (base + 1 + name.len()) as libc::socklen_t;
        return Ok(r);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot connect to an unnamed address",
    ))
}

/// The unnamed address (std offers no constructor: take an unbound socket's).
fn unnamed() -> io::Result<SocketAddr> {
    static U: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(a) = U.get() {
        return Ok(a.clone());
    }
    let a = unet::UnixDatagram::unbound()?.local_addr()?;
    Ok(U.get_or_init(|| a).clone())
}

/// A `sockaddr_un` the kernel filled in, as std's address.
fn to_std(r: &RawAddr) -> io::Result<SocketAddr> {
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = r.len as usize;
    if len <= base {
        return unnamed();
    }
    // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
    let sun = unsafe { &*r.as_ptr().cast::<libc::sockaddr_un>() };
    // `c_char` is `i8` on x86_64 and `u8` on aarch64: the cast is needed on one of them only.
    #[allow(clippy::unnecessary_cast)]
    let path: Vec<u8> = sun.sun_path[..(len - base).min(sun.sun_path.len())]
        .iter()
        .map(|&c| c as u8)
        .collect();
    if path.first() == Some(&0) {
        SocketAddr::from_abstract_name(&path[1..])
    } else {
        let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
        SocketAddr::from_pathname(Path::new(std::ffi::OsStr::from_bytes(&path[..end])))
    }
}

impl UnixListener {
    /// Creates a listener bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        Ok(UnixListener::from(unet::UnixListener::bind(path)?))
    }

    /// Creates a listener bound to `addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        Ok(UnixListener::from(unet::UnixListener::bind_addr(addr)?))
    }

    /// Accepts a connection, parking only the calling green thread until one arrives.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut addr = RawAddr::empty();
        let fd = sys::accept(
            self.inner.as_raw_fd(),
            &mut addr,
            self.timeouts.read_deadline(),
        )?;
        let s = UnixStream {
            inner: unet::UnixStream::from(fd),
            timeouts: Timeouts::default(),
        };
        Ok((s, to_std(&addr)?))
    }

    /// An iterator over incoming connections (never `None`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A new handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// Gets and clears the socket's pending error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Moves the socket into or out of non-blocking mode, as std's: in non-blocking mode, a call
    /// that would wait fails with [`io::ErrorKind::WouldBlock`] instead. (Either way the
    /// descriptor itself stays non-blocking: hilos does the waiting.)
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.timeouts.set_nonblocking(nonblocking);
        Ok(())
    }
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl UnixStream {
    /// Connects to the socket at `path`, parking only the calling green thread.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_raw(&path_addr(path.as_ref())?)
    }

    /// Connects to the socket at `addr`.
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_raw(&std_addr(addr)?)
    }

    fn connect_raw(raw: &RawAddr) -> io::Result<UnixStream> {
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        sys::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len, None)?;
        Ok(UnixStream {
            inner: unet::UnixStream::from(fd),
            timeouts: Timeouts::default(),
        })
    }

    /// An unnamed pair of connected sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = unet::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
    }

    /// A new handle to the same socket (its timeouts are copied).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Sets the read timeout (reads that wait longer fail with `WouldBlock`).
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(dur)
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_write(dur)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.read())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.write())
    }

    /// Receives data without removing it from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(
            self.inner.as_raw_fd(),
            buf,
            libc::MSG_PEEK,
            self.timeouts.read_deadline(),
        )
    }

    /// Gets and clears the socket's pending error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Moves the socket into or out of non-blocking mode, as std's: in non-blocking mode, a call
    /// that would wait fails with [`io::ErrorKind::WouldBlock`] instead. (Either way the
    /// descriptor itself stays non-blocking: hilos does the waiting.)
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.timeouts.set_nonblocking(nonblocking);
        Ok(())
    }
}

stream_io!(UnixStream);

impl UnixDatagram {
    /// Creates a socket bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(unet::UnixDatagram::bind(path)?))
    }

    /// Creates a socket bound to `addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(unet::UnixDatagram::bind_addr(addr)?))
    }

    /// Creates a socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(unet::UnixDatagram::unbound()?))
    }

    /// An unnamed pair of connected sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = unet::UnixDatagram::pair()?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    /// Connects the socket to `path` (datagram sockets connect without waiting).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Receives one datagram; returns its length and the sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut from = RawAddr::empty();
        let (n, _) = sys::recvmsg(
            self.inner.as_raw_fd(),
            &mut [IoSliceMut::new(buf)],
            0,
            Some(&mut from),
            self.timeouts.read_deadline(),
        )?;
        Ok((n, to_std(&from)?))
    }

    /// Receives one datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(
            self.inner.as_raw_fd(),
            buf,
            0,
            self.timeouts.read_deadline(),
        )
    }

    /// Sends `buf` to the socket at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let raw = path_addr(path.as_ref())?;
        sys::sendmsg(
            self.inner.as_raw_fd(),
            &[IoSlice::new(buf)],
            Some((raw.as_ptr(), raw.len)),
            self.timeouts.write_deadline(),
        )
    }

    /// Sends `buf` to the socket at `addr`.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        let raw = std_addr(addr)?;
        sys::sendmsg(
            self.inner.as_raw_fd(),
            &[IoSlice::new(buf)],
            Some((raw.as_ptr(), raw.len)),
            self.timeouts.write_deadline(),
        )
    }

    /// Sends `buf` to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.inner.as_raw_fd(), buf, self.timeouts.write_deadline())
    }

    /// Sets the read timeout (receives that wait longer fail with `WouldBlock`).
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(dur)
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_write(dur)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.read())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.write())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// A new handle to the same socket (its timeouts are copied).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// Gets and clears the socket's pending error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Moves the socket into or out of non-blocking mode, as std's: in non-blocking mode, a call
    /// that would wait fails with [`io::ErrorKind::WouldBlock`] instead. (Either way the
    /// descriptor itself stays non-blocking: hilos does the waiting.)
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.timeouts.set_nonblocking(nonblocking);
        Ok(())
    }
}

fd_conversions!(
    UnixStream,
    unet::UnixStream,
    |s| {
        let timeouts = Timeouts::with(
            s.read_timeout().ok().flatten(),
            s.write_timeout().ok().flatten(),
        );
        UnixStream { inner: s, timeouts }
    },
    |o| {
        let _ = o.inner.set_read_timeout(o.timeouts.read());
        let _ = o.inner.set_write_timeout(o.timeouts.write());
        o.inner
    }
);
fd_conversions!(
    UnixDatagram,
    unet::UnixDatagram,
    |s| {
        let timeouts = Timeouts::with(
            s.read_timeout().ok().flatten(),
            s.write_timeout().ok().flatten(),
        );
        UnixDatagram { inner: s, timeouts }
    },
    |o| {
        let _ = o.inner.set_read_timeout(o.timeouts.read());
        let _ = o.inner.set_write_timeout(o.timeouts.write());
        o.inner
    }
);
fd_conversions!(
    UnixListener,
    unet::UnixListener,
    |s| UnixListener {
        inner: s,
        timeouts: Timeouts::default()
    },
    |o| o.inner
);
