//! Network workloads: an echo server and an HTTP/1.1 "hello" server, each written twice in plain
//! blocking style, green thread per connection on hilos and kernel thread per connection on std,
//! loaded over loopback by one closed-loop load generator (epoll, a few kernel threads).
//!
//! The server runs in a child process (the calling binary re-executed with
//! `--hilos-net-serve KIND`), so that the client's and the server's descriptors each fit under the
//! descriptor limit at 10,000 connections, and so that each server's memory and threads are its own.
//! A binary that uses [`spawn_server`] must call [`maybe_serve`] first thing in `main`.
//!
//! Include it with `#[path = "workloads/net.rs"] mod net;` (it uses only hilos, libc and httparse).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Every byte comes back; a request is one 64-byte message.
    Echo,
    /// HTTP/1.1 keep-alive; every request gets `200 OK`, body `Hello, world!`.
    Http,
}

/// Whose server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imp {
    /// Green thread per connection, on a default hilos runtime (one worker per core), one accept
    /// loop: what a user writes first.
    Hilos,
    /// Green thread per connection, one 1-worker hilos runtime per core, each with its own
    /// accept loop on its own `SO_REUSEPORT` listener (the kernel spreads connections over them):
    /// the connections are spread evenly over the cores, whatever the scheduler's placement.
    HilosPerCore,
    /// Kernel thread per connection, std's blocking sockets.
    Std,
    /// std's blocking sockets (`std::net`) on a green thread per connection, one accept loop on
    /// the global runtime: the same server as `Std` with `hilos::spawn` for `std::thread::spawn`.
    /// Built with hilos's `hook` feature its calls park only their green thread; without it they
    /// block whole workers (the harness runs it only with the feature).
    StdOnGreen,
}

impl Imp {
    pub fn name(self) -> &'static str {
        match self {
            Imp::Hilos => "hilos",
            Imp::HilosPerCore => "hilos_per_core",
            Imp::Std => "std",
            Imp::StdOnGreen => "std_on_green",
        }
    }
}

pub const ECHO_MSG: usize = 64;
pub const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

fn kind_arg(imp: Imp, proto: Proto) -> String {
    format!("{}-{:?}", imp.name(), proto).to_lowercase()
}

/// If this process was started as a server by [`spawn_server`], serves until its standard input
/// closes and exits; otherwise returns at once.
pub fn maybe_serve() {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--hilos-net-serve") else {
        return;
    };
    raise_nofile();
    let kind = args[i + 1].as_str();
    let (imp, proto) = match kind {
        "hilos-echo" => (Imp::Hilos, Proto::Echo),
        "hilos-http" => (Imp::Hilos, Proto::Http),
        "hilos_per_core-echo" => (Imp::HilosPerCore, Proto::Echo),
        "hilos_per_core-http" => (Imp::HilosPerCore, Proto::Http),
        "std-echo" => (Imp::Std, Proto::Echo),
        "std-http" => (Imp::Std, Proto::Http),
        "std_on_green-echo" => (Imp::StdOnGreen, Proto::Echo),
        "std_on_green-http" => (Imp::StdOnGreen, Proto::Http),
        _ => panic!("unknown server kind {kind}"),
    };
    let addr = server(imp, proto);
    println!("{addr}");
    std::io::stdout().flush().unwrap();
    // Serve until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
}

/// A server in a child process; killed on drop.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
}

/// CPU time a process used, split as the kernel accounts it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// In user space (for a hilos server: hilos, the server's code, libc).
    pub user: Duration,
    /// In the kernel (system calls, the network stack, page faults).
    pub system: Duration,
}

