//! TCP sockets whose blocking calls park only the calling green thread.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::{RawAddr, ToSocketAddrs, each_addr};
use super::sys::{self, Timeouts};

/// A TCP socket server, listening for connections, as [`std::net::TcpListener`].
///
/// [`accept`](TcpListener::accept) parks only the calling green thread until a connection comes.
///
/// # Examples
/// An echo server, one green thread per connection (here it stops after one connection):
/// ```
/// use std::io::{Read, Write};
/// let listener = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// hilos::spawn(move || {
///     for stream in listener.incoming().take(1) {
///         let mut stream = stream.unwrap();
///         hilos::spawn(move || {
///             let mut buf = [0; 1024];
///             while let Ok(n @ 1..) = stream.read(&mut buf) {
///                 stream.write_all(&buf[..n]).unwrap();
///             }
///         });
///     }
/// });
/// let mut client = hilos::net::TcpStream::connect(addr).unwrap();
/// client.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// client.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
pub struct TcpListener {
    inner: std::net::TcpListener,
    /// Only the non-blocking flag is used.
    timeouts: Timeouts,
}

/// A TCP stream between a local and a remote socket, as [`std::net::TcpStream`].
///
/// Reads and writes park only the calling green thread. `Read` and `Write` are implemented for
/// the type and for `&TcpStream`, so code written for std's `impl Read + Write` works unchanged.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use hilos::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = hilos::spawn(move || {
///     let (mut stream, _peer) = listener.accept().unwrap();
///     stream.write_all(b"hello").unwrap();
/// }); // the stream is closed here
/// let mut stream = TcpStream::connect(addr).unwrap();
/// let mut reply = String::new();
/// stream.read_to_string(&mut reply).unwrap();
/// assert_eq!(reply, "hello");
/// server.join().unwrap();
/// ```
pub struct TcpStream {
    inner: std::net::TcpStream,
    timeouts: Timeouts,
}

/// An iterator over the connections of a [`TcpListener`], from [`TcpListener::incoming`].
///
/// # Examples
/// ```
/// use hilos::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let clients = hilos::spawn(move || {
///     let a = TcpStream::connect(addr).unwrap();
///     let b = TcpStream::connect(addr).unwrap();
///     (a.local_addr().unwrap(), b.local_addr().unwrap())
/// });
/// let peers: Vec<_> = (listener.incoming().take(2))
///     .map(|s| s.unwrap().peer_addr().unwrap())
///     .collect();
/// let (a, b) = clients.join().unwrap();
/// assert_eq!(peers, [a, b]);
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (trying each address it resolves to), as std's. A
    /// host name is resolved without blocking the worker.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        // bind(2) and listen(2) do not block.
        let inner = each_addr(&addr, |a| std::net::TcpListener::bind(a))?;
        inner.set_nonblocking(true)?;
        let timeouts = Timeouts::default();
        // A green-thread server accepts bursts of thousands of connections: ask for the largest
        // backlog (the kernel caps it at net.core.somaxconn) rather than std's 128.
        // SAFETY: listen(2) on a socket we own; calling it again only changes the backlog.
        unsafe { libc::listen(inner.as_raw_fd(), 65535) };
        Ok(TcpListener { inner, timeouts })
    }

    /// Accepts a new connection, parking the calling green thread until one arrives. Returns the
    /// stream and the peer's address.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut addr = RawAddr::empty();
        let fd = sys::accept(
            self.inner.as_raw_fd(),
            &mut addr,
            self.timeouts.read_deadline(),
        )?;
        let stream = TcpStream {
            inner: std::net::TcpStream::from(fd),
            timeouts: Timeouts::default(),
        };
        let peer = addr.to_std().or_else(|_| stream.peer_addr())?;
        Ok((stream, peer))
    }

    /// An iterator over incoming connections (never `None`), as std's.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A new handle to the same socket.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Sets `IPV6_V6ONLY` (deprecated in std as well, where it is kept for compatibility: on a
    /// bound listener it has no effect on which connections arrive).
    ///
    /// # Examples
    /// ```
    /// #![allow(deprecated)]
    /// let l = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// // An IPv4 socket has no such option: std's call fails the same way.
    /// assert!(l.set_only_v6(true).is_err());
    /// ```
    #[deprecated(since = "0.1.0", note = "as std's: not useful on a bound listener")]
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        #[allow(deprecated)]
        self.inner.set_only_v6(only_v6)
    }

    /// Gets `IPV6_V6ONLY` (deprecated in std as well, where it is kept for compatibility).
    #[deprecated(since = "0.1.0", note = "as std's: not useful on a bound listener")]
    pub fn only_v6(&self) -> io::Result<bool> {
        #[allow(deprecated)]
        self.inner.only_v6()
    }

    /// Gets and clears the socket's pending error (`SO_ERROR`).
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

