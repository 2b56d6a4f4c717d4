//! Stress: 1,000 green threads pass 1,000,000 messages (over all three channel flavors) and lock
//! one shared mutex 1,000,000 times; the totals must come out exact.

mod sync_util;

use std::sync::Arc;
use std::time::Instant;

use hilos::sync::{Mutex, mpsc};
use sync_util::*;

const PAIRS: u64 = 500;
const PER_PAIR: u64 = 2_000;

#[test]
fn thousand_threads_million_messages_million_locks() {
    let t = Instant::now();
    let (sum, count, locks) = on_rt(2, 120, || {
        let m = Arc::new(Mutex::new(0u64));
        let mut producers = Vec::new();
        let mut consumers = Vec::new();
        for p in 0..PAIRS {
            // One third each: unbounded, bounded (8), rendezvous.
            let (send, rx): (Box<dyn Fn(u64) + Send>, mpsc::Receiver<u64>) = match p % 3 {
                0 => {
                    let (tx, rx) = mpsc::channel();
                    (Box::new(move |v| tx.send(v).unwrap()), rx)
                }
                1 => {
                    let (tx, rx) = mpsc::sync_channel(8);
                    (Box::new(move |v| tx.send(v).unwrap()), rx)
                }
                _ => {
                    let (tx, rx) = mpsc::sync_channel(0);
                    (Box::new(move |v| tx.send(v).unwrap()), rx)
                }
            };
            let mp = m.clone();
            producers.push(hilos::spawn(move || {
                for k in 0..PER_PAIR {
                    send(p * PER_PAIR + k);
                    if k % 2 == 0 {
                        let mut g = mp.lock().unwrap();
                        if k % 200 == 0 {
                            hilos::yield_now();
                        }
                        *g += 1;
                    }
                }
            }));
            let mc = m.clone();
            consumers.push(hilos::spawn(move || {
                let (mut sum, mut n) = (0u64, 0u64);
                for (k, v) in rx.iter().enumerate() {
                    sum += v;
                    n += 1;
                    if k % 2 == 1 {
                        *mc.lock().unwrap() += 1;
                    }
                }
                (sum, n)
            }));
        }
        for h in producers {
            h.join().unwrap();
        }
        let (mut sum, mut count) = (0, 0);
        for h in consumers {
            let (s, n) = h.join().unwrap();
            sum += s;
            count += n;
        }
        let locks = *m.lock().unwrap();
        (sum, count, locks)
    });
    let n = PAIRS * PER_PAIR;
    assert_eq!(count, n);
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(locks, n);
    eprintln!(
        "stress: {n} messages, {locks} locks, {} threads in {:?}",
        2 * PAIRS,
        t.elapsed()
    );
}