impl Cpu {
    /// CPU time used so far by process `pid` (`"self"` for this one), from `/proc`; zero if it
    /// cannot be read.
    pub fn of(pid: &str) -> Cpu {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may contain spaces) start at ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        // SAFETY: plain sysconf call.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let field = |i: usize| {
            let ticks: u64 = f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            Duration::from_nanos(ticks * 1_000_000_000 / hz)
        };
        Cpu {
            user: field(11),
            system: field(12),
        }
    }

    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// What was used since `earlier`.
    pub fn since(&self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl ServerProcess {
    /// CPU time the server process has used so far.
    pub fn cpu(&self) -> Cpu {
        Cpu::of(&self.child.id().to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server process of the calling binary (which must call [`maybe_serve`]).
pub fn spawn_server(imp: Imp, proto: Proto) -> ServerProcess {
    spawn_server_on(imp, proto, None)
}

/// The CPUs this thread may run on (its affinity mask), lowest first.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Restricts the calling thread (and the threads and processes it creates after) to `cpus`.
fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `f` with the calling thread restricted to `cpus` (threads it spawns inherit that), then
/// restores the thread's former CPUs.
pub fn on_cpus<T>(cpus: &[usize], f: impl FnOnce() -> T) -> T {
    let before = allowed_cpus();
    let pinned = set_affinity(cpus).is_ok();
    let r = f();
    if pinned && !before.is_empty() {
        let _ = set_affinity(&before);
    }
    r
}

/// As [`spawn_server`], the server process restricted to `cpus` when given (so a hilos server
/// sizes its runtime to them: one worker per CPU it may use).
pub fn spawn_server_on(imp: Imp, proto: Proto, cpus: Option<&[usize]>) -> ServerProcess {
    use std::os::unix::process::CommandExt;

    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    if let Some(cpus) = cpus {
        let cpus = cpus.to_vec();
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // sched_setaffinity system call (async-signal-safe) on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || set_affinity(&cpus));
        }
    }
    let mut child = cmd
        .args(["--hilos-net-serve", &kind_arg(imp, proto)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().parse().expect("server did not say its address");
    ServerProcess { child, addr }
}

// ---------------------------------------------------------------------------------------------
// Servers, in plain blocking style.

/// Answers the complete requests at the front of `buf[..filled]`, appending responses to `out`;
/// returns how many bytes were consumed and whether to close.
fn http_answer(buf: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    let mut start = 0;
    while start < buf.len() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(head)) => {
                let close = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                start += head;
                out.extend_from_slice(HTTP_RESPONSE);
                if close {
                    return (start, true);
                }
            }
            Ok(httparse::Status::Partial) => break,
            Err(_) => return (start, true),
        }
    }
    (start, false)
}

/// One connection of either server: generic over the stream type, blocking style.
fn serve_conn<S>(mut s: S, proto: Proto)
where
    S: Read + Write,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let n = match s.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match proto {
            Proto::Echo => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Proto::Http => {
                filled += n;
                let (used, close) = http_answer(&buf[..filled], &mut out);
                if !out.is_empty() && s.write_all(&out).is_err() {
                    return;
                }
                out.clear();
                if close || filled == buf.len() && used == 0 {
                    return;
                }
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
        }
    }
}

/// The hilos server: green thread per connection on the global runtime. Returns its address.
pub fn hilos_server(proto: Proto) -> SocketAddr {
    let l = hilos::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    hilos::spawn(move || accept_loop(l, proto));
    addr
}

/// Serves every connection `l` accepts on a green thread of its own, for ever.
fn accept_loop(l: hilos::net::TcpListener, proto: Proto) {
    for s in l.incoming() {
        match s {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                hilos::spawn(move || serve_conn(s, proto));
            }
            Err(_) => hilos::sleep(Duration::from_millis(1)),
        }
    }
}

/// A listening socket on `addr` with `SO_REUSEPORT` set, so that several can share the port.
fn reuseport_listener(addr: SocketAddr) -> std::net::TcpListener {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    // SAFETY: plain system calls on a socket we create and own; `sin` and `one` are live.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const one).cast(),
                std::mem::size_of_val(&one) as u32,
            );
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            (&raw const sin).cast(),
            std::mem::size_of_val(&sin) as u32,
        );
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, 65535), 0);
        std::net::TcpListener::from_raw_fd(fd)
    }
}

