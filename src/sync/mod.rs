//! Green-aware synchronization (in progress).
