//! The epoll fallback of the driver: readiness for sockets, pipes and foreign descriptors.
//!
//! # The design
//! One epoll instance per worker. A descriptor is registered only while some green thread of this
//! worker waits on it: the registration's interest is the union of its waiters' (level-triggered,
//! so a waiter that stays registered after an event cannot miss one), and it is removed when its
//! last waiter leaves. Because the waiting green thread borrows the object that owns the
//! descriptor, the descriptor cannot be closed (and its number reused) while it is registered.
//!
//! Rejected: registering every descriptor for its lifetime, edge-triggered (one `epoll_ctl` per
//! descriptor instead of two per wait), because a descriptor used from several workers would need
//! deregistering from each at close, and `dup`ed descriptors keep a closed one's registration
//! alive, delivering events for a number that may have been reused.
//!
//! The worker's eventfd is registered for good, with user data [`WAKE`]; the driver drains it when
//! it reports readable (it is switched to non-blocking mode here, so a drain can never block).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::Waiter;

const WAKE: u64 = u64::MAX;
const MAX_EVENTS: usize = 256;

struct Reg {
    waiters: Vec<*const Waiter>,
    mask: u32,
}

/// One worker's epoll instance and its registrations.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    wake_fd: RawFd,
    regs: HashMap<RawFd, Reg>,
    events: Vec<libc::epoll_event>,
    /// Readiness waits registered and fired (for metrics).
    pub(crate) counts: super::IoCounts,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Epoll {
    pub(crate) fn new(wake_fd: RawFd) -> io::Result<Epoll> {
        // SAFETY: plain system call.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: a fresh descriptor nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain fcntl calls on the worker's eventfd.
        unsafe {
            let fl = cvt(libc::fcntl(wake_fd, libc::F_GETFL))?;
            cvt(libc::fcntl(wake_fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
        }
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE,
        };
        // SAFETY: `ev` is a live epoll_event.
        cvt(unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, wake_fd, &mut ev) })?;
        Ok(Epoll {
            epfd,
            wake_fd,
            regs: HashMap::new(),
            events: Vec::with_capacity(MAX_EVENTS),
            counts: super::IoCounts::default(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, mask: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: mask,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a live epoll_event (ignored by EPOLL_CTL_DEL).
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    fn mask_of(waiters: &[*const Waiter]) -> u32 {
        let m = waiters.iter().fold(0, |m, &w| {
            // SAFETY: registered waiters are alive (their threads wait for them).
            m | unsafe { (*w).interest }
        });
        if m & libc::EPOLLIN as u32 != 0 {
            m | libc::EPOLLRDHUP as u32
        } else {
            m
        }
    }

    /// Registers `w` as waiting on `fd`. Fails with `EPERM` for descriptors epoll cannot watch
    /// (regular files, which are always ready).
    ///
    /// # Safety
    /// `w` stays valid until it fired ([`Waiter::is_ready`]) or was passed to [`Epoll::remove`].
    pub(crate) unsafe fn add(&mut self, fd: RawFd, w: *const Waiter) -> io::Result<()> {
        self.counts.submitted += 1;
        match self.regs.get_mut(&fd) {
            Some(reg) => {
                reg.waiters.push(w);
                let mask = Self::mask_of(&reg.waiters);
                if mask != reg.mask {
                    let r = self.ctl(libc::EPOLL_CTL_MOD, fd, mask);
                    let reg = self.regs.get_mut(&fd).expect("registration vanished");
                    match r {
                        Ok(()) => reg.mask = mask,
                        Err(e) => {
                            reg.waiters.pop();
                            return Err(e);
                        }
                    }
                }
            }
            None => {
                let waiters = vec![w];
                let mask = Self::mask_of(&waiters);
                self.ctl(libc::EPOLL_CTL_ADD, fd, mask)?;
                self.regs.insert(fd, Reg { waiters, mask });
            }
        }
        Ok(())
    }

    /// Deregisters `w` (a timed-out wait). Harmless if it already fired.
    pub(crate) fn remove(&mut self, fd: RawFd, w: *const Waiter) {
        let Some(reg) = self.regs.get_mut(&fd) else {
            return;
        };
        reg.waiters.retain(|&x| x != w);
        self.update(fd);
    }

    /// Re-computes `fd`'s registration after its waiters changed.
    fn update(&mut self, fd: RawFd) {
        let Some(reg) = self.regs.get_mut(&fd) else {
            return;
        };
        if reg.waiters.is_empty() {
            self.regs.remove(&fd);
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0);
            return;
        }
        let mask = Self::mask_of(&reg.waiters);
        if mask != reg.mask {
            reg.mask = mask;
            let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, mask);
        }
    }

    pub(crate) fn poll(&mut self) {
        if !self.regs.is_empty() {
            self.wait_ms(0);
        }
    }

    pub(crate) fn wait(&mut self, timeout: Option<Duration>) {
        // Round up to whole milliseconds, so the worker never wakes before its deadline.
        let ms = timeout.map_or(-1, |t| {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        });
        self.wait_ms(ms);
    }

    fn wait_ms(&mut self, ms: i32) {
        self.events.clear();
        // SAFETY: the buffer has room for MAX_EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                ms,
            )
        };
        if n <= 0 {
            // Timeout or EINTR: the worker re-checks everything anyway.
            return;
        }
        // SAFETY: epoll_wait initialised the first `n` entries.
        unsafe { self.events.set_len(n as usize) };
        let mut fired = 0;
        for i in 0..n as usize {
            let ev = self.events[i];
            let (bits, key) = (ev.events, ev.u64);
            if key == WAKE {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from the non-blocking eventfd.
                unsafe { crate::real::read(self.wake_fd, (&raw mut v).cast(), 8) };
                continue;
            }
            let fd = key as RawFd;
            let Some(reg) = self.regs.get_mut(&fd) else {
                continue;
            };
            let all = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            let readable = bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 != 0;
            let writable = bits & libc::EPOLLOUT as u32 != 0;
            reg.waiters.retain(|&w| {
                // SAFETY: registered waiters are alive.
                let interest = unsafe { (*w).interest };
                let fire = all
                    || (readable && interest & libc::EPOLLIN as u32 != 0)
                    || (writable && interest & libc::EPOLLOUT as u32 != 0);
                if fire {
                    fired += 1;
                    // SAFETY: alive and registered; it leaves the list right here.
                    unsafe { Waiter::fire(w) };
                }
                !fire
            });
            self.update(fd);
        }
        self.counts.completed += fired;
    }
}
