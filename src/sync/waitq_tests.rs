//! Focused tests of the wait queue's intrusive list and of its park/wake protocol, driven from
//! plain kernel threads only (no runtime, no green thread, no context switch), so that they also
//! run under Miri: `cargo +nightly miri test --lib -- sync::waitq sync::mpsc` (README, Tests).
//! Each test is small: Miri runs them about a thousand times slower than native code.

use super::*;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A waiter that no thread owns (`task` is `None`): for tests of the bare list.
fn waiter(tag: usize) -> Waiter {
    Waiter {
        next: Cell::new(ptr::null()),
        prev: Cell::new(ptr::null()),
        linked: Cell::new(false),
        task: Cell::new(None),
        state: AtomicUsize::new(WAITING),
        tag,
        since: None,
        _pinned: PhantomPinned,
    }
}

/// The list's tags from head to tail, checking every `prev` link, `linked` and `len` on the way.
fn tags(l: &List) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev: *const Waiter = ptr::null();
    let mut p = l.head;
    while !p.is_null() {
        // SAFETY: every linked waiter outlives the list's use of it in these tests.
        let w = unsafe { &*p };
        assert!(w.linked.get());
        assert_eq!(w.prev.get(), prev, "broken prev link at tag {}", w.tag);
        out.push(w.tag);
        prev = p;
        p = w.next.get();
    }
    assert_eq!(l.tail, prev, "tail is not the last waiter");
    assert_eq!(l.len, out.len());
    out
}

/// Parks the calling kernel thread in `q` at `pos`, with an optional timeout.
fn park_in(q: &WaitQueue<()>, tag: usize, pos: Pos, timeout: Option<Duration>) -> Park {
    let deadline = timeout.map(|d| Instant::now() + d);
    q.park(
        ThreadState::Park,
        tag,
        None,
        deadline,
        |_| Some(pos),
        || {},
        |_| {},
    )
}

/// Waits (yielding) until `q` holds `n` waiters.
fn until_queued<S>(q: &WaitQueue<S>, n: usize) {
    while q.lock().len() != n {
        thread::yield_now();
    }
}

/// Pushes at both ends, then removes from the middle, the front and the back, and empties the
/// list: every link stays consistent, and a removed waiter can be pushed again.
#[test]
fn list_push_and_remove_at_front_middle_and_back() {
    let ws: Vec<Waiter> = (0..5).map(waiter).collect();
    let mut l = List::new();
    // SAFETY: the waiters live (in `ws`, which never reallocates) until the end of the test, and
    // each is pushed only while unlinked and removed only while linked.
    unsafe {
        l.push(&ws[0], false);
        l.push(&ws[1], false);
        l.push(&ws[2], true);
        l.push(&ws[3], false);
        l.push(&ws[4], true);
        assert_eq!(tags(&l), [4, 2, 0, 1, 3]);
        l.remove(&ws[0]); // middle
        assert_eq!(tags(&l), [4, 2, 1, 3]);
        l.remove(&ws[4]); // front
        assert_eq!(tags(&l), [2, 1, 3]);
        l.remove(&ws[3]); // back
        assert_eq!(tags(&l), [2, 1]);
        assert!(!ws[0].linked.get() && !ws[3].linked.get() && !ws[4].linked.get());
        l.push(&ws[0], true); // re-queued at the front
        assert_eq!(tags(&l), [0, 2, 1]);
        l.remove(&ws[2]);
        l.remove(&ws[0]);
        assert_eq!(tags(&l), [1]);
        l.remove(&ws[1]); // the only one: head and tail both go
        assert_eq!(tags(&l), []);
        assert!(l.head.is_null() && l.tail.is_null());
        l.push(&ws[3], false);
        assert_eq!(tags(&l), [3]);
        l.remove(&ws[3]);
    }
    assert_eq!(l.len, 0);
}

