//! Networking that parks only the calling green thread: the types of [`std::net`] and
//! [`std::os::unix::net`], with the same methods.
//!
//! The descriptors are kept in non-blocking mode; hilos waits for them through the worker's
//! io_uring (or epoll). From a plain kernel thread every call blocks, as std's. `set_nonblocking`
//! and the read and write timeouts behave as std's, but live in the object rather than in the
//! kernel (a clone made with `try_clone` copies them). Converting to and from the std types
//! (`From`) carries the non-blocking mode and the timeouts over, so a socket can be handed to code
//! that wants std's types. [`IntoRawFd`](std::os::fd::IntoRawFd) gives up a descriptor that is
//! still in non-blocking mode.

/// `Read` and `Write` for a stream socket type and for a shared reference to it, as std has
/// them: through the green-aware `sys` calls with the socket's own timeouts. The type has an
/// `inner` socket and a `timeouts` field.
macro_rules! stream_io {
    ($t:ty) => {
        impl Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                sys::recv(
                    self.inner.as_raw_fd(),
                    buf,
                    0,
                    self.timeouts.read_deadline(),
                )
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                sys::recvmsg(
                    self.inner.as_raw_fd(),
                    bufs,
                    0,
                    None,
                    self.timeouts.read_deadline(),
                )
                .map(|(n, _)| n)
            }
        }

        impl Write for &$t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                sys::send(self.inner.as_raw_fd(), buf, self.timeouts.write_deadline())
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                sys::sendmsg(
                    self.inner.as_raw_fd(),
                    bufs,
                    None,
                    self.timeouts.write_deadline(),
                )
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl Write for $t {
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
    };
}

mod addr;
mod sys;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{Incoming as UnixIncoming, UnixDatagram, UnixListener, UnixStream};
