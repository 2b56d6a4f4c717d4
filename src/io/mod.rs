//! I/O that parks only the calling green thread.

pub(crate) mod driver;

pub use driver::IoBackend;
