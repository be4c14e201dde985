//! Helpers for running the binaries as a user would: a private `$TMPDIR` per
//! test, a bounded wait for every child, and the peer's pid from /proc.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A private temporary directory, given to the binary as `$TMPDIR`, removed
/// at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ipc-test.{test}.{}.{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&path).expect("create a test directory");
        TempDir(path)
    }

    /// What the binary left in it.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % 1_000_000
}

/// A command for binary `path` with `$TMPDIR` set to `tmp`.
pub fn command(path: &str, tmp: &TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(path);
    cmd.args(args).env("TMPDIR", &tmp.0);
    cmd
}

/// Runs to the end (killed after `limit`), capturing output.
pub fn run(cmd: Command, limit: Duration) -> Output {
    run_with_pid(cmd, limit).0
}

/// [`run`], also giving the process's pid (to look for what it left behind).
pub fn run_with_pid(mut cmd: Command, limit: Duration) -> (Output, u32) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
            if !alive(pid) {
                return;
            }
        }
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().expect("wait for the binary");
    let _ = watchdog.join();
    (out, pid)
}

/// Waits up to `limit` for `child` to exit; kills it if it does not.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// The children of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Waits up to `limit` for `pid` to have a child (the peer) and returns it.
pub fn wait_for_child(pid: u32, limit: Duration) -> u32 {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(&c) = children(pid).first() {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} started no peer within {limit:?}");
}

/// Waits up to `limit` for `pid` to have a child that is a harness peer
/// (it runs a "peer-signals" thread; a reference's forked child does not)
/// and returns it.
pub fn wait_for_peer(pid: u32, limit: Duration) -> u32 {
    let start = Instant::now();
    while start.elapsed() < limit {
        for c in children(pid) {
            if has_thread(c, "peer-signals") {
                return c;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} started no peer within {limit:?}");
}

/// Waits up to `limit` for process `pid` to run a thread named `name` (a
/// peer has its handlers in place once its "peer-signals" thread runs).
pub fn wait_for_thread(pid: u32, name: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if has_thread(pid, name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} has no thread {name:?} after {limit:?}");
}

/// Whether process `pid` has a thread named `name` now.
pub fn has_thread(pid: u32, name: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
        })
        .unwrap_or(false)
}

/// Whether process `pid` is running (not a zombie) and a SIGTERM could yet
/// end it without running any code of its own: it has not executed an
/// image whose arguments include `image_arg` (a forked child still runs its
/// parent's image, whose inherited handlers the exec resets), or SIGTERM is
/// neither caught nor ignored, from `/proc/<pid>/status`. False when that
/// cannot be read.
pub fn sigterm_ends_silently(pid: u32, image_arg: &str) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if !field("State:").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X')) {
        return false;
    }
    let executed = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|args| args.split(|&b| b == 0).any(|a| a == image_arg.as_bytes()));
    let term_bit = 1u64 << (libc::SIGTERM - 1);
    let unset = |name: &str| {
        field(name)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|mask| mask & term_bit == 0)
    };
    !executed || unset("SigCgt:") && unset("SigIgn:")
}

/// Waits up to `limit` for `pid` to be gone.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill only sends a signal; the pid is one of this test's processes.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The one JSON object a `--json` run printed.
pub fn json_line(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stdout, got {stdout:?} (stderr: {})",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(lines[0]).expect("valid JSON")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `bin stream <args>` long enough to be interrupted, and waits for
/// its peer; returns both.
pub fn long_stream(bin: &str, tmp: &TempDir, args: &[&str]) -> (Child, u32) {
    let mut all = vec![
        "stream",
        "--count",
        "1000000000",
        "--verify",
        "seq",
        "--peer-timeout",
        "2",
    ];
    all.extend_from_slice(args);
    let child = command(bin, tmp, &all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let peer = wait_for_child(child.id(), Duration::from_secs(10));
    wait_for_thread(peer, "peer-signals", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    (child, peer)
}

/// What a finished child wrote on stderr.
pub fn stderr_of(child: Child) -> String {
    let out = child.wait_with_output().expect("collect output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every start of a run and `clean` remove the objects of creators that
/// died, whoever started them: the tests of one binary that kill a creator
/// take this lock, so that one does not remove what another killed and
/// still checks.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The objects in /dev/shm that process `pid` created for `method`.
pub fn dev_shm_objects_of(method: &str, pid: u32) -> Vec<String> {
    let prefix = format!("ipc-showcase.{method}.{pid}.");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Kills the peer of a running `child` and checks that the run ends within
/// 20 s with exit code 3, naming the death on stderr (`what` labels the
/// failures).
pub fn kill_the_peer_and_expect_exit_code_3(mut child: Child, peer: u32, what: &str) {
    signal(peer, libc::SIGKILL);
    let started = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "{what}: still running {:?} after its peer was killed",
            started.elapsed()
        )
    });
    assert_eq!(status.code(), Some(3), "{what}: exit status {status:?}");
    let err = stderr_of(child);
    assert!(
        err.contains("peer") && err.contains("signal 9"),
        "{what}: stderr does not name the peer's death: {err}"
    );
}

/// Sends Ctrl-C (SIGINT) to a running `child` and checks that it stops
/// within 10 s, unsuccessfully, and takes its peer along.
pub fn ctrl_c_and_expect_both_gone(mut child: Child, peer: u32, what: &str) {
    signal(child.id(), libc::SIGINT);
    let status =
        wait_bounded(&mut child, Duration::from_secs(10)).expect("still running after Ctrl-C");
    assert!(!status.success(), "{what}: {status:?}");
    assert!(
        wait_gone(peer, Duration::from_secs(10)),
        "{what}: the peer outlived Ctrl-C"
    );
}

/// Kills a running `child` (the parent of a run) with SIGKILL and checks
/// that its peer goes too, within 10 s.
pub fn kill_the_parent_and_expect_the_peer_gone(mut child: Child, peer: u32, what: &str) {
    signal(child.id(), libc::SIGKILL);
    let _ = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(
        wait_gone(peer, Duration::from_secs(10)),
        "{what}: the peer outlived its parent"
    );
}
