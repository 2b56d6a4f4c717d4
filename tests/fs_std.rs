//! std's `fs` calls through `hilos::fs` (directories, links, renames, copies, `read_dir`, file
//! locks and times), each checked on green threads (a 1-worker and a 2-worker runtime) and on a
//! plain kernel thread, and on both I/O backends (`under_epoll`).

mod io_util;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use hilos::fs::{DirBuilder, File, FileTimes, OpenOptions, Permissions, TryLockError};
use io_util::{rt1, rt2, within};

/// A fresh, empty directory for one run of a check.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "hilos-fs-std-{}-{}-{name}-{}",
        std::process::id(),
        std::env::var("HILOS_IO").unwrap_or_default(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir(&p).unwrap();
    p
}

/// Runs `check` in a fresh directory on a green thread of a 1-worker runtime, of a 2-worker
/// runtime, and on a plain kernel thread.
fn everywhere(name: &'static str, check: fn(&Path)) {
    within(60, move || {
        for rt in [rt1(), rt2()] {
            let d = scratch(name);
            rt.block_on(|| {
                assert!(hilos::io::current_backend().is_some(), "on a worker");
                check(&d)
            });
            std::fs::remove_dir_all(&d).unwrap();
        }
        let d = scratch(name);
        std::thread::spawn(move || {
            assert!(hilos::io::current_backend().is_none(), "on a kernel thread");
            check(&d);
            std::fs::remove_dir_all(&d).unwrap();
        })
        .join()
        .unwrap();
    });
}

fn kind<T: std::fmt::Debug>(r: std::io::Result<T>) -> ErrorKind {
    r.unwrap_err().kind()
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn create_and_remove_dirs(d: &Path) {
    let a = d.join("a");
    hilos::fs::create_dir(&a).unwrap();
    assert!(std::fs::metadata(&a).unwrap().is_dir());
    assert_eq!(kind(hilos::fs::create_dir(&a)), ErrorKind::AlreadyExists);
    assert_eq!(
        kind(hilos::fs::create_dir(d.join("no/such"))),
        ErrorKind::NotFound
    );
    assert_eq!(kind(hilos::fs::create_dir("")), ErrorKind::NotFound);
    // create_dir_all: deep, again, over a file.
    let deep = d.join("x/y/z");
    hilos::fs::create_dir_all(&deep).unwrap();
    hilos::fs::create_dir_all(&deep).unwrap();
    hilos::fs::create_dir_all(d.join("x/y")).unwrap();
    assert!(std::fs::metadata(&deep).unwrap().is_dir());
    std::fs::write(d.join("file"), "f").unwrap();
    assert_eq!(
        kind(hilos::fs::create_dir_all(d.join("file"))),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(hilos::fs::create_dir_all(d.join("file/below"))),
        ErrorKind::NotADirectory
    );
    // DirBuilder: not recursive by default; the mode applies to every directory it makes.
    assert_eq!(
        kind(DirBuilder::new().create(d.join("m/n"))),
        ErrorKind::NotFound
    );
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d.join("m/n"))
        .unwrap();
    assert_eq!(mode_of(&d.join("m")), 0o700);
    assert_eq!(mode_of(&d.join("m/n")), 0o700);
    DirBuilder::new().mode(0o500).create(d.join("m/o")).unwrap();
    assert_eq!(mode_of(&d.join("m/o")), 0o500);
    // remove_dir: not empty, missing, a file; then empty ones.
    assert_eq!(
        kind(hilos::fs::remove_dir(d.join("x"))),
        ErrorKind::DirectoryNotEmpty
    );
    assert_eq!(
        kind(hilos::fs::remove_dir(d.join("gone"))),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(hilos::fs::remove_dir(d.join("file"))),
        ErrorKind::NotADirectory
    );
    hilos::fs::remove_dir(&deep).unwrap();
    assert!(!std::fs::exists(&deep).unwrap());
    // remove_file on a directory fails; remove_dir_all takes the tree.
    assert_eq!(kind(hilos::fs::remove_file(&a)), ErrorKind::IsADirectory);
    std::fs::write(d.join("x/y/inside"), "i").unwrap();
    hilos::fs::remove_dir_all(d.join("x")).unwrap();
    assert!(!std::fs::exists(d.join("x")).unwrap());
    assert_eq!(
        kind(hilos::fs::remove_dir_all(d.join("x"))),
        ErrorKind::NotFound
    );
}

