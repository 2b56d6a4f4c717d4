//! The io_uring half of the driver (see the parent module's doc for the protocol).
//!
//! Ring setup: `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` where the kernel has them (the ring
//! is used only by its worker's kernel thread, which creates it), else a plain ring. With
//! `DEFER_TASKRUN`, completions are posted only when the worker enters the kernel with
//! `GETEVENTS`; the `TASKRUN` flag in the submission ring tells it when that is needed, so a pass
//! with nothing pending costs no system call. The completion queue is four times the submission
//! queue; overflowing completions are kept by the kernel (`NODROP`) and flushed at the next enter.
//!
//! # Draining
//! With `DEFER_TASKRUN`, a receive whose data has arrived is only queued in the kernel: the copy
//! (which takes the data off the socket) and its completion happen when the worker enters with
//! `GETEVENTS`, and since Linux 6.13 one enter runs at most 20 of them (`IO_LOCAL_TW_DEFAULT_MAX`)
//! unless it waits for more. Entering once per pass, as hilos first did, a worker with thousands
//! of connections took 20 receives per pass while the rest of the data sat unread; at 10,000
//! echo connections (harness, 2-core VM) 90% of the server's sockets held unread requests, 50 ms
//! old at the median. Past TCP's delayed-ACK timeout (40 ms) the kernel acknowledges each such
//! request on its own (the connection leaves its interactive mode), one more segment per
//! request for both ends: 250,000 delayed ACKs in a 3 s run. So a pass enters again while the
//! kernel says work is left (the `TASKRUN` flag) and the last enter brought a full batch, up to
//! `DRAIN_ENTERS` times. Measured the same minutes (`/tmp`-built driver of the harness's echo
//! workload, 2 s runs, three rounds): 10,000 connections 107-128 k/s -> 128-148 k/s and delayed
//! ACKs 5x fewer; 100 and 1,000 connections unchanged within noise. Rejected: polling the driver
//! while an idle worker spins (no gain, measured), a larger completion queue (no change: the
//! completions were not overflowing, they were not yet run).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

use super::Completion;

/// User data of the armed eventfd read.
const WAKE_UD: u64 = 0;
/// User data of submissions whose completion nobody waits for (cancellations).
const IGNORE_UD: u64 = 1;

/// Submission queue size of a worker's ring.
const ENTRIES: u32 = 1024;
/// Most extra enters of one pass to run deferred completions ([`Uring::poll`]): 16 x 20.
const DRAIN_ENTERS: usize = 16;
/// How many deferred completions the kernel runs per enter at most (`IO_LOCAL_TW_DEFAULT_MAX`
/// in io_uring, since Linux 6.13; before, one enter ran them all).
const KERNEL_TW_BATCH: usize = 20;
/// The smallest ring tried when setup fails with `ENOMEM`.
const MIN_ENTRIES: u32 = 32;

/// The opcodes hilos submits; a kernel without one of them gets the epoll fallback.
const OPCODES: &[u8] = &[
    opcode::Read::CODE,
    opcode::Write::CODE,
    opcode::Readv::CODE,
    opcode::Writev::CODE,
    opcode::Recv::CODE,
    opcode::Send::CODE,
    opcode::RecvMsg::CODE,
    opcode::SendMsg::CODE,
    opcode::Accept::CODE,
    opcode::Connect::CODE,
    opcode::PollAdd::CODE,
    opcode::AsyncCancel::CODE,
    opcode::Fsync::CODE,
];

/// Path operations (Linux 5.15): submitted where the kernel has all of them; without them,
/// [`crate::fs`] runs those calls on the blocking pool and the rest of the ring is unaffected.
const PATH_OPCODES: &[u8] = &[
    opcode::MkDirAt::CODE,
    opcode::RenameAt::CODE,
    opcode::UnlinkAt::CODE,
    opcode::LinkAt::CODE,
    opcode::SymlinkAt::CODE,
];

/// Whether the kernel's io_uring has [`PATH_OPCODES`] (set by every ring's setup; the answer is
/// the same for every ring of the process).
static PATH_OPS: AtomicBool = AtomicBool::new(false);

/// Whether path operations (mkdir, rename, unlink, link, symlink) may be submitted to a ring.
pub(crate) fn has_path_ops() -> bool {
    PATH_OPS.load(Ordering::Relaxed)
}

fn build(entries: u32) -> io::Result<IoUring> {
    let tuned = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(entries * 4)
        .build(entries);
    match tuned {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Older kernels (before 6.1) lack some of the flags: a plain ring.
            IoUring::builder().setup_cqsize(entries * 4).build(entries)
        }
        r => r,
    }
}

/// Sets up a ring, retrying smaller ones on `ENOMEM` (`RLIMIT_MEMLOCK` before Linux 5.12), and
/// checks the features and opcodes hilos needs.
fn setup(mut entries: u32) -> io::Result<IoUring> {
    let ring = loop {
        match build(entries) {
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && entries > MIN_ENTRIES => {
                entries /= 4;
            }
            r => break r?,
        }
    };
    let p = ring.params();
    if !p.is_feature_ext_arg() || !p.is_feature_nodrop() || !p.is_feature_rw_cur_pos() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring lacks EXT_ARG, NODROP or RW_CUR_POS (Linux 5.11 or later needed)",
        ));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let path_ops = PATH_OPCODES.iter().all(|&op| probe.is_supported(op));
    PATH_OPS.store(path_ops, Ordering::Relaxed);
    if let Some(op) = OPCODES.iter().find(|&&op| !probe.is_supported(op)) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring lacks opcode {op}"),
        ));
    }
    Ok(ring)
}

