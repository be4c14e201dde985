//! The process flavour: the other end lives in a child process, spawned
//! through [`Handover`] as a library user would. The child is this same test
//! binary, started with a filter that runs only the current test, and an
//! environment that tells that test to play the other end instead of the
//! check ([`run`] decides which). Beside the end under test, the child gets
//! two pipes of its own: one on which the parent says "go", one on which the
//! child reports what it received.

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::flavors::{drain, send_all, Flavor, Producer};
use super::Digest;
use crate::endpoint::{hex, unhex, Endpoint, Handover};
use crate::error::Error;
use crate::fdstream::{FdReceiver, FdSender};
use crate::transport::{Mode, Receiver, Sender, Transport};

const ROLE_VAR: &str = "IPC_CONFORMANCE_ROLE";
const END_VAR: &str = "IPC_CONFORMANCE_END";
const PIPES_VAR: &str = "IPC_CONFORMANCE_PIPES";
const PARENT_VAR: &str = "IPC_CONFORMANCE_PARENT";

/// Digests per report frame.
const PER_FRAME: usize = 4096;

/// What the child reports once it has opened its end.
const READY: &[u8] = b"ready";

/// What the child does with the end it is given.
#[derive(Debug, Serialize, Deserialize)]
enum Role {
    /// Receive until `Disconnected` (after "go", when paused), report the digests.
    Sink { paused: bool },
    /// On "go" send these, on the second "go" drop the sender and exit.
    Source { msgs: Vec<Vec<u8>> },
    /// Open the receiver, drop it, exit.
    Close,
    /// Open the receiver and kill this process (SIGKILL).
    Die,
}

