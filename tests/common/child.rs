//! Starting this test binary again as a child process; shared by the integration tests (through
//! `common`) and the stack layer's unit tests (which include this file by path).

/// A command that runs this test binary again. Through the runner named by `HILOS_TEST_RUNNER`
/// (a command line, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`) when it is set: an emulated
/// test binary cannot be started by the kernel directly.
pub fn self_command() -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let runner = std::env::var("HILOS_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(prog) => std::process::Command::new(prog),
        None => return std::process::Command::new(exe),
    };
    cmd.args(words).arg(exe);
    cmd
}
