//! Files and the standard streams.

mod io_util;

use std::io::{Read, Seek, SeekFrom, Write};

use hilos::fs::{File, OpenOptions};
use io_util::{is_child, rt1, rt2, within};

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "hilos-fs-{}-{}-{name}",
        std::process::id(),
        std::env::var("HILOS_IO").unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn write_read_seek_append_truncate() {
    within(60, || {
        rt2().block_on(|| {
            let p = tmp("roundtrip");
            let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
            hilos::fs::write(&p, &data).unwrap();
            assert_eq!(hilos::fs::read(&p).unwrap(), data);
            assert_eq!(hilos::fs::metadata(&p).unwrap().len(), data.len() as u64);
            // read_at does not move the position; reads do.
            let mut f = File::open(&p).unwrap();
            let mut b = [0u8; 10];
            f.read_exact_at(&mut b, 5000).unwrap();
            assert_eq!(&b[..], &data[5000..5010]);
            f.read_exact(&mut b).unwrap();
            assert_eq!(&b[..], &data[..10]);
            assert_eq!(f.stream_position().unwrap(), 10);
            f.seek(SeekFrom::End(-3)).unwrap();
            let mut tail = Vec::new();
            f.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &data[data.len() - 3..]);
            drop(f);
            // Append.
            let mut a = OpenOptions::new().append(true).open(&p).unwrap();
            a.write_all(b"appended").unwrap();
            a.sync_data().unwrap();
            let all = hilos::fs::read(&p).unwrap();
            assert_eq!(&all[..data.len()], &data[..]);
            assert_eq!(&all[data.len()..], b"appended");
            // write_at in the middle, then truncate.
            let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
            f.write_all_at(b"XYZ", 10).unwrap();
            f.set_len(13).unwrap();
            f.sync_all().unwrap();
            assert_eq!(f.metadata().unwrap().len(), 13);
            let mut s = Vec::new();
            (&f).read_to_end(&mut s).unwrap();
            assert_eq!(&s[..10], &data[..10]);
            assert_eq!(&s[10..], b"XYZ");
            // Strings; errors.
            hilos::fs::write(&p, "héllo").unwrap();
            assert_eq!(hilos::fs::read_to_string(&p).unwrap(), "héllo");
            hilos::fs::remove_file(&p).unwrap();
            assert_eq!(
                File::open(&p).unwrap_err().kind(),
                std::io::ErrorKind::NotFound
            );
            let p2 = tmp("new2");
            File::create_new(&p2).unwrap();
            assert_eq!(
                File::create_new(&p2).unwrap_err().kind(),
                std::io::ErrorKind::AlreadyExists
            );
            let _ = std::fs::remove_file(&p2);
        })
    });
}

#[test]
fn a_sparse_file_over_4_gib() {
    within(60, || {
        rt1().block_on(|| {
            let p = tmp("sparse");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .unwrap();
            let big: u64 = 5 << 30;
            f.set_len(big).unwrap();
            let off = (4u64 << 30) + 12345;
            f.write_all_at(b"beyond 4 GiB", off).unwrap();
            let mut b = [0u8; 12];
            f.read_exact_at(&mut b, off).unwrap();
            assert_eq!(&b, b"beyond 4 GiB");
            // The hole reads as zeros; the length is what was set.
            let mut z = [1u8; 64];
            f.read_exact_at(&mut z, 3 << 30).unwrap();
            assert!(z.iter().all(|&x| x == 0));
            assert_eq!(f.metadata().unwrap().len(), big);
            // Positioned reads and writes past 4 GiB through the cursor too.
            let mut g = f.try_clone().unwrap();
            g.seek(SeekFrom::Start(off)).unwrap();
            let mut c = [0u8; 6];
            g.read_exact(&mut c).unwrap();
            assert_eq!(&c, b"beyond");
            drop((f, g));
            std::fs::remove_file(&p).unwrap();
        })
    });
}

#[test]
fn many_green_threads_share_files() {
    within(60, || {
        rt2().block_on(|| {
            let hs: Vec<_> = (0..50)
                .map(|i| {
                    hilos::spawn(move || {
                        let p = tmp(&format!("many-{i}"));
                        let body = format!("file {i}\n").repeat(100);
                        hilos::fs::write(&p, &body).unwrap();
                        assert_eq!(hilos::fs::read_to_string(&p).unwrap(), body);
                        std::fs::remove_file(&p).unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        })
    });
}

/// The child half of `stdio_through_pipes`: echoes stdin to stdout, upper-cased, and says hello
/// on stderr, through hilos's handles, on a green thread.
#[test]
fn stdio_child() {
    if std::env::var_os("HILOS_STDIO_CHILD").is_none() {
        return;
    }
    rt1().block_on(|| {
        let mut input = String::new();
        hilos::io::stdin().read_to_string(&mut input).unwrap();
        let mut out = hilos::io::stdout();
        out.write_all(format!("<<{}>>", input.to_uppercase()).as_bytes())
            .unwrap();
        hilos::io::stderr().write_all(b"[child stderr]").unwrap();
    });
}

#[test]
fn stdio_through_pipes() {
    if is_child() {
        return;
    }
    for backend in ["uring", "epoll"] {
        let mut child = io_util::self_command()
            .args(["--exact", "stdio_child", "--test-threads=1", "-q"])
            .env("HILOS_TEST_CHILD", "1")
            .env("HILOS_STDIO_CHILD", "1")
            .env("HILOS_IO", backend)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"green input")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("<<GREEN INPUT>>"), "{backend}: {stdout}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("[child stderr]"),
            "{backend}"
        );
    }
}

#[test]
fn under_epoll() {
    io_util::rerun_under_epoll("under_epoll");
}
