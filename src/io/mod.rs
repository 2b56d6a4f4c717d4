//! I/O that parks only the calling green thread (in progress).