#[test]
fn create_and_remove_dirs_everywhere() {
    everywhere("dirs", create_and_remove_dirs);
}

fn rename_link_copy(d: &Path) {
    let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
    std::fs::write(&a, "first").unwrap();
    hilos::fs::rename(&a, &b).unwrap();
    assert!(!hilos::fs::exists(&a).unwrap());
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "first");
    assert_eq!(kind(hilos::fs::rename(&a, &c)), ErrorKind::NotFound);
    // Over an existing file: replaced.
    std::fs::write(&c, "second").unwrap();
    hilos::fs::rename(&c, &b).unwrap();
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "second");
    // A directory into itself.
    std::fs::create_dir(d.join("dir")).unwrap();
    assert_eq!(
        kind(hilos::fs::rename(d.join("dir"), d.join("dir/sub"))),
        ErrorKind::InvalidInput
    );
    // Hard links.
    hilos::fs::hard_link(&b, d.join("h")).unwrap();
    assert_eq!(std::fs::metadata(&b).unwrap().nlink(), 2);
    assert_eq!(
        std::fs::metadata(d.join("h")).unwrap().ino(),
        std::fs::metadata(&b).unwrap().ino()
    );
    assert_eq!(
        kind(hilos::fs::hard_link(&b, d.join("h"))),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(hilos::fs::hard_link(d.join("none"), d.join("h2"))),
        ErrorKind::NotFound
    );
    // Symbolic links: stored as given, followed by metadata, not by symlink_metadata.
    let l = d.join("l");
    hilos::fs::symlink("b", &l).unwrap();
    assert_eq!(hilos::fs::read_link(&l).unwrap(), Path::new("b"));
    assert!(hilos::fs::symlink_metadata(&l).unwrap().is_symlink());
    assert!(hilos::fs::metadata(&l).unwrap().is_file());
    assert_eq!(kind(hilos::fs::symlink("b", &l)), ErrorKind::AlreadyExists);
    assert_eq!(kind(hilos::fs::read_link(&b)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(hilos::fs::read_link(d.join("none"))),
        ErrorKind::NotFound
    );
    // A dangling link: exists says no, symlink_metadata still sees the link.
    hilos::fs::symlink("nowhere", d.join("dangling")).unwrap();
    assert!(!hilos::fs::exists(d.join("dangling")).unwrap());
    assert!(hilos::fs::symlink_metadata(d.join("dangling")).is_ok());
    assert_eq!(
        kind(hilos::fs::symlink_metadata(d.join("none"))),
        ErrorKind::NotFound
    );
    // canonicalize resolves the link and the dots.
    let canon = hilos::fs::canonicalize(d.join("dir/../l")).unwrap();
    assert_eq!(canon, std::fs::canonicalize(&b).unwrap());
    assert_eq!(
        kind(hilos::fs::canonicalize(d.join("dangling"))),
        ErrorKind::NotFound
    );
    // copy: contents and permissions.
    std::fs::set_permissions(&b, Permissions::from_mode(0o604)).unwrap();
    assert_eq!(hilos::fs::copy(&b, d.join("copy")).unwrap(), 6);
    assert_eq!(std::fs::read_to_string(d.join("copy")).unwrap(), "second");
    assert_eq!(mode_of(&d.join("copy")), 0o604);
    assert_eq!(
        kind(hilos::fs::copy(d.join("none"), d.join("copy2"))),
        ErrorKind::NotFound
    );
    // set_permissions.
    hilos::fs::set_permissions(&b, Permissions::from_mode(0o640)).unwrap();
    assert_eq!(mode_of(&b), 0o640);
    assert_eq!(
        kind(hilos::fs::set_permissions(
            d.join("none"),
            Permissions::from_mode(0o600)
        )),
        ErrorKind::NotFound
    );
    // remove_file unlinks one name.
    hilos::fs::remove_file(d.join("h")).unwrap();
    assert_eq!(std::fs::metadata(&b).unwrap().nlink(), 1);
    assert_eq!(
        kind(hilos::fs::remove_file(d.join("h"))),
        ErrorKind::NotFound
    );
}

