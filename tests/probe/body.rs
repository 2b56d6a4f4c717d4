// The probe's body: std's `thread`, `sync`, `net`, `fs`, `io` and `os` APIs, used through the
// module names `thread`, `sync`, `net`, `fs`, `io` and `os` that the including module binds (to std's or to
// hilos's). It returns a transcript of what it saw; run with std and with hilos, the transcripts
// must be equal. Included by path from tests/std_probe.rs; nothing here may depend on which.

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, SystemTime};

#[allow(unused_imports)] // hilos's stdio types answer `is_terminal` inherently (std seals the trait)
use io::{BufRead, IsTerminal, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd};

pub fn run(dir: &Path) -> Vec<String> {
    let mut log = Vec::new();
    threads(&mut log);
    sync_types(&mut log);
    net_types(&mut log).unwrap();
    fs_calls(dir, &mut log).unwrap();
    io_types(&mut log).unwrap();
    os_paths(dir, &mut log).unwrap();
    deprecated(dir, &mut log).unwrap();
    log
}

thread_local! {
    static HITS: Cell<u32> = const { Cell::new(0) };
}

fn threads(log: &mut Vec<String>) {
    let h: thread::JoinHandle<Option<String>> = thread::Builder::new()
        .name("probe".into())
        .stack_size(256 * 1024)
        .spawn(|| thread::current().name().map(String::from))
        .unwrap();
    log.push(format!("named: {:?}", h.join().unwrap()));
    let r: thread::Result<()> = thread::Builder::new()
        .spawn(|| panic!("probe panic (expected)"))
        .unwrap()
        .join();
    log.push(format!("panic joined as error: {}", r.is_err()));
    let v = [1, 2, 3];
    let (sum, len) = thread::scope(|s: &thread::Scope<'_, '_>| {
        let a: thread::ScopedJoinHandle<'_, i32> = s.spawn(|| v.iter().sum());
        let b = thread::Builder::new().spawn_scoped(s, || v.len()).unwrap();
        (a.join().unwrap(), b.join().unwrap())
    });
    log.push(format!("scoped: {sum} {len}"));
    let words = ["a", "b"];
    let borrowed = &words;
    // SAFETY: joined at once, while `words` lives.
    let h = unsafe { thread::Builder::new().spawn_unchecked(move || borrowed.concat()) }.unwrap();
    log.push(format!("unchecked: {}", h.join().unwrap()));
    let me: thread::Thread = thread::current();
    let my_id: thread::ThreadId = me.id();
    let h = thread::spawn(move || {
        me.unpark();
        thread::current().id()
    });
    thread::park_timeout(Duration::from_secs(10));
    let other = h.join().unwrap();
    log.push(format!("ids differ: {}", my_id != other));
    thread::sleep(Duration::from_millis(1));
    thread::yield_now();
    log.push(format!(
        "parallelism known: {}, panicking: {}",
        thread::available_parallelism().is_ok(),
        thread::panicking()
    ));
    let key: &'static thread::LocalKey<Cell<u32>> = &HITS;
    let hits = thread::spawn(move || {
        key.set(key.get() + 1);
        key.try_with(|c| c.get()).map_err(|e: thread::AccessError| e)
    });
    log.push(format!("thread-local: {:?}", hits.join().unwrap()));
    let h = thread::spawn(|| ());
    let t: &thread::Thread = h.thread();
    let _ = t.id();
    h.join().unwrap();
}

