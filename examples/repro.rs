fn main() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    for round in 0..3 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(|| {
                let log = std::sync::Arc::new(parking_lot::Mutex::new(vec![1, 2]));
                let hs: Vec<_> = (0..3)
                    .map(|_| hilos::spawn(|| hilos::yield_now()))
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                let log = log.lock();
                for w in log.windows(2) {
                    assert!(w[0] > w[1], "deliberate {round}");
                }
            })
        }));
        eprintln!("round {round}: {}", r.is_err());
    }
    let v = rt.block_on(|| hilos::spawn(|| 5).join().unwrap());
    eprintln!("after: {v}");
}