/// The per-core hilos server: one 1-worker runtime per core, each with its own accept loop on
/// its own `SO_REUSEPORT` listener. Returns the shared address.
pub fn hilos_per_core_server(proto: Proto) -> SocketAddr {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first = reuseport_listener("127.0.0.1:0".parse().unwrap());
    let addr = first.local_addr().unwrap();
    let mut listeners = vec![first];
    for _ in 1..cores {
        listeners.push(reuseport_listener(addr));
    }
    for l in listeners {
        let rt = hilos::Runtime::builder().workers(1).build().unwrap();
        let l = hilos::net::TcpListener::from(l);
        rt.spawn(move || accept_loop(l, proto));
        // The process serves until it exits.
        rt.shutdown_background();
    }
    addr
}

/// Starts `imp`'s `proto` server in this process; returns its address.
pub fn server(imp: Imp, proto: Proto) -> SocketAddr {
    match imp {
        Imp::Hilos => hilos_server(proto),
        Imp::HilosPerCore => hilos_per_core_server(proto),
        Imp::Std => std_server(proto),
        Imp::StdOnGreen => std_on_green_server(proto),
    }
}

/// A std listener on loopback with as large a backlog as hilos's (std asks for 128).
fn std_listener() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a listening socket we own only changes its backlog.
    unsafe { libc::listen(l.as_raw_fd(), 65535) };
    l
}

