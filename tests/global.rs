//! `build_global` configures the global runtime before first use, once. Its own test binary:
//! the global runtime is per process.

#[test]
fn build_global_then_use_then_refuse_a_second() {
    hilos::runtime::Builder::new()
        .workers(1)
        .stack_size(1 << 20)
        .build_global()
        .unwrap();
    // Green threads from the global runtime now get 1 MiB stacks: a 512 KiB local fits (it would
    // overflow the 256 KiB default).
    let r = hilos::spawn(|| {
        let mut big = [1u8; 512 * 1024];
        std::hint::black_box(&mut big);
        big[1000]
    });
    assert_eq!(r.join().unwrap(), 1);
    let err = hilos::runtime::Builder::new().build_global().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
}
