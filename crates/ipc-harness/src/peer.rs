//! The peer launcher: runs the consumer side in a child process, which is
//! this same executable started again with a hidden `--peer` argument.
//!
//! - Only the fds of the exported ends (and the lifeline) are inherited,
//!   made inheritable in the child between fork and exec ([`ipc_core::Handover`]).
//! - The child dies with its parent: `PR_SET_PDEATHSIG` is set between fork
//!   and exec (the peer is spawned from the thread that runs the measurement,
//!   which waits for the peer before it ends: the signal fires when the
//!   *spawning thread* exits, the main thread of a method's binary, a row's
//!   thread in `ipc-compare`), the
//!   child exits if its parent was already gone by then, and it also watches
//!   a lifeline pipe whose EOF means the parent is gone.
//! - The parent learns of the child's death from a reaper thread (no zombie is
//!   left): a transport that sees the disconnect reports it, and for one that
//!   cannot, the reaper ends the run with exit code 3 after `--peer-timeout`,
//!   or, under `ipc-compare` ([`report_unnoticed_deaths_to`]), tells the
//!   comparison, which marks that row failed and goes on.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ipc_core::liveness::PeerProcess;
use ipc_core::{Endpoint, Handover};
use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};
use crate::protocol::Role;
use crate::sys::{wait_child, ChildExit};
use crate::wait::Wait;

/// The hidden argument that makes a binary run as a peer.
pub const PEER_ARG: &str = "--peer";

/// Everything a peer needs, passed as JSON after `--peer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerSpec {
    /// `method/variant` of the transport.
    pub entry: String,
    /// What the peer does with each message.
    pub role: Role,
    /// How the peer waits.
    pub wait: Wait,
    /// How long the peer's `hybrid` wait polls, in nanoseconds.
    pub spin_ns: u64,
    /// Whether the peer's polling yields its CPU (both sides share one).
    pub spin_yields: bool,
    /// The endpoint token of the channel the peer receives on.
    pub forward: String,
    /// The endpoint token of the channel the peer answers on.
    pub back: String,
    /// The CPU to pin the peer to.
    pub pin: Option<usize>,
    /// The parent's pid.
    pub parent: u32,
    /// The endpoint token of the lifeline pipe's read end.
    pub lifeline: String,
    /// Whether the peer takes its messages in place (zero-copy).
    #[serde(default)]
    pub in_place: bool,
}

/// Where the reapers tell of a peer that died unnoticed, when someone
/// listens (`ipc-compare`); otherwise such a death ends the process.
static UNNOTICED_DEATHS: Mutex<Option<mpsc::Sender<String>>> = Mutex::new(None);

/// From now on, a peer that dies without its run noticing within the peer
/// timeout is reported on `listener` (what happened, in words) instead of
/// ending this process with exit code 3. For a comparison that must go on
/// past a row whose transport blocks in the kernel for ever.
pub fn report_unnoticed_deaths_to(listener: mpsc::Sender<String>) {
    if let Ok(mut slot) = UNNOTICED_DEATHS.lock() {
        *slot = Some(listener);
    }
}

/// A running peer process.
#[derive(Debug)]
pub struct ChildPeer {
    pid: u32,
    process: PeerProcess,
    exit: mpsc::Receiver<std::io::Result<ChildExit>>,
    finished: Arc<AtomicBool>,
    peer_timeout: Duration,
    _lifeline: OwnedFd,
}

