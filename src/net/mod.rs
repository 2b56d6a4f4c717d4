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

mod addr;
mod sys;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{Incoming as UnixIncoming, UnixDatagram, UnixListener, UnixStream};
