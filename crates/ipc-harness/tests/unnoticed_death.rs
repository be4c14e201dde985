//! `ipc-compare` goes on past a row whose transport does not notice that
//! its peer died (as signals, semaphores and queues blocked in the kernel
//! would not): the row is marked failed with the reason, the other rows run,
//! and the files are written. Before, the reaper's `exit(3)` ended the
//! whole comparison.
//!
//! This test binary is its own `main` (`harness = false`): it is the
//! comparison (with `UNNOTICED_COMPARE` set), the comparison's peers
//! (`--peer`), and the test that drives both.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipc_core::fdstream::{FdReceiver, FdSender};
use ipc_core::{Endpoint, Error, Handover, Mode, Options, Result, Transport};
use ipc_harness::Entry;

/// Pipes whose exported sender leaves a copy of its fd in the parent, so
/// the parent's receiver never sees EOF: a peer that dies is not noticed.
struct Stubborn;

/// The copies kept, for the life of the process.
static KEPT: std::sync::Mutex<Vec<OwnedFd>> = std::sync::Mutex::new(Vec::new());

impl Transport for Stubborn {
    const NAME: &'static str = "stubborn";
    const VARIANT: &'static str = "pipe";
    const MODES: &'static [Mode] = &[Mode::Process];
    type Sender = FdSender;
    type Receiver = FdReceiver;

    fn channel(_: Mode, opts: &Options) -> Result<(FdSender, FdReceiver)> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        Ok((
            FdSender::new(write, opts.max_message)?,
            FdReceiver::new(read, opts.max_message),
        ))
    }

    fn export_sender(end: FdSender, handover: &mut Handover) -> Result<Endpoint> {
        let fd = end.into_fd()?;
        let copy = fd.try_clone().map_err(|e| Error::io("dup", e))?;
        KEPT.lock().map_err(|_| Error::Disconnected)?.push(copy);
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, 1 << 20);
        handover.add_fd(&mut ep, fd);
        Ok(ep)
    }

    fn export_receiver(end: FdReceiver, handover: &mut Handover) -> Result<Endpoint> {
        let mut ep = Endpoint::new(Self::NAME, Self::VARIANT, 1 << 20);
        handover.add_fd(&mut ep, end.into_fd());
        Ok(ep)
    }

    fn open_sender(mut ep: Endpoint) -> Result<FdSender> {
        FdSender::new(ep.take_fd(0)?, ep.max_message)
    }

    fn open_receiver(mut ep: Endpoint) -> Result<FdReceiver> {
        Ok(FdReceiver::new(ep.take_fd(0)?, ep.max_message))
    }
}

fn main() {
    let entries = [Entry::of::<Stubborn>()];
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_harness::run_peer_if_asked(&entries) };
    if std::env::var_os("UNNOTICED_COMPARE").is_some() {
        // SAFETY: as above.
        unsafe { ipc_harness::compare::main(&entries) }
    }
    // libtest's arguments (a filter, --list) are for tests with a harness.
    if std::env::args().any(|a| a == "--list") {
        println!("a_row_whose_peer_dies_unnoticed_fails_and_the_run_goes_on: test");
        return;
    }
    a_row_whose_peer_dies_unnoticed_fails_and_the_run_goes_on();
    println!("test a_row_whose_peer_dies_unnoticed_fails_and_the_run_goes_on ... ok");
}

fn a_row_whose_peer_dies_unnoticed_fails_and_the_run_goes_on() {
    let out = std::env::temp_dir().join(format!("ipc-test.unnoticed.{}", std::process::id()));
    // Removed however the test ends (a failed assertion included).
    struct RemovedAtTheEnd(std::path::PathBuf);
    impl Drop for RemovedAtTheEnd {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _removed = RemovedAtTheEnd(out.clone());
    let exe = std::env::current_exe().expect("this test binary");
    let mut compare = Command::new(exe)
        .args([
            "--quick",
            "--count",
            "200000",
            "--budget-ms",
            "600000",
            "--peer-timeout",
            "1",
            "--out",
        ])
        .arg(&out)
        .env("UNNOTICED_COMPARE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the comparison");
    // The first row (blocking waits, 200 000 round trips) runs for seconds;
    // its peer is the comparison's first child.
    let peer = first_child(compare.id(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill only sends a signal, to the peer this test started.
    unsafe { libc::kill(peer as i32, libc::SIGKILL) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = compare.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = compare.kill();
            panic!("the comparison is still running 120 s after its peer was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = compare
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    assert!(status.success(), "{status:?}: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    let rows = doc["results"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "one row per wait: {rows:?}");
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    let why = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("signal 9") && why.contains("did not notice"),
        "{why}"
    );
    assert_eq!(rows.iter().filter(|r| r["status"] == "ok").count(), 2);
    for file in ["results.csv", "rtt_64.svg", "report.html"] {
        assert!(out.join(file).exists(), "{file} was not written");
    }
}

/// Waits for process `pid` to have a child, and returns it.
fn first_child(pid: u32, limit: Duration) -> u32 {
    let started = Instant::now();
    while started.elapsed() < limit {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            if let Some(child) = children.split_whitespace().find_map(|c| c.parse().ok()) {
                return child;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the comparison started no peer within {limit:?}");
}
