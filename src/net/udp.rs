//! UDP sockets whose blocking calls park only the calling green thread.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::{RawAddr, ToSocketAddrs, each_addr};
use super::sys::{self, Timeouts};
use super::tcp::fd_conversions;

/// A UDP socket, as [`std::net::UdpSocket`]. Receiving and sending park only the calling green
/// thread; read and write timeouts fail with [`io::ErrorKind::WouldBlock`], as std's on Linux.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use hilos::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
/// let to = a.local_addr().unwrap();
/// hilos::spawn(move || b.send_to(b"hi", to).unwrap());
/// let mut buf = [0; 16];
/// let (n, _from) = a.recv_from(&mut buf).unwrap();
/// assert_eq!(&buf[..n], b"hi");
/// ```
pub struct UdpSocket {
    inner: std::net::UdpSocket,
    timeouts: Timeouts,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (trying each address it resolves to).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let inner = each_addr(&addr, |a| std::net::UdpSocket::bind(a))?;
        Ok(UdpSocket::from(inner))
    }

    /// Receives one datagram; returns its length and the sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, 0)
    }

    /// As [`UdpSocket::recv_from`], without removing the datagram from the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_flags(buf, libc::MSG_PEEK)
    }

    fn recv_from_flags(&self, buf: &mut [u8], flags: i32) -> io::Result<(usize, SocketAddr)> {
        let mut from = RawAddr::empty();
        let (n, _) = sys::recvmsg(
            self.inner.as_raw_fd(),
            &mut [IoSliceMut::new(buf)],
            flags,
            Some(&mut from),
            self.timeouts.read_deadline(),
        )?;
        Ok((n, from.to_std()?))
    }

    /// Sends `buf` to `addr` (the first address it resolves to, as std's).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        let raw = RawAddr::from_std(&to);
        sys::sendmsg(
            self.inner.as_raw_fd(),
            &[IoSlice::new(buf)],
            Some((raw.as_ptr(), raw.len)),
            self.timeouts.write_deadline(),
        )
    }

    /// Connects the socket to `addr`: [`send`](UdpSocket::send) and [`recv`](UdpSocket::recv)
    /// then use it, and datagrams from elsewhere are dropped.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        // connect(2) on a datagram socket does not block.
        each_addr(&addr, |a| self.inner.connect(a))
    }

    /// Sends `buf` to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.inner.as_raw_fd(), buf, self.timeouts.write_deadline())
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

    /// As [`UdpSocket::recv`], without removing the datagram from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(
            self.inner.as_raw_fd(),
            buf,
            libc::MSG_PEEK,
            self.timeouts.read_deadline(),
        )
    }

    /// Sets the read timeout (`None`: wait for ever; zero is an `InvalidInput` error).
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
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: self.inner.try_clone()?,
            timeouts: self.timeouts.duplicate(),
        })
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Gets `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Gets `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Sets `IP_MULTICAST_LOOP`: whether multicast sent from this socket loops back to it.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// Gets `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`: how many hops multicast sent from this socket may take.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_multicast_ttl_v4(ttl)
    }

    /// Gets `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v6(on)
    }

    /// Gets `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v6()
    }

    /// Joins an IPv4 multicast group.
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, iface: &Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(group, iface)
    }

    /// Joins an IPv6 multicast group.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, iface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(group, iface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, iface: &Ipv4Addr) -> io::Result<()> {
        self.inner.leave_multicast_v4(group, iface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, iface: u32) -> io::Result<()> {
        self.inner.leave_multicast_v6(group, iface)
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

fd_conversions!(
    UdpSocket,
    std::net::UdpSocket,
    |s| {
        let timeouts = Timeouts::with(
            s.read_timeout().ok().flatten(),
            s.write_timeout().ok().flatten(),
        );
        UdpSocket { inner: s, timeouts }
    },
    |o| {
        let _ = o.inner.set_read_timeout(o.timeouts.read());
        let _ = o.inner.set_write_timeout(o.timeouts.write());
        o.inner
    }
);
