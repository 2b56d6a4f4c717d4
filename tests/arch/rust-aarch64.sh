#!/usr/bin/env bash
# The Rust test suite built for aarch64 and run under qemu-aarch64 (user mode), so the aarch64
# side of hilos (the context switch's Rust glue, stack setup, the scheduler, sync, the epoll
# driver) runs as a program, not only the assembly in tests/arch/harness.c.
#
# What the emulator cannot do, and is therefore left to the native run:
# - io_uring: qemu-user answers ENOSYS, so the suite runs with HILOS_IO=epoll; tests that force
#   the io_uring backend in a child (echo_10k_concurrent_connections, stdio_through_pipes,
#   emfile_on_accept) are skipped.
# - seccomp filters: they see the host's system calls, not the emulated ones
#   (unavailable_io_uring_falls_back_to_epoll, a_guard_advice_that_succeeds_without_effect_...).
# - MADV_GUARD_INSTALL: qemu ignores it (hilos detects that and uses mprotect guards), so the
#   tests that need more stacks than the mapping limit allows with mprotect are skipped
#   (hundred_thousand_threads_alive_at_once, a_million_spawn_join_in_total,
#   dump_of_100_000_parked_threads_lists_them_all_quickly), as is the one that
#   counts mappings up to the limit (qemu maps on its own).
# - An address-space limit (`ulimit -v`) applies to the emulator itself, so the test that spawns
#   until the limit (a_spawn_that_fails_for_address_space_leaves_the_process_able_to_run) is left
#   to the native run.
# - The emulator's own memory (its translation caches) grows as it runs, so the test that checks
#   RSS stays flat over a million green threads (a_million_green_threads_that_malloc_leave_rss_flat)
#   is left to the native run, as are the two that check RSS after millions of early-ended timed
#   waits (tests/timers.rs: early_ended_timed_waits_leave_rss_flat,
#   joined_threads_woken_early_do_not_stay_allocated), which also take minutes emulated.
# What runs differently: tests/gdb.rs cannot attach gdb to an emulated process, so it runs its
# child under qemu-aarch64's gdb stub and drives it with gdb-multiarch (skipped if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! command -v rustup >/dev/null || ! rustup target add "$target"; then
        echo "aarch64 Rust tests: SKIPPED: could not install the $target standard library" \
             "(rustup target add $target failed)" >&2
        exit 0
    fi
fi

runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
# Tests that re-run their own binary in a child go through the emulator too.
export HILOS_TEST_RUNNER="$runner"
export HILOS_IO=epoll

cargo test --target "$target" -- \
    --skip echo_10k_concurrent_connections \
    --skip stdio_through_pipes \
    --skip emfile_on_accept \
    --skip unavailable_io_uring_falls_back_to_epoll \
    --skip a_guard_advice_that_succeeds_without_effect_is_not_trusted \
    --skip hundred_thousand_threads_alive_at_once \
    --skip a_million_spawn_join_in_total \
    --skip dump_of_100_000_parked_threads_lists_them_all_quickly \
    --skip mprotect_fallback_explains_the_mapping_limit \
    --skip a_million_green_threads_that_malloc_leave_rss_flat \
    --skip a_spawn_that_fails_for_address_space_leaves_the_process_able_to_run \
    --skip early_ended_timed_waits_leave_rss_flat \
    --skip joined_threads_woken_early_do_not_stay_allocated
echo "aarch64 Rust tests under qemu-aarch64: passed"
