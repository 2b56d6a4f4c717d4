#[test]
fn spawn_join() {
    let h = hilos::spawn(|| 40 + 2);
    assert_eq!(h.join().unwrap(), 42);
}
#[test]
fn one_worker_many() {
    let rt = hilos::Runtime::builder().workers(1).build().unwrap();
    let v = rt.block_on(|| {
        let hs: Vec<_> = (0..1000)
            .map(|i| {
                hilos::spawn(move || {
                    hilos::yield_now();
                    i * 2
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    assert_eq!(v, 999 * 1000);
}
