//! Networking that parks only the calling green thread: the types of [`std::net`] and
//! [`std::os::unix::net`], with the same methods.
//!
//! Sockets are kept in non-blocking mode; hilos waits for them through the worker's io_uring (or
//! epoll). From a plain kernel thread every call blocks, as std's. Converting to and from the std
//! types (`From`) switches the mode, so a socket can be handed to code that wants std's types.

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