fn sync_types(log: &mut Vec<String>) {
    use sync::atomic::{AtomicUsize, Ordering};
    use sync::mpsc;
    use sync::{Arc, Barrier, Condvar, LazyLock, Mutex, Once, OnceLock, OnceState, RwLock, Weak};

    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for _ in 0..1000 {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    log.push(format!("mutex: {}", *m.lock().unwrap()));
    let m2 = Arc::clone(&m);
    let _ = thread::spawn(move || {
        let _g = m2.lock().unwrap();
        panic!("poisoning (expected)");
    })
    .join();
    log.push(format!("poisoned: {}", m.is_poisoned()));
    m.clear_poison();
    let weak: Weak<Mutex<u64>> = Arc::downgrade(&m);
    drop(weak);
    let m = Arc::try_unwrap(m).unwrap();
    log.push(format!("into_inner: {}", m.into_inner().unwrap()));
    let rw = RwLock::new(vec![1]);
    rw.write().unwrap().push(2);
    log.push(format!("rwlock: {:?} {}", *rw.read().unwrap(), rw.try_read().is_ok()));
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = Arc::clone(&pair);
    let h = thread::spawn(move || {
        *p2.0.lock().unwrap() = true;
        p2.1.notify_all();
    });
    let g = pair.1.wait_while(pair.0.lock().unwrap(), |ready| !*ready).unwrap();
    log.push(format!("condvar: {}", *g));
    drop(g);
    h.join().unwrap();
    let (g, t) = pair.1.wait_timeout(pair.0.lock().unwrap(), Duration::from_millis(5)).unwrap();
    log.push(format!("wait_timeout timed out: {} {}", t.timed_out(), *g));
    drop(g);
    let b = Arc::new(Barrier::new(3));
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let b = Arc::clone(&b);
            thread::spawn(move || b.wait().is_leader())
        })
        .collect();
    let leaders = hs.into_iter().map(|h| h.join().unwrap()).filter(|l| *l);
    log.push(format!("barrier leaders: {}", leaders.count()));
    static ONCE: Once = Once::new();
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let hs: Vec<_> = (0..3)
        .map(|_| thread::spawn(|| ONCE.call_once(|| _ = RUNS.fetch_add(1, Ordering::SeqCst))))
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    ONCE.wait();
    log.push(format!("once: {} {}", RUNS.load(Ordering::SeqCst), ONCE.is_completed()));
    let poisoned = Arc::new(Once::new());
    let p2 = Arc::clone(&poisoned);
    let _ = thread::spawn(move || p2.call_once(|| panic!("poisoning a Once (expected)"))).join();
    let p2 = Arc::clone(&poisoned);
    let waiter = thread::spawn(move || p2.wait_force());
    poisoned.call_once_force(|s| log.push(format!("forced over poison: {}", s.is_poisoned())));
    waiter.join().unwrap();
    let forced = Once::new();
    forced.call_once_force(|s: &OnceState| log.push(format!("once state poisoned: {}", s.is_poisoned())));
    static CELL: OnceLock<String> = OnceLock::new();
    log.push(format!("once_lock: {}", CELL.get_or_init(|| "init".into())));
    static LAZY: LazyLock<usize> = LazyLock::new(|| 7);
    log.push(format!("lazy: {}", *LAZY));
    let (tx, rx) = mpsc::channel::<u32>();
    let tx2: mpsc::Sender<u32> = tx.clone();
    thread::spawn(move || (0..3).for_each(|i| tx2.send(i).unwrap()));
    drop(tx);
    let got: Vec<u32> = rx.iter().collect();
    log.push(format!("channel: {got:?}"));
    let (stx, srx): (mpsc::SyncSender<u8>, mpsc::Receiver<u8>) = mpsc::sync_channel(0);
    let h = thread::spawn(move || stx.send(9));
    log.push(format!("rendezvous: {:?}", srx.recv()));
    h.join().unwrap().unwrap();
    log.push(format!("disconnected: {:?}", srx.try_recv().unwrap_err()));
    let (_keep, rx) = mpsc::channel::<u8>();
    let e: mpsc::RecvTimeoutError = rx.recv_timeout(Duration::from_millis(5)).unwrap_err();
    log.push(format!("recv_timeout: {e:?}"));
}

