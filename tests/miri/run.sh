#!/usr/bin/env bash
# Miri on the pure-Rust lists: the wait queue (src/sync/waitq.rs, tests in waitq_tests.rs) and
# the channels' queues (src/sync/mpsc, tests in mpsc/tests.rs). These tests drive the lists from
# plain kernel threads only (no runtime, no green thread, no context switch, no I/O), which is
# all Miri can run of hilos: it cannot execute the context switch's assembly, io_uring or the
# stack mappings, so the rest of the suite is left to the native run.
#
# - Several scheduler seeds (-Zmiri-many-seeds): each explores other interleavings of the racing
#   tests (a timed-out waiter unlinking itself while a waker pops, senders racing a parking
#   receiver).
# - One more pass under Tree Borrows, the aliasing model that may replace Stacked Borrows.
# - Not -Zmiri-strict-provenance: two spots turn integers back into pointers (exposed
#   provenance, allowed by Miri's default mode, which prints a warning for each):
#   parking_lot_core's word lock (the queue lock's slow path, when three threads contend), and
#   the rendezvous channel's waiter tag (src/sync/mpsc/zero.rs: a pointer to the hand-off slot
#   kept in `Waiter::tag`, a usize). Everything else these tests reach is strict-provenance clean.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null \
        || ! { rustup toolchain list | grep -q '^nightly' \
                   || rustup toolchain install nightly --profile minimal; } \
        || ! rustup component add --toolchain nightly miri rust-src; then
        echo "Miri: SKIPPED: could not install the nightly toolchain's miri component" \
             "(rustup component add --toolchain nightly miri rust-src failed)" >&2
        exit 0
    fi
fi
cargo +nightly miri setup

filter=(sync::waitq sync::mpsc)
MIRIFLAGS="-Zmiri-many-seeds=0..6" \
    cargo +nightly miri test --lib --target-dir target/miri -- "${filter[@]}"
MIRIFLAGS="-Zmiri-tree-borrows" \
    cargo +nightly miri test --lib --target-dir target/miri -- "${filter[@]}"