// `next` never returns `None`, so the iterator is trivially fused (as std's).
impl std::iter::FusedIterator for Incoming<'_> {}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    /// Opens a connection to `addr` (trying each address it resolves to in turn), parking only
    /// the calling green thread. A host name is resolved without blocking the worker.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| TcpStream::connect_inner(a, None))
    }

    /// Opens a connection to `addr`, failing with [`io::ErrorKind::TimedOut`] after `timeout`.
    /// A zero timeout is an `InvalidInput` error, as std's.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_inner(addr, Some(timeout))
    }

    fn connect_inner(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let fd = sys::socket(domain, libc::SOCK_STREAM)?;
        let raw = RawAddr::from_std(addr);
        sys::connect(
            fd.as_raw_fd(),
            raw.as_ptr(),
            raw.len,
            crate::io::op::deadline(timeout),
        )?;
        Ok(TcpStream {
            inner: std::net::TcpStream::from(fd),
            timeouts: Timeouts::default(),
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// A new handle to the same socket (its timeouts are copied).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// Sets the read timeout: a read that waits longer fails with
    /// [`io::ErrorKind::WouldBlock`], as std's on Linux. `None` waits for ever; a zero duration is
    /// an `InvalidInput` error. The timeout belongs to this handle (not to clones made before).
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(dur)
    }

    /// Sets the write timeout, as [`TcpStream::set_read_timeout`].
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

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Gets `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Gets and clears the socket's pending error (`SO_ERROR`).
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

stream_io!(TcpStream);

macro_rules! fd_conversions {
    ($t:ident, $std:ty, |$s:ident| $make:expr, |$o:ident| $unmake:expr) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }
        impl IntoRawFd for $t {
            /// Gives up the descriptor, which stays in non-blocking mode.
            fn into_raw_fd(self) -> RawFd {
                self.inner.into_raw_fd()
            }
        }
        impl FromRawFd for $t {
            /// Takes ownership of the socket `fd` (as `From` the std type does).
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller gives us ownership of an open socket.
                <$t>::from(unsafe { <$std>::from_raw_fd(fd) })
            }
        }
        impl From<OwnedFd> for $t {
            /// Takes ownership of the socket `fd` (as `From` the std type does).
            fn from(fd: OwnedFd) -> $t {
                <$t>::from(<$std>::from(fd))
            }
        }
        impl From<$t> for OwnedFd {
            /// Gives up the descriptor, which stays in non-blocking mode.
            fn from(s: $t) -> OwnedFd {
                s.inner.into()
            }
        }
        impl From<$std> for $t {
            /// Adopts a std socket (in whichever mode it was: hilos keeps the descriptor
            /// non-blocking and waits for it itself, unless the socket was non-blocking).
            fn from($s: $std) -> $t {
                let nonblocking = sys::is_nonblocking($s.as_raw_fd());
                let _ = sys::set_nonblocking($s.as_raw_fd(), true);
                let t = $make;
                t.timeouts.set_nonblocking(nonblocking);
                t
            }
        }
        impl From<$t> for $std {
            /// Back to a std socket, in the mode it had here (blocking by default).
            fn from($o: $t) -> $std {
                let _ = sys::set_nonblocking($o.inner.as_raw_fd(), $o.timeouts.nonblocking());
                $unmake
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.inner, f)
            }
        }
    };
}
pub(crate) use fd_conversions;

fd_conversions!(
    TcpStream,
    std::net::TcpStream,
    |s| {
        let timeouts = Timeouts::with(
            s.read_timeout().ok().flatten(),
            s.write_timeout().ok().flatten(),
        );
        TcpStream { inner: s, timeouts }
    },
    |o| {
        let _ = o.inner.set_read_timeout(o.timeouts.read());
        let _ = o.inner.set_write_timeout(o.timeouts.write());
        o.inner
    }
);
fd_conversions!(
    TcpListener,
    std::net::TcpListener,
    |s| TcpListener {
        inner: s,
        timeouts: Timeouts::default()
    },
    |o| o.inner
);