thread_local! {
    /// The libtest name of the test running on this thread.
    static TEST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs one check of the suite: `module` is the `module_path!()` of the
/// macro's module and `name` the check's name. In a child started by the
/// process flavour, plays the other end instead, with the fds its parent
/// handed over.
///
/// # Safety
///
/// In a test binary, the `IPC_CONFORMANCE_*` environment variables are set
/// only by the process flavour, which starts this binary anew with the fds
/// they name handed over; nothing else in the process may own those fds
/// (so nothing may set these variables, and `run` must not be called where
/// they are inherited by a process other than the one spawned for them:
/// the child checks that its parent is the process named there).
pub unsafe fn run<T: Transport, F: Flavor<T>>(module: &str, name: &str, check: fn()) {
    if std::env::var_os(ROLE_VAR).is_some() {
        // SAFETY: passed on from our caller.
        unsafe { child::<T>() };
        return;
    }
    // libtest names a test by its path without the crate's name.
    let path = module.split_once("::").map_or(module, |(_, rest)| rest);
    TEST.with(|t| *t.borrow_mut() = format!("{path}::{name}"));
    check();
}

/// Set in a child that runs one check alone ([`in_a_process_of_its_own`]).
const ALONE_VAR: &str = "IPC_CONFORMANCE_ALONE";

/// Runs `body` in a process where nothing else runs: this test binary
/// started again for the current test alone (one test thread), which runs
/// `body` and exits; here, waits for it and fails if it failed. In that
/// child, runs `body` itself. For checks that count what the process holds.
pub(super) fn in_a_process_of_its_own(body: impl FnOnce()) {
    if std::env::var_os(ALONE_VAR).is_some() {
        body();
        return;
    }
    let test = TEST.with(|t| t.borrow().clone());
    assert!(!test.is_empty(), "the check runs inside conformance::run");
    let exe = std::env::current_exe().expect("this test binary");
    let status = Command::new(exe)
        .args([
            test.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ALONE_VAR, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("start this test binary again");
    assert!(status.success(), "{test}, run alone: {status}");
}

/// The other end lives in a child process (process mode).
#[derive(Debug)]
pub struct Processes;

/// A running child and the parent's ends of its two pipes.
struct Peer {
    child: Child,
    go: FdSender,
    report: FdReceiver,
}

impl Peer {
    /// Starts the child playing `role` with `endpoint` (exported into
    /// `handover`); returns it, and who it is for the ends the parent keeps.
    fn spawn(
        role: &Role,
        endpoint: Endpoint,
        mut handover: Handover,
    ) -> (Peer, crate::liveness::PeerProcess) {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("a pipe for the child");
        let (go_read, go_write) = pipe();
        let (report_read, report_write) = pipe();
        let mut pipes = Endpoint::new("conformance", "pipes", 1 << 20);
        handover.add_fd(&mut pipes, go_read);
        handover.add_fd(&mut pipes, report_write);
        let test = TEST.with(|t| t.borrow().clone());
        assert!(
            !test.is_empty(),
            "the process flavour runs inside conformance::run"
        );
        let exe = std::env::current_exe().expect("this test binary");
        let mut cmd = Command::new(exe);
        // `--include-ignored`: the check may be a long one, `#[ignore]`d.
        cmd.args([
            test.as_str(),
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            ROLE_VAR,
            hex(&postcard::to_stdvec(role).expect("encode the role")),
        )
        .env(END_VAR, endpoint.to_token())
        .env(PIPES_VAR, pipes.to_token())
        .env(PARENT_VAR, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        let (child, who) = handover.spawn(cmd).expect("spawn the child");
        let mut peer = Peer {
            child,
            go: FdSender::new(go_write, 64).expect("the go pipe"),
            report: FdReceiver::new(report_read, 1 << 20),
        };
        // The child says "ready" once it has opened its end.
        if !matches!(peer.report.recv(), Ok(m) if m == READY) {
            panic!("the child did not open its end: {}", peer.wait());
        }
        (peer, who)
    }

    fn go(&mut self) {
        // The child may be gone already (it was killed, or it failed): its
        // exit status tells.
        let _ = self.go.send(b"go");
    }

    /// Waits for the child to end; returns how.
    fn wait(mut self) -> std::process::ExitStatus {
        drop(self.go);
        let waited = std::thread::spawn(move || self.child.wait());
        waited
            .join()
            .expect("wait for the child")
            .expect("the child's exit status")
    }

    fn digests(&mut self) -> Vec<Digest> {
        let mut got = Vec::new();
        loop {
            match self.report.recv() {
                Ok(frame) => got.extend(frame.chunks_exact(16).map(|d| {
                    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                    Digest {
                        len: word(&d[..8]),
                        hash: word(&d[8..]),
                    }
                })),
                Err(Error::Disconnected) => return got,
                Err(e) => panic!("read the child's report: {e}"),
            }
        }
    }
}

fn assert_exited_well(status: std::process::ExitStatus) {
    assert!(
        status.success(),
        "the child playing the other end failed: {status}"
    );
}

impl<T: Transport> Flavor<T> for Processes {
    const MODE: Mode = Mode::Process;

    fn consume(
        mut tx: T::Sender,
        rx: T::Receiver,
        paused: bool,
        produce: &mut dyn FnMut(&mut T::Sender),
    ) -> Vec<Digest> {
        let mut handover = Handover::new();
        let endpoint = T::export_receiver(rx, &mut handover).expect("export the receiver");
        let (mut peer, who) = Peer::spawn(&Role::Sink { paused }, endpoint, handover);
        T::set_peer_of_sender(&mut tx, &who).expect("tell the sender its peer");
        produce(&mut tx);
        peer.go();
        drop(tx);
        let got = peer.digests();
        assert_exited_well(peer.wait());
        got
    }

    fn produce(tx: T::Sender, rx: &mut T::Receiver, msgs: Vec<Vec<u8>>) -> Box<dyn Producer> {
        let mut handover = Handover::new();
        let endpoint = T::export_sender(tx, &mut handover).expect("export the sender");
        let (peer, who) = Peer::spawn(&Role::Source { msgs }, endpoint, handover);
        T::set_peer_of_receiver(rx, &who).expect("tell the receiver its peer");
        Box::new(ChildProducer { peer: Some(peer) })
    }

    fn end_receiver(tx: &mut T::Sender, rx: T::Receiver, kill: bool) {
        let mut handover = Handover::new();
        let endpoint = T::export_receiver(rx, &mut handover).expect("export the receiver");
        let role = if kill { Role::Die } else { Role::Close };
        let (peer, who) = Peer::spawn(&role, endpoint, handover);
        T::set_peer_of_sender(tx, &who).expect("tell the sender its peer");
        let status = peer.wait();
        if kill {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        } else {
            assert_exited_well(status);
        }
    }
}

struct ChildProducer {
    peer: Option<Peer>,
}

impl Producer for ChildProducer {
    fn go(&mut self) {
        if let Some(peer) = &mut self.peer {
            peer.go();
        }
    }

    fn finish(mut self: Box<Self>) {
        if let Some(mut peer) = self.peer.take() {
            peer.go();
            assert_exited_well(peer.wait());
        }
    }
}

impl Drop for ChildProducer {
    fn drop(&mut self) {
        if let Some(mut peer) = self.peer.take() {
            let _ = peer.child.kill();
            let _ = peer.child.wait();
        }
    }
}

/// In the child: plays the role the parent asked for, with the end it
/// handed over. A failure panics, which fails the child's test and so its
/// exit status.
///
/// # Safety
///
/// As for [`run`].
unsafe fn child<T: Transport>() {
    let role: Role = std::env::var(ROLE_VAR)
        .ok()
        .and_then(|r| unhex(&r))
        .and_then(|b| postcard::from_bytes(&b).ok())
        .expect("the role the parent gave");
    let parent = std::env::var(PARENT_VAR)
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    assert_eq!(
        parent,
        // SAFETY: getppid cannot fail and touches no memory.
        Some(unsafe { libc::getppid() }),
        "the conformance variables were set for another process: adopting no fd"
    );
    // SAFETY: our caller promises the parent started this process with
    // these variables and handed over, with a Handover, exactly the fds they
    // name (and the parent checked above is the one that set them); nothing
    // in this test process has opened or adopted them.
    let (end, mut pipes) = unsafe { (Endpoint::from_env(END_VAR), Endpoint::from_env(PIPES_VAR)) };
    let end = end.expect("the end under test");
    let pipes = pipes.as_mut().expect("the child's pipes");
    let mut go = FdReceiver::new(pipes.take_fd(0).expect("the go pipe"), 64);
    let mut report = FdSender::new(pipes.take_fd(1).expect("the report pipe"), 1 << 20)
        .expect("the report pipe");
    let mut wait_for_go = || {
        let _ = go.recv();
    };
    let ready = |report: &mut FdSender| report.send(READY).expect("report ready");
    match role {
        Role::Sink { paused } => {
            let mut rx = T::open_receiver(end).expect("open the receiver");
            ready(&mut report);
            if paused {
                wait_for_go();
            }
            let got = drain(&mut rx);
            for chunk in got.chunks(PER_FRAME) {
                let frame: Vec<u8> = chunk
                    .iter()
                    .flat_map(|d| d.len.to_le_bytes().into_iter().chain(d.hash.to_le_bytes()))
                    .collect();
                report.send(&frame).expect("report");
            }
        }
        Role::Source { msgs } => {
            let mut tx = T::open_sender(end).expect("open the sender");
            ready(&mut report);
            wait_for_go();
            send_all(&mut tx, &msgs);
            wait_for_go();
        }
        Role::Close => {
            drop(T::open_receiver(end).expect("open the receiver"));
            ready(&mut report);
        }
        Role::Die => {
            let rx = T::open_receiver(end).expect("open the receiver");
            ready(&mut report);
            // SAFETY: kill sends a signal to this very process; nothing after
            // it runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            drop(rx);
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