/// Starts the peer described by `spec` (whose `lifeline` is filled in here),
/// handing it the fds in `handover`.
pub fn spawn(
    mut spec: PeerSpec,
    mut handover: Handover,
    peer_timeout: Duration,
) -> Result<ChildPeer> {
    let (lifeline_read, lifeline_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| ipc_core::Error::sys("create the lifeline pipe", e))?;
    let mut lifeline = Endpoint::new("harness", "lifeline", 0);
    handover.add_fd(&mut lifeline, lifeline_read);
    spec.lifeline = lifeline.to_token();
    // SIGTERM rather than SIGKILL: the peer handles it and says why it stops.
    let handover = handover.death_signal(libc::SIGTERM);
    let exe =
        std::env::current_exe().map_err(|e| ipc_core::Error::io("find this executable", e))?;
    let json = serde_json::to_string(&spec).map_err(|e| HarnessError::Other(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg(PEER_ARG).arg(json).stdin(Stdio::null());
    // Closes the parent's copies of the child's ends.
    let (child, process) = handover.spawn(cmd)?;
    let pid = child.id();
    drop(child); // reaped by the thread below, by pid

    let finished = Arc::new(AtomicBool::new(false));
    let (tx, exit) = mpsc::channel();
    let done = Arc::clone(&finished);
    std::thread::Builder::new()
        .name("peer-reaper".into())
        .spawn(move || {
            let result = wait_child(pid);
            let died = matches!(&result, Ok(e) if !e.success());
            let how = result.as_ref().map(ChildExit::describe).unwrap_or_default();
            let _ = tx.send(result);
            if died && !done.load(Ordering::Acquire) {
                // Give the run the chance to notice and report it itself.
                std::thread::sleep(peer_timeout);
                if !done.load(Ordering::Acquire) {
                    let why = format!(
                        "the peer process (pid {pid}) {how}, and the transport did not notice within {peer_timeout:?}"
                    );
                    let listener = UNNOTICED_DEATHS.lock().ok().and_then(|l| l.clone());
                    if listener.is_some_and(|l| l.send(why.clone()).is_ok()) {
                        return;
                    }
                    eprintln!("error: {why}: giving up");
                    ipc_core::names::remove_all_registered();
                    std::process::exit(3);
                }
            }
        })
        .map_err(|e| ipc_core::Error::io("start the peer reaper thread", e))?;
    Ok(ChildPeer {
        pid,
        process,
        exit,
        finished,
        peer_timeout,
        _lifeline: lifeline_write,
    })
}

impl ChildPeer {
    /// The peer's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The peer's identity (pid, start time, pidfd), for the ends the
    /// parent keeps.
    pub fn process(&self) -> &PeerProcess {
        &self.process
    }

    /// After the run: waits up to the peer timeout for the peer to exit (it
    /// does once its receiver sees the channel closed), kills it otherwise,
    /// and reports a failure.
    pub fn finish(self) -> Result<()> {
        self.finished.store(true, Ordering::Release);
        match self.exit.recv_timeout(self.peer_timeout) {
            Ok(Ok(e)) if e.success() => Ok(()),
            Ok(Ok(e)) => Err(HarnessError::PeerDied {
                pid: self.pid,
                how: e.describe(),
            }),
            Ok(Err(e)) => Err(ipc_core::Error::io("wait for the peer", e).into()),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid as i32),
                    nix::sys::signal::SIGKILL,
                );
                Err(HarnessError::Other(format!(
                    "the peer (pid {}) did not exit within {:?} after the run; killed it",
                    self.pid, self.peer_timeout
                )))
            }
        }
    }

    /// Explains a transport error seen mid-run: when the peer has died (or
    /// dies within the peer timeout) that is the real cause.
    pub fn explain(self, err: HarnessError) -> HarnessError {
        self.finished.store(true, Ordering::Release);
        let wait = if matches!(err, HarnessError::Transport(ipc_core::Error::Disconnected)) {
            self.peer_timeout
        } else {
            Duration::from_millis(200)
        };
        match self.exit.recv_timeout(wait) {
            Ok(Ok(e)) if !e.success() => HarnessError::PeerDied {
                pid: self.pid,
                how: e.describe(),
            },
            _ => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid as i32),
                    nix::sys::signal::SIGKILL,
                );
                err
            }
        }
    }
}

/// Says that the parent is gone and exits with code 3. Several threads may
/// notice at once (lifeline, death signal, the run itself): the first says
/// it and exits; the others wait for it, so that none ends the process
/// before the message is written.
pub fn parent_gone(parent: u32) -> ! {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SAID.swap(true, Ordering::AcqRel) {
        loop {
            std::thread::park();
        }
    }
    eprintln!("peer: the parent process (pid {parent}) is gone; exiting");
    std::process::exit(3);
}

/// Whether the parent named in `spec` is still this process's parent and
/// is not exiting.
///
/// A parent killed with SIGKILL closes its fds before the kernel hands its
/// children to a new parent: a peer that sees its channel end may still see
/// the old parent pid for a moment, and would take the death for the end of
/// the run. The kernel marks a process that has begun to exit (`PF_EXITING`
/// in the flags of /proc/PID/stat) before it closes any fd, so a peer
/// that looks there after its channel ended tells the two apart. While the
/// pid is still our parent it cannot have been reused.
pub fn parent_alive(spec: &PeerSpec) -> bool {
    nix::unistd::getppid().as_raw() as u32 == spec.parent
        && !ipc_core::liveness::exiting(spec.parent)
}

/// In the peer: exits (code 3, saying so) as soon as the parent is gone,
/// seen as EOF on the lifeline, the death signal (SIGTERM) or a changed
/// parent pid; exits quietly on Ctrl-C.
///
/// # Safety
///
/// `spec` came from the parent that spawned this process with [`spawn`],
/// which handed over the lifeline fd its token names; nothing else in this
/// process owns that fd.
pub unsafe fn watch_parent(spec: &PeerSpec) {
    let parent = spec.parent;
    if !parent_alive(spec) {
        parent_gone(parent);
    }
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        let _ = std::thread::Builder::new()
            .name("peer-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    // The death signal can arrive while the kernel is still
                    // handing this process's threads to their new parent, so
                    // this thread may see the old parent for a moment.
                    for _ in 0..50 {
                        if nix::unistd::getppid().as_raw() as u32 != parent {
                            parent_gone(parent);
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    std::process::exit(128 + sig);
                }
            });
    }
    // SAFETY: passed on from our caller: the parent handed this fd over.
    let endpoint = unsafe { Endpoint::from_token(&spec.lifeline) };
    let Ok(lifeline) = endpoint.and_then(|mut e| e.take_fd(0)) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            // Blocks until the parent's end closes (EOF) or fails.
            while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(&lifeline, &mut byte) {}
            parent_gone(parent);
        });
}