#[test]
fn rename_link_copy_everywhere() {
    everywhere("links", rename_link_copy);
}

fn nul_paths(d: &Path) {
    let bad = d.join("nul\0name");
    let good = d.join("good");
    std::fs::write(&good, "g").unwrap();
    assert_eq!(kind(hilos::fs::create_dir(&bad)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(hilos::fs::create_dir_all(&bad)),
        ErrorKind::InvalidInput
    );
    assert_eq!(kind(hilos::fs::remove_dir(&bad)), ErrorKind::InvalidInput);
    assert_eq!(kind(hilos::fs::remove_file(&bad)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(hilos::fs::rename(&good, &bad)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(hilos::fs::hard_link(&good, &bad)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(hilos::fs::symlink(&bad, &good)),
        ErrorKind::InvalidInput
    );
    assert_eq!(kind(hilos::fs::exists(&bad)), ErrorKind::InvalidInput);
    assert_eq!(kind(hilos::fs::read_dir(&bad)), ErrorKind::InvalidInput);
    // Nothing happened to the good one.
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "g");
}

#[test]
fn interior_nul_is_invalid_input_everywhere() {
    everywhere("nul", nul_paths);
}

fn read_dir_entries(d: &Path) {
    // More entries than one batch (64), of three types.
    let mut want = BTreeMap::new();
    for i in 0..150 {
        let name = format!("f{i:03}");
        std::fs::write(d.join(&name), vec![b'x'; i]).unwrap();
        want.insert(name, "file");
    }
    for i in 0..20 {
        let name = format!("d{i:02}");
        std::fs::create_dir(d.join(&name)).unwrap();
        want.insert(name, "dir");
    }
    std::os::unix::fs::symlink("f000", d.join("link")).unwrap();
    want.insert("link".into(), "symlink");
    let mut got = BTreeMap::new();
    for e in hilos::fs::read_dir(d).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert_eq!(e.path(), d.join(&name));
        let t = e.file_type().unwrap();
        let m = e.metadata().unwrap();
        assert_eq!(e.ino(), m.ino());
        assert_eq!(
            t.is_symlink(),
            m.is_symlink(),
            "metadata does not follow links"
        );
        let ty = if t.is_dir() {
            "dir"
        } else if t.is_symlink() {
            "symlink"
        } else {
            assert!(t.is_file());
            assert_eq!(m.len(), name[1..].parse::<u64>().unwrap());
            "file"
        };
        assert!(got.insert(name, ty).is_none(), "an entry came twice");
    }
    assert_eq!(got, want);
    // Stopping early, and an empty directory.
    assert_eq!(hilos::fs::read_dir(d).unwrap().take(3).count(), 3);
    assert_eq!(hilos::fs::read_dir(d.join("d00")).unwrap().count(), 0);
    // Errors.
    assert_eq!(
        kind(hilos::fs::read_dir(d.join("none"))),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(hilos::fs::read_dir(d.join("f001"))),
        ErrorKind::NotADirectory
    );
    // An entry removed after it was listed: its metadata is NotFound.
    let e = hilos::fs::read_dir(d.join("d01")).unwrap().next();
    assert!(e.is_none());
    std::fs::write(d.join("d01/short-lived"), "").unwrap();
    let e = hilos::fs::read_dir(d.join("d01"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::remove_file(d.join("d01/short-lived")).unwrap();
    assert_eq!(kind(e.metadata()), ErrorKind::NotFound);
}

#[test]
fn read_dir_everywhere() {
    everywhere("read_dir", read_dir_entries);
}

fn locks_and_times(d: &Path) {
    let p = d.join("locked");
    let a = File::create(&p).unwrap();
    let b = File::open(&p).unwrap();
    // Exclusive against anything; shared with shared.
    a.lock().unwrap();
    assert!(matches!(b.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(b.try_lock_shared(), Err(TryLockError::WouldBlock)));
    a.unlock().unwrap();
    b.try_lock_shared().unwrap();
    a.lock_shared().unwrap();
    assert!(matches!(a.try_lock(), Err(TryLockError::WouldBlock)));
    b.unlock().unwrap();
    a.unlock().unwrap();
    b.try_lock().unwrap();
    assert!(matches!(a.try_lock_shared(), Err(TryLockError::WouldBlock)));
    drop(b); // closing releases it
    a.try_lock().unwrap();
    a.unlock().unwrap();
    // Times.
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let later = then + Duration::from_secs(60);
    a.set_times(FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
    let m = a.metadata().unwrap();
    assert_eq!((m.accessed().unwrap(), m.modified().unwrap()), (then, then));
    a.set_modified(later).unwrap();
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(
        (m.accessed().unwrap(), m.modified().unwrap()),
        (then, later)
    );
    // Through a read-only handle too (the owner may set a file's times).
    let r = OpenOptions::new().read(true).open(&p).unwrap();
    r.set_modified(then).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), then);
}

#[test]
fn locks_and_times_everywhere() {
    everywhere("locks", locks_and_times);
}

/// A green thread waiting in `File::lock` (or `lock_shared`) on a 1-worker runtime: another green
/// thread of the worker keeps running meanwhile, and the waiter gets the lock once the holder
/// unlocks.
#[test]
fn a_waiting_lock_parks_only_its_green_thread() {
    within(60, || {
        rt1().block_on(|| {
            let d = scratch("lock-wait");
            let p = d.join("f");
            for shared in [false, true] {
                let holder = File::create(&p).unwrap();
                holder.lock().unwrap();
                let got = std::sync::Arc::new(AtomicBool::new(false));
                let (g, p2) = (got.clone(), p.clone());
                let waiter = hilos::spawn(move || {
                    let f = File::open(&p2).unwrap();
                    if shared {
                        f.lock_shared().unwrap();
                    } else {
                        f.lock().unwrap();
                    }
                    g.store(true, Ordering::SeqCst);
                    f
                });
                let ticks = std::sync::Arc::new(AtomicU64::new(0));
                let stop = std::sync::Arc::new(AtomicBool::new(false));
                let (t, s) = (ticks.clone(), stop.clone());
                let ticker = hilos::spawn(move || {
                    while !s.load(Ordering::SeqCst) {
                        t.fetch_add(1, Ordering::SeqCst);
                        hilos::thread::sleep(Duration::from_millis(1));
                    }
                });
                // The waiter runs first (it was spawned first) and waits in `lock`; the ticker
                // and this thread keep running on the one worker meanwhile (if the wait held
                // the worker, nothing would, and the watchdog would fail the test).
                while ticks.load(Ordering::SeqCst) < 50 {
                    hilos::thread::sleep(Duration::from_millis(2));
                }
                assert!(!got.load(Ordering::SeqCst), "the lock was not free");
                holder.unlock().unwrap();
                let f = waiter.join().unwrap();
                assert!(got.load(Ordering::SeqCst));
                // The waiter holds it now.
                assert!(matches!(holder.try_lock(), Err(TryLockError::WouldBlock)));
                assert_eq!(holder.try_lock_shared().is_ok(), shared);
                drop(f);
                stop.store(true, Ordering::SeqCst);
                ticker.join().unwrap();
            }
            std::fs::remove_dir_all(&d).unwrap();
        })
    });
}

/// Many green threads making, listing and removing directories at once.
#[test]
fn many_green_threads_build_trees() {
    within(60, || {
        rt2().block_on(|| {
            let d = scratch("many");
            let hs: Vec<_> = (0..40)
                .map(|i| {
                    let top = d.join(format!("t{i}"));
                    hilos::spawn(move || {
                        hilos::fs::create_dir_all(top.join("a/b")).unwrap();
                        for j in 0..10 {
                            hilos::fs::write(top.join(format!("a/b/{j}")), "x").unwrap();
                        }
                        hilos::fs::rename(top.join("a/b"), top.join("c")).unwrap();
                        assert_eq!(hilos::fs::read_dir(top.join("c")).unwrap().count(), 10);
                        hilos::fs::remove_dir_all(&top).unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(hilos::fs::read_dir(&d).unwrap().count(), 0);
            hilos::fs::remove_dir(&d).unwrap();
        })
    });
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}
