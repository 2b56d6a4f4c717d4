//! std's `os` paths for what hilos gives: `use hilos::os::unix::net::UnixStream` stands for
//! `use std::os::unix::net::UnixStream`, and `hilos::os::unix::fs` has std's Unix file calls and
//! extension traits (which hilos's [`crate::fs`] types implement). Re-exports only, apart from
//! the four calls of `unix::fs`, which live in `fs`.

/// Unix-specific parts, as [`std::os::unix`].
pub mod unix {
    /// Unix sockets, as [`std::os::unix::net`]: hilos's [`crate::net`] types, whose waits park
    /// only the calling green thread.
    ///
    /// # Examples
    /// ```
    /// use hilos::os::unix::net::UnixStream;
    /// use std::io::{Read, Write};
    ///
    /// let (mut a, mut b) = UnixStream::pair().unwrap();
    /// let h = hilos::spawn(move || {
    ///     let mut buf = [0; 5];
    ///     b.read_exact(&mut buf).unwrap();
    ///     buf
    /// });
    /// a.write_all(b"hello").unwrap();
    /// assert_eq!(&h.join().unwrap(), b"hello");
    /// ```
    pub mod net {
        pub use crate::net::{UnixDatagram, UnixIncoming as Incoming, UnixListener, UnixStream};
        pub use std::os::unix::net::SocketAddr;
    }

    /// Unix file extensions, as [`std::os::unix::fs`]: std's extension traits (implemented by
    /// hilos's `File`, `OpenOptions`, `DirEntry` and `DirBuilder`, and by std's `Metadata`,
    /// `Permissions` and `FileType`, which hilos re-exports), and the calls, which park only the
    /// calling green thread.
    ///
    /// # Examples
    /// ```
    /// use hilos::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    ///
    /// let path = std::env::temp_dir().join(format!("hilos-doc-{}-mode", std::process::id()));
    /// let _ = hilos::fs::remove_file(&path);
    /// let f = hilos::fs::OpenOptions::new().write(true).create(true).mode(0o600).open(&path);
    /// let mode = f.unwrap().metadata().unwrap().permissions().mode();
    /// assert_eq!(mode & 0o777, 0o600);
    /// hilos::fs::remove_file(&path).unwrap();
    /// ```
    pub mod fs {
        pub use crate::fs::owner::{chown, chroot, fchown, lchown};
        pub use crate::fs::symlink;
        pub use std::os::unix::fs::{
            DirBuilderExt, DirEntryExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt,
            PermissionsExt,
        };
    }

    /// Descriptor traits and types, as [`std::os::unix::io`] (std's own).
    pub mod io {
        pub use std::os::unix::io::*;
    }
}

/// Owned and borrowed descriptors, as [`std::os::fd`] (std's own, which hilos's types
/// implement).
pub mod fd {
    pub use std::os::fd::*;
}
