//! Random programs of spawn/join/yield/park/unpark/sleep, run on green threads and checked
//! against their value computed directly.

mod common;

use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    /// Adds n.
    Compute(u8),
    Yield,
    /// Sleeps n * 100 us, adds 1.
    Sleep(u8),
    /// Spawns a child running the program, joins it at once, adds its value.
    SpawnJoin(Vec<Op>),
    /// Spawns a child now, runs the rest of the program, joins it at the end, adds its value.
    SpawnJoinLater(Vec<Op>),
    /// Spawns a child that parks until a flag is set; sets it, unparks the child, joins; adds n.
    ParkHandshake(u8),
    /// Unparks itself, then parks (returns at once thanks to the token); adds 1.
    SelfUnparkPark,
    /// Parks with a timeout of n * 100 us (nobody unparks it); adds 1.
    ParkTimeout(u8),
    /// A scoped child borrowing a local; adds the local.
    Scoped(u8),
    /// A child that panics; the join reports it; adds 1.
    Panic,
}

fn model(prog: &[Op]) -> u64 {
    prog.iter()
        .map(|op| match op {
            Op::Compute(n) => *n as u64,
            Op::Yield => 0,
            Op::Sleep(_) | Op::SelfUnparkPark | Op::ParkTimeout(_) | Op::Panic => 1,
            Op::SpawnJoin(p) | Op::SpawnJoinLater(p) => model(p),
            Op::ParkHandshake(n) | Op::Scoped(n) => *n as u64,
        })
        .sum()
}

fn run(prog: Vec<Op>) -> u64 {
    let mut total = 0u64;
    let mut later = Vec::new();
    for op in prog {
        match op {
            Op::Compute(n) => total += n as u64,
            Op::Yield => hilos::yield_now(),
            Op::Sleep(n) => {
                hilos::sleep(Duration::from_micros(100 * n as u64));
                total += 1;
            }
            Op::SpawnJoin(p) => total += hilos::spawn(move || run(p)).join().unwrap(),
            Op::SpawnJoinLater(p) => later.push(hilos::spawn(move || run(p))),
            Op::ParkHandshake(n) => {
                let flag = Arc::new(AtomicBool::new(false));
                let f = flag.clone();
                let child = hilos::spawn(move || {
                    while !f.load(Ordering::Acquire) {
                        hilos::park();
                    }
                    n as u64
                });
                hilos::yield_now();
                flag.store(true, Ordering::Release);
                child.thread().unpark();
                total += child.join().unwrap();
            }
            Op::SelfUnparkPark => {
                hilos::current().unpark();
                hilos::park();
                total += 1;
            }
            Op::ParkTimeout(n) => {
                hilos::park_timeout(Duration::from_micros(100 * n as u64));
                total += 1;
            }
            Op::Scoped(n) => {
                let local = n as u64;
                total += hilos::scope(|s| s.spawn(|| local).join().unwrap());
            }
            Op::Panic => {
                let r = hilos::spawn(|| {
                    if std::hint::black_box(true) {
                        panic!("expected by the test")
                    }
                })
                .join();
                assert!(r.is_err());
                total += 1;
            }
        }
    }
    for h in later {
        total += h.join().unwrap();
    }
    total
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        any::<u8>().prop_map(Op::Compute),
        Just(Op::Yield),
        (0u8..5).prop_map(Op::Sleep),
        any::<u8>().prop_map(Op::ParkHandshake),
        Just(Op::SelfUnparkPark),
        (0u8..5).prop_map(Op::ParkTimeout),
        any::<u8>().prop_map(Op::Scoped),
        Just(Op::Panic),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Op::SpawnJoin),
            prop::collection::vec(inner, 0..6).prop_map(Op::SpawnJoinLater),
        ]
    })
}

fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"expected by the test") {
                prev(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_compute_their_model(prog in prop::collection::vec(op_strategy(), 0..8)) {
        quiet_panics();
        let expected = model(&prog);
        let p1 = prog.clone();
        let got1 = common::within(60, move || common::one_worker().block_on(move || run(p1)));
        prop_assert_eq!(got1, expected);
        let got2 = common::within(60, move || common::two_workers().block_on(move || run(prog)));
        prop_assert_eq!(got2, expected);
    }
}