fn net_types(log: &mut Vec<String>) -> io::Result<()> {
    use net::{
        AddrParseError, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
        UdpSocket,
    };

    let bad: AddrParseError = "nope".parse::<SocketAddr>().unwrap_err();
    log.push(format!("addr parse error: {bad}"));
    let addrs: Vec<SocketAddr> = ("127.0.0.1", 0).to_socket_addrs()?.collect();
    log.push(format!("to_socket_addrs: {}", addrs.len()));
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = l.local_addr()?;
    let server = thread::spawn(move || -> io::Result<Vec<u8>> {
        let (mut s, _peer) = l.accept()?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        s.write_all(&got)?;
        Ok(got)
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    log.push(format!("nodelay: {}", c.nodelay()?));
    c.write_all(b"ping")?;
    c.shutdown(Shutdown::Write)?;
    let mut back = String::new();
    c.read_to_string(&mut back)?;
    log.push(format!("tcp: {back} {:?}", server.join().unwrap()?));
    let l = TcpListener::bind("127.0.0.1:0")?;
    let idle = TcpStream::connect(l.local_addr()?)?;
    idle.set_read_timeout(Some(Duration::from_millis(20)))?;
    let e = (&idle).read(&mut [0; 4]).unwrap_err();
    log.push(format!("read timeout kind: {:?}", e.kind()));
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.send_to(b"dgram", b.local_addr()?)?;
    let mut buf = [0; 16];
    let (n, from) = b.recv_from(&mut buf)?;
    log.push(format!("udp: {:?} {}", &buf[..n], from == a.local_addr()?));
    a.set_multicast_loop_v4(false)?;
    a.set_multicast_ttl_v4(4)?;
    log.push(format!(
        "multicast: {} {}",
        a.multicast_loop_v4()?,
        a.multicast_ttl_v4()?
    ));
    Ok(())
}

fn fs_calls(dir: &Path, log: &mut Vec<String>) -> io::Result<()> {
    use fs::{DirBuilder, File, FileTimes, OpenOptions, Permissions};

    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("a/b"))?;
    DirBuilder::new().recursive(true).create(dir.join("c/d"))?;
    fs::create_dir(dir.join("e"))?;
    log.push(format!("create_dir again: {:?}", fs::create_dir(dir.join("e")).unwrap_err().kind()));
    fs::write(dir.join("a/f.txt"), "contents")?;
    fs::copy(dir.join("a/f.txt"), dir.join("a/g.txt"))?;
    fs::rename(dir.join("a/g.txt"), dir.join("a/h.txt"))?;
    fs::hard_link(dir.join("a/h.txt"), dir.join("a/i.txt"))?;
    std::os::unix::fs::symlink("f.txt", dir.join("a/link"))?;
    log.push(format!("read_link: {:?}", fs::read_link(dir.join("a/link"))?));
    log.push(format!(
        "symlink_metadata is symlink: {}",
        fs::symlink_metadata(dir.join("a/link"))?.file_type().is_symlink()
    ));
    log.push(format!(
        "canonical ends: {}",
        fs::canonicalize(dir.join("a/b/../link"))?.ends_with("a/f.txt")
    ));
    log.push(format!("exists: {} {}", fs::exists(dir.join("a/i.txt"))?, fs::exists(dir.join("zz"))?));
    let mut names: Vec<(String, bool)> = fs::read_dir(dir.join("a"))?
        .map(|e| {
            let e: fs::DirEntry = e?;
            let ft: fs::FileType = e.file_type()?;
            Ok((e.file_name().to_string_lossy().into_owned(), ft.is_dir()))
        })
        .collect::<io::Result<_>>()?;
    names.sort();
    log.push(format!("read_dir: {names:?}"));
    let mut perm: Permissions = fs::metadata(dir.join("a/f.txt"))?.permissions();
    perm.set_readonly(true);
    fs::set_permissions(dir.join("a/f.txt"), perm)?;
    log.push(format!("readonly: {}", fs::metadata(dir.join("a/f.txt"))?.permissions().readonly()));
    let mut f = OpenOptions::new().create(true).append(true).open(dir.join("log"))?;
    f.write_all(b"one\n")?;
    f.sync_all()?;
    f.lock()?;
    f.unlock()?;
    let shared = File::open(dir.join("log"))?;
    shared.try_lock_shared().map_err(io::Error::from)?;
    shared.unlock()?;
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    f.set_times(FileTimes::new().set_accessed(t).set_modified(t))?;
    f.set_modified(t)?;
    log.push(format!("mtime set: {}", f.metadata()?.modified()? == t));
    let mut r = File::open(dir.join("log"))?;
    r.seek(io::SeekFrom::Start(1))?;
    log.push(format!("read after seek: {:?}", io::read_to_string(&mut r)?));
    log.push(format!("read_to_string: {}", fs::read_to_string(dir.join("a/i.txt"))?));
    fs::remove_file(dir.join("a/i.txt"))?;
    fs::remove_dir(dir.join("e"))?;
    log.push(format!(
        "remove non-empty dir: {:?}",
        fs::remove_dir(dir.join("a")).unwrap_err().kind()
    ));
    let mut perm = fs::metadata(dir.join("a/f.txt"))?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(dir.join("a/f.txt"), perm)?;
    fs::remove_dir_all(dir)?;
    log.push(format!("removed: {}", !fs::exists(dir)?));
    Ok(())
}

fn io_types(log: &mut Vec<String>) -> io::Result<()> {
    let e: io::Error = io::Error::new(io::ErrorKind::InvalidInput, "probe");
    log.push(format!("error: {:?} {e}", e.kind()));
    let mut c = io::Cursor::new(b"x\ny\n".to_vec());
    let lines: Vec<String> = io::BufReader::new(&mut c).lines().collect::<io::Result<_>>()?;
    log.push(format!("lines: {lines:?}"));
    let mut w = io::BufWriter::new(Vec::new());
    io::copy(&mut io::repeat(b'z').take(3), &mut w)?;
    io::copy(&mut io::empty(), &mut io::sink())?;
    log.push(format!("bufwriter: {:?}", w.into_inner().map_err(|e| e.into_error())?));
    let mut out = io::stdout().lock();
    out.flush()?;
    drop(out);
    let mut err = io::stderr().lock();
    err.flush()?;
    drop(err);
    let _lock: fn(&io::Stdin) -> io::StdinLock<'static> = io::Stdin::lock;
    let _lines: fn(io::Stdin) -> io::Lines<io::StdinLock<'static>> = io::Stdin::lines;
    let _read_line: fn(&io::Stdin, &mut String) -> io::Result<usize> = io::Stdin::read_line;
    log.push(format!(
        "terminals as std: {}",
        io::stdin().is_terminal() == std::io::IsTerminal::is_terminal(&std::io::stdin())
            && io::stdout().is_terminal() == std::io::IsTerminal::is_terminal(&std::io::stdout())
            && io::stderr().is_terminal() == std::io::IsTerminal::is_terminal(&std::io::stderr())
    ));
    let out = io::stdout().lock();
    let err = io::stderr().lock();
    log.push(format!(
        "locks' descriptors: {} {}, terminals as std: {}",
        out.as_raw_fd(),
        err.as_fd().as_raw_fd(),
        out.is_terminal() == std::io::IsTerminal::is_terminal(&std::io::stdout())
            && err.is_terminal() == std::io::IsTerminal::is_terminal(&std::io::stderr())
    ));
    drop((out, err));
    let stdin = io::stdin().lock();
    log.push(format!("stdin lock: {} {}", stdin.as_raw_fd(), stdin.is_terminal() == io::stdin().is_terminal()));
    drop(stdin);
    let devnull = fs::File::open("/dev/null")?;
    log.push(format!("file is terminal: {}", devnull.is_terminal()));
    let (r, mut w) = io::pipe()?;
    w.write_all(b"through a child")?;
    drop(w);
    let child = std::process::Command::new("cat")
        .stdin(r)
        .stdout(std::process::Stdio::piped())
        .stderr(io::stderr())
        .output()?;
    log.push(format!("child read the pipe: {:?}", String::from_utf8_lossy(&child.stdout)));
    let child = std::process::Command::new("cat").stdin(devnull).output()?;
    log.push(format!("child read the file: {:?}", child.stdout));
    let r: io::Result<()> = Ok(());
    r
}

fn os_paths(dir: &Path, log: &mut Vec<String>) -> io::Result<()> {
    use os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    use os::unix::net::{UnixListener, UnixStream};

    let (mut a, mut b) = UnixStream::pair()?;
    a.write_all(b"unix")?;
    let mut got = [0; 4];
    b.read_exact(&mut got)?;
    log.push(format!("unix pair: {:?}", std::str::from_utf8(&got).unwrap()));
    fs::create_dir_all(dir)?;
    let sock = dir.join("sock");
    let l = UnixListener::bind(&sock)?;
    let addr: os::unix::net::SocketAddr = l.local_addr()?;
    let h = thread::spawn(move || l.incoming().next().map(|c| c.map(|_| ())));
    let _c = UnixStream::connect(addr.as_pathname().unwrap())?;
    log.push(format!("unix accept: {:?}", h.join().unwrap().map(|r| r.is_ok())));
    let path = dir.join("owned");
    let f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o640).open(&path)?;
    let meta = f.metadata()?;
    log.push(format!("mode: {:o}", meta.permissions().mode() & 0o777));
    os::unix::fs::chown(&path, None, Some(meta.gid()))?;
    os::unix::fs::fchown(&f, Some(meta.uid()), None)?;
    os::unix::fs::symlink("owned", dir.join("owned-link"))?;
    os::unix::fs::lchown(dir.join("owned-link"), Some(meta.uid()), Some(meta.gid()))?;
    log.push(format!("owners kept: {}", fs::metadata(&path)?.uid() == meta.uid()));
    // chroot to "/" changes nothing; as root (CI) it succeeds, otherwise both fail alike.
    log.push(format!("chroot /: {:?}", os::unix::fs::chroot("/").map_err(|e| e.kind())));
    let raw: os::fd::RawFd = os::fd::AsRawFd::as_raw_fd(&f);
    log.push(format!("raw fd valid: {}", raw >= 0));
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[allow(deprecated)]
fn deprecated(dir: &Path, log: &mut Vec<String>) -> io::Result<()> {
    thread::sleep_ms(1);
    thread::park_timeout_ms(1);
    static OLD: sync::Once = sync::ONCE_INIT;
    OLD.call_once(|| {});
    let (m, cv) = (sync::Mutex::new(()), sync::Condvar::new());
    let (_g, notified) = cv.wait_timeout_ms(m.lock().unwrap(), 1).unwrap();
    log.push(format!("wait_timeout_ms notified: {notified}"));
    fs::create_dir_all(dir)?;
    fs::soft_link("nowhere", dir.join("soft"))?;
    log.push(format!("soft_link: {:?}", fs::read_link(dir.join("soft"))?));
    fs::remove_dir_all(dir)?;
    let l = net::TcpListener::bind("127.0.0.1:0")?;
    log.push(format!("set_only_v6 on v4: {:?}", l.set_only_v6(true).map_err(|e| e.kind())));
    fn fused<I: std::iter::FusedIterator>(_: &I) {}
    fused(&l.incoming());
    Ok(())
}