/// Kernel threads parked in the queue are woken in FIFO order (a front-queued one first), each
/// with the token its waker chose, and the lock-free `queued` count follows the list.
#[test]
fn kernel_threads_are_woken_in_order_with_their_tokens() {
    let q = Arc::new(WaitQueue::new(()));
    let mut hs = Vec::new();
    for (tag, pos) in [(0, Pos::Back), (1, Pos::Back), (2, Pos::Front)] {
        let q2 = q.clone();
        hs.push(thread::spawn(move || park_in(&q2, tag, pos, None)));
        until_queued(&q, tag + 1); // queue them one at a time, in a known order
    }
    assert_eq!(q.queued(), 3);
    {
        let mut g = q.lock();
        assert_eq!(g.front_tag(), Some(2));
        assert_eq!(g.count_front(|t| t != 1), 2);
        assert_eq!(g.wake_front(10), Some(2));
        assert_eq!(g.wake_front(11), Some(0));
        assert_eq!(g.len(), 1);
    } // the wake-ups are delivered here, after the lock is released
    assert_eq!(q.queued(), 1);
    assert_eq!(q.lock().wake_all(12), 1);
    assert_eq!(q.queued(), 0);
    let got: Vec<Park> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, [Park::Woken(11), Park::Woken(12), Park::Woken(10)]);
}

/// `wake_all` unlinks every waiter under one lock; each thread sees the token exactly once, and
/// a `validate` that declines queues nobody.
#[test]
fn wake_all_wakes_every_kernel_thread_once() {
    let q = Arc::new(WaitQueue::new(0usize));
    let hs: Vec<_> = (0..3)
        .map(|tag| {
            let q = q.clone();
            thread::spawn(move || {
                q.park(
                    ThreadState::Park,
                    tag,
                    None,
                    None,
                    |g| {
                        *g.data() += 1;
                        Some(Pos::Back)
                    },
                    || {},
                    |_| {},
                )
            })
        })
        .collect();
    while q.queued() != 3 {
        thread::yield_now();
    }
    assert_eq!(*q.lock().data(), 3);
    assert_eq!(q.lock().wake_all(5), 3);
    assert_eq!(q.lock().wake_all(5), 0);
    for h in hs {
        assert_eq!(h.join().unwrap(), Park::Woken(5));
    }
    let declined = q.park(
        ThreadState::Park,
        9,
        None,
        None,
        |_| None,
        || unreachable!(),
        |_| {},
    );
    assert_eq!(declined, Park::Invalid);
    assert!(q.lock().is_empty());
}

/// A waiter in the middle of the queue times out and unlinks itself while the waker pops the
/// others from the front: its neighbours are relinked around it, its `timed_out` hook runs under
/// the lock, and the waiters behind it are still served in order.
#[test]
fn a_timed_out_waiter_leaves_the_middle_while_a_waker_pops() {
    let q = Arc::new(WaitQueue::new(0usize));
    let spawn = |tag: usize, timeout: Option<Duration>| {
        let q = q.clone();
        thread::spawn(move || {
            let deadline = timeout.map(|d| Instant::now() + d);
            q.park(
                ThreadState::Park,
                tag,
                None,
                deadline,
                |_| Some(Pos::Back),
                || {},
                |g| *g.data() += 1,
            )
        })
    };
    let first = spawn(0, None);
    until_queued(&q, 1);
    // Long enough for the third waiter to queue behind it, even under Miri, whose clock runs
    // fast (virtual time advances with every basic block it interprets).
    let timeout = Duration::from_millis(if cfg!(miri) { 2_000 } else { 50 });
    let timed = spawn(1, Some(timeout));
    until_queued(&q, 2);
    let last = spawn(2, None);
    while q.lock().len() != 3 {
        assert!(
            !timed.is_finished(),
            "timed out before the third waiter queued"
        );
        thread::yield_now();
    }
    // The middle waiter's deadline passes; it takes the lock and unlinks itself.
    assert_eq!(timed.join().unwrap(), Park::TimedOut);
    {
        let mut g = q.lock();
        assert_eq!(*g.data(), 1, "the timed_out hook ran once");
        assert_eq!(g.len(), 2);
        assert_eq!(g.wake_front(7), Some(0));
        assert_eq!(g.wake_front(8), Some(2));
        assert_eq!(g.wake_front(9), None);
    }
    assert_eq!(first.join().unwrap(), Park::Woken(7));
    assert_eq!(last.join().unwrap(), Park::Woken(8));
    assert_eq!(q.queued(), 0);
}