/// Checks once per runtime that io_uring works here, with a small throw-away ring.
pub(crate) fn probe() -> io::Result<()> {
    setup(MIN_ENTRIES).map(drop)
}

/// One worker's ring.
pub(crate) struct Uring {
    ring: IoUring,
    wake_fd: RawFd,
    /// Where the armed eventfd read writes. Leaked (8 bytes per worker): the kernel cancels the
    /// read asynchronously after the ring is closed, so no lifetime we control bounds it.
    wake_buf: &'static mut u64,
    /// Operations pushed and completions reaped (for metrics).
    pub(crate) counts: super::IoCounts,
}

impl Uring {
    pub(crate) fn new(wake_fd: RawFd) -> io::Result<Uring> {
        let mut u = Uring {
            ring: setup(ENTRIES)?,
            wake_fd,
            wake_buf: Box::leak(Box::new(0)),
            counts: super::IoCounts::default(),
        };
        u.arm_wake();
        u.flush();
        Ok(u)
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.wake_fd),
            (&raw mut *self.wake_buf).cast::<u8>(),
            8,
        )
        .build()
        .user_data(WAKE_UD);
        // SAFETY: `wake_buf` is leaked, so valid for ever; the eventfd is owned by the worker's
        // Home, which outlives the worker and so the ring.
        unsafe { self.push(e) };
    }

    /// Queues a submission (handed to the kernel at the next [`Uring::poll`] or [`Uring::wait`],
    /// or at once if the submission queue is full).
    ///
    /// # Safety
    /// Every pointer in `e` (buffers, addresses, and the user data if it is a [`Completion`]'s)
    /// must stay valid until the operation's completion has been reaped.
    pub(crate) unsafe fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller's contract.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                // Only green threads' operations: not the eventfd read or cancellations.
                if e.get_user_data() > IGNORE_UD {
                    self.counts.submitted += 1;
                }
                return;
            }
            // Full: hand what is queued to the kernel, making room.
            self.submit();
            self.reap();
        }
    }

    /// Asks the kernel to cancel the operation whose user data is `ud`. Its completion still
    /// comes (with `-ECANCELED`, or its own result if it finished first).
    pub(crate) fn cancel(&mut self, ud: u64) {
        let e = opcode::AsyncCancel::new(ud).build().user_data(IGNORE_UD);
        // SAFETY: the cancellation carries no pointer; its completion is ignored.
        unsafe { self.push(e) };
    }

    /// Hands queued submissions to the kernel without waiting.
    pub(crate) fn flush(&mut self) {
        if !self.ring.submission().is_empty() {
            self.submit();
        }
    }

    /// `io_uring_enter` for the queued submissions (with `GETEVENTS`, which runs deferred
    /// completions, when the ring's flags ask for it). Retries `EINTR`; on a busy completion queue
    /// reaps first.
    fn submit(&mut self) {
        loop {
            match self.ring.submit() {
                Ok(_) => return,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EBUSY | libc::EAGAIN) => {
                        // The completion queue is full (or memory is short): make room, retry.
                        if self.reap() == 0 {
                            std::thread::yield_now();
                        }
                    }
                    _ => panic!("hilos: io_uring_enter failed: {e}"),
                },
            }
        }
    }

    /// The worker's non-blocking pass: submit, run deferred completions, reap. The kernel runs
    /// at most 20 deferred completions per enter (`IO_LOCAL_TW_DEFAULT_MAX`) and leaves the
    /// `TASKRUN` flag set when more wait, so the pass enters again while it is set, up to
    /// [`DRAIN_ENTERS`] times: otherwise received data waits in the kernel, unread, behind the
    /// worker's whole pass (module doc, "Draining").
    pub(crate) fn poll(&mut self) {
        let need_enter = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if !need_enter {
            self.reap();
            return;
        }
        // The crate adds GETEVENTS itself when the TASKRUN or overflow flag is set.
        self.submit();
        let mut got = self.reap();
        for _ in 0..DRAIN_ENTERS {
            // A batch smaller than the kernel's cap means the deferred list was emptied; the
            // flag may be set again by data that arrived since, which the next pass takes.
            if got < KERNEL_TW_BATCH || !self.ring.submission().taskrun() {
                break;
            }
            self.submit();
            got = self.reap();
        }
    }

    /// The worker's sleep: submit and wait for one completion or `timeout`, then reap.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) {
        let ts;
        let mut args = types::SubmitArgs::new();
        if let Some(t) = timeout {
            ts = types::Timespec::from(t);
            args = args.timespec(&ts);
        }
        if let Err(e) = self.ring.submitter().submit_with_args(1, &args) {
            match e.raw_os_error() {
                // Timed out, interrupted by a signal, or a full completion queue (reaped below):
                // the caller re-checks everything anyway.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                _ => panic!("hilos: io_uring_enter failed: {e}"),
            }
        }
        self.reap();
    }

    /// Reaps every posted completion; returns how many.
    fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut rearm = false;
        {
            let cq = self.ring.completion();
            for cqe in cq {
                n += 1;
                match cqe.user_data() {
                    WAKE_UD => rearm = true,
                    IGNORE_UD => {}
                    ud => {
                        self.counts.completed += 1;
                        // SAFETY: every other user data is a live Completion's: its thread waits
                        // for exactly this completion (module protocol).
                        unsafe { Completion::complete(ud, cqe.result()) }
                    }
                }
            }
        }
        if rearm {
            self.arm_wake();
        }
        n
    }
}