/// The std server's code on green threads: `std::net` sockets, a green thread per connection.
pub fn std_on_green_server(proto: Proto) -> SocketAddr {
    let l = std_listener();
    let addr = l.local_addr().unwrap();
    hilos::spawn(move || {
        for s in l.incoming() {
            match s {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    hilos::spawn(move || serve_conn(s, proto));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    addr
}

/// The std server: kernel thread per connection. Returns its address.
pub fn std_server(proto: Proto) -> SocketAddr {
    let l = std_listener();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            match s {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    // Small stacks, as a server with thousands of threads would use.
                    let r = std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || serve_conn(s, proto));
                    if r.is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// What a load run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Connections that were open during the measurement.
    pub connections: usize,
    /// Request/response round trips completed during the measurement.
    pub requests: u64,
    /// Length of the measurement.
    pub elapsed: Duration,
    /// The lowest and highest rate over the measurement's fifths, in requests per second.
    pub slice_range: Option<(f64, f64)>,
    /// Connections that failed (connect or I/O errors) before or during the measurement.
    pub failed: u64,
    /// What `cpu` (given to [`load`]) measured over the measurement, e.g. the server's CPU time.
    pub cpu: Cpu,
    /// CPU time this process used over the measurement: the load generator's, when the server
    /// runs in another process.
    pub client: Cpu,
}

impl Load {
    /// Completed requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// `cpu` per completed request, in microseconds.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.per_request(self.cpu.total())
    }

    /// The user-space part of `cpu` per completed request, in microseconds.
    pub fn user_us_per_request(&self) -> f64 {
        self.per_request(self.cpu.user)
    }

    /// This process's CPU time per completed request, in microseconds.
    pub fn client_us_per_request(&self) -> f64 {
        self.per_request(self.client.total())
    }

    fn per_request(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

struct Conn {
    s: std::net::TcpStream,
    got: usize,
}

/// Opens `conns` connections to `addr`, then for `warmup + measure` keeps one request in flight
/// on each (closed loop), with `threads` kernel threads each running an epoll loop over its share.
/// Counts the round trips completed during `measure`, and the growth of `cpu()` and of this
/// process's CPU time over it.
pub fn load(
    addr: SocketAddr,
    proto: Proto,
    conns: usize,
    threads: usize,
    warmup: Duration,
    measure: Duration,
    cpu: &dyn Fn() -> Cpu,
) -> Load {
    raise_nofile();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let per = conns.div_ceil(threads);
    let mut hs = Vec::new();
    let ready = Arc::new(std::sync::Barrier::new(threads + 1));
    for t in 0..threads {
        let n = per.min(conns.saturating_sub(t * per));
        let (counting, stop, count, failed, ready) = (
            counting.clone(),
            stop.clone(),
            count.clone(),
            failed.clone(),
            ready.clone(),
        );
        hs.push(std::thread::spawn(move || {
            client_loop(addr, proto, n, &counting, &stop, &count, &failed, &ready)
        }));
    }
    ready.wait();
    std::thread::sleep(warmup);
    let (cpu0, client0) = (cpu(), Cpu::of("self"));
    counting.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let mut slice_range: Option<(f64, f64)> = None;
    let (mut t, mut n) = (t0, 0);
    for _ in 0..5 {
        std::thread::sleep(measure / 5);
        let (t1, n1) = (Instant::now(), count.load(Ordering::SeqCst));
        let rate = (n1 - n) as f64 / t1.duration_since(t).as_secs_f64().max(1e-9);
        slice_range =
            Some(slice_range.map_or((rate, rate), |(lo, hi)| (lo.min(rate), hi.max(rate))));
        (t, n) = (t1, n1);
    }
    counting.store(false, Ordering::SeqCst);
    let elapsed = t0.elapsed();
    let (cpu, client) = (cpu().since(cpu0), Cpu::of("self").since(client0));
    stop.store(true, Ordering::SeqCst);
    for h in hs {
        h.join().unwrap();
    }
    Load {
        connections: conns,
        requests: count.load(Ordering::SeqCst),
        elapsed,
        slice_range,
        failed: failed.load(Ordering::SeqCst),
        cpu,
        client,
    }
}

#[allow(clippy::too_many_arguments)]
fn client_loop(
    addr: SocketAddr,
    proto: Proto,
    n: usize,
    counting: &AtomicBool,
    stop: &AtomicBool,
    count: &AtomicU64,
    failed: &AtomicU64,
    ready: &std::sync::Barrier,
) {
    let (req, resp_len): (Vec<u8>, usize) = match proto {
        Proto::Echo => ((0..ECHO_MSG as u8).collect(), ECHO_MSG),
        Proto::Http => (HTTP_REQUEST.to_vec(), HTTP_RESPONSE.len()),
    };
    // SAFETY: plain system call.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    let mut conns: Vec<Option<Conn>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut tries = 0;
        let s = loop {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => break Some(s),
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break None,
            }
        };
        let Some(s) = s else {
            failed.fetch_add(1, Ordering::Relaxed);
            conns.push(None);
            continue;
        };
        s.set_nodelay(true).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: a live epoll_event.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        conns.push(Some(Conn { s, got: 0 }));
    }
    ready.wait();
    // First request on every connection.
    for c in conns.iter_mut() {
        if let Some(conn) = c
            && (&conn.s).write_all(&req).is_err()
        {
            failed.fetch_add(1, Ordering::Relaxed);
            *c = None;
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut local = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the buffer has room for its length in events.
        let k = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        for e in &events[..k.max(0) as usize] {
            let i = e.u64 as usize;
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            let mut dead = false;
            loop {
                match (&conn.s).read(&mut buf) {
                    Ok(0) => {
                        dead = true;
                        break;
                    }
                    Ok(m) => {
                        conn.got += m;
                        while conn.got >= resp_len {
                            conn.got -= resp_len;
                            if counting.load(Ordering::Relaxed) {
                                local += 1;
                            }
                            if (&conn.s).write_all(&req).is_err() {
                                dead = true;
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
            if dead {
                failed.fetch_add(1, Ordering::Relaxed);
                conns[i] = None;
            }
        }
        if local > 0 {
            count.fetch_add(local, Ordering::Relaxed);
            local = 0;
        }
    }
    // SAFETY: our own epoll descriptor.
    unsafe { libc::close(ep) };
}

/// Raises the soft descriptor limit to the hard limit.
pub fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}
