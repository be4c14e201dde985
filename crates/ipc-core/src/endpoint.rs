//! Handing a channel's end to a child process: the [`Endpoint`] token and the
//! [`Handover`] that makes only the chosen fds inheritable.
//!
//! ```no_run
//! # use ipc_core::{Endpoint, Handover, Mode, Options, Transport};
//! # fn demo<T: Transport>() -> ipc_core::Result<()> {
//! // Parent: make a channel, keep the sender, hand the receiver to a child.
//! let (mut tx, rx) = T::channel(Mode::Process, &Options::default())?;
//! let mut handover = Handover::new();
//! let endpoint = T::export_receiver(rx, &mut handover)?;
//! let mut cmd = std::process::Command::new("my-child");
//! cmd.env("MY_CHANNEL", endpoint.to_token());
//! let (_child, peer) = handover.spawn(cmd)?; // closes the parent's copies
//! T::set_peer_of_sender(&mut tx, &peer)?;
//!
//! // Child, first thing in main: one call reopens it.
//! // SAFETY: MY_CHANNEL was set by the parent above, which handed over the
//! // fds it names to this process; nothing here has touched them.
//! let endpoint = unsafe { Endpoint::from_env("MY_CHANNEL") }?;
//! let mut rx = T::open_receiver(endpoint)?;
//! # Ok(()) }
//! ```
//!
//! # Why reopening is `unsafe`
//!
//! A token names file descriptors by number, and taking ownership of a
//! number (`OwnedFd::from_raw_fd`) is `unsafe` in Rust: if something else in
//! the process owns that fd, both would close it. A token cannot vouch for
//! itself (an environment variable can be set by safe code), so
//! [`Endpoint::from_token`] and [`Endpoint::from_env`] are the one place
//! where fd numbers enter an [`Endpoint`] from outside, and their caller
//! promises that the fds were handed over to this process and that nothing
//! else owns them. From then on each fd is owned by the endpoint and can be
//! taken once ([`Endpoint::take_fd`]), so `open_sender`/`open_receiver` are
//! safe. An endpoint made by an export describes fds for a child: it can be
//! turned into a token, never opened.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::liveness::PeerProcess;

/// A small description of one end of a channel, enough for a child process
/// to reopen it: fd numbers it inherited, a path, an object name, the
/// creator's pid and the options that matter.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Endpoint {
    /// `<method>/<variant>` of the transport that made it, checked on open.
    pub transport: String,
    /// A filesystem path (a FIFO, ...).
    pub path: Option<String>,
    /// An OS object name (a shm region, a queue, an abstract socket).
    pub name: Option<String>,
    /// The pid of the process that created the channel.
    pub creator_pid: u32,
    /// The largest message of the channel.
    pub max_message: usize,
    /// Transport-specific numbers (sizes, offsets, signal numbers).
    pub extra: Vec<u64>,
    fds: Fds,
}

/// The fds of an endpoint: numbers for a child (made by an export), or fds
/// this process owns (adopted by `from_token`), each taken at most once.
#[derive(Debug)]
enum Fds {
    ForChild(Vec<RawFd>),
    Adopted(Vec<Option<OwnedFd>>),
}

impl Default for Fds {
    fn default() -> Self {
        Fds::ForChild(Vec::new())
    }
}

/// The token's contents (**contract** of the hand-over between our binaries).
#[derive(Serialize, Deserialize)]
struct Wire {
    transport: String,
    fds: Vec<RawFd>,
    path: Option<String>,
    name: Option<String>,
    creator_pid: u32,
    max_message: usize,
    extra: Vec<u64>,
}

impl Endpoint {
    /// An endpoint of transport `method/variant` created by this process.
    pub fn new(method: &str, variant: &str, max_message: usize) -> Self {
        Endpoint {
            transport: format!("{method}/{variant}"),
            creator_pid: std::process::id(),
            max_message,
            ..Endpoint::default()
        }
    }

    /// Encodes the endpoint as a short printable token (hex of its postcard
    /// form), for a command-line argument or an environment variable.
    pub fn to_token(&self) -> String {
        let wire = Wire {
            transport: self.transport.clone(),
            fds: self.fds(),
            path: self.path.clone(),
            name: self.name.clone(),
            creator_pid: self.creator_pid,
            max_message: self.max_message,
            extra: self.extra.clone(),
        };
        hex(&postcard::to_stdvec(&wire).unwrap_or_default())
    }

    /// Decodes a token made by [`Endpoint::to_token`] and takes ownership of
    /// the fds it names, after checking that each is open here (and marking
    /// it close-on-exec again, so it goes no further). Fds not taken by an
    /// open are closed when the endpoint is dropped. A token must come from
    /// this process or its parent, and every object it names must be that
    /// creator's and still running (`BadEndpoint` otherwise): an end is
    /// handed from the process that made the channel to its child, not on
    /// to a grandchild.
    ///
    /// # Safety
    ///
    /// The fds the token names must have been handed over to this process
    /// for this endpoint (by a parent's [`Handover`]), and nothing else in
    /// this process may own them or use them: they are closed when the end
    /// opened from them is dropped. Call it once per token.
    pub unsafe fn from_token(token: &str) -> Result<Self> {
        let wire = decode(token)?;
        check_creator(&wire)?;
        // All or nothing: every fd must be open and named once before any
        // is adopted (an fd adopted twice would be closed twice).
        for (i, &fd) in wire.fds.iter().enumerate() {
            if wire.fds[..i].contains(&fd) {
                return Err(Error::BadEndpoint(format!(
                    "the endpoint names fd {fd} twice"
                )));
            }
            crate::sys::check_open(fd)?;
        }
        let fds = wire
            .fds
            .iter()
            // SAFETY: the caller promises these fds were handed to this
            // process for this endpoint and that nothing else owns them;
            // each is open and named once (checked above).
            .map(|&fd| unsafe { crate::sys::adopt_inherited_fd(fd) }.map(Some))
            .collect::<Result<Vec<_>>>()?;
        Ok(Endpoint {
            transport: wire.transport,
            path: wire.path,
            name: wire.name,
            creator_pid: wire.creator_pid,
            max_message: wire.max_message,
            extra: wire.extra,
            fds: Fds::Adopted(fds),
        })
    }

    /// Reads the token in environment variable `var` and decodes it with
    /// [`Endpoint::from_token`].
    ///
    /// # Safety
    ///
    /// As for [`Endpoint::from_token`]: the variable was set by the parent
    /// that handed over the fds it names, and nothing else here owns them.
    pub unsafe fn from_env(var: &str) -> Result<Self> {
        let token = std::env::var(var)
            .map_err(|_| Error::BadEndpoint(format!("environment variable {var} is not set")))?;
        // SAFETY: passed on from our caller.
        unsafe { Self::from_token(&token) }
    }

    /// Checks that this endpoint was made by `method/variant`.
    pub fn expect(&self, method: &str, variant: &str) -> Result<()> {
        if self.transport == format!("{method}/{variant}") {
            Ok(())
        } else {
            Err(Error::BadEndpoint(format!(
                "endpoint of {} handed to {method}/{variant}",
                self.transport
            )))
        }
    }

    /// The numbers of the fds it names (for a child, or adopted here).
    pub fn fds(&self) -> Vec<RawFd> {
        match &self.fds {
            Fds::ForChild(fds) => fds.clone(),
            Fds::Adopted(fds) => fds
                .iter()
                .map(|fd| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd))
                .collect(),
        }
    }

    /// Takes the `i`-th fd, which this endpoint owns since
    /// [`Endpoint::from_token`]; each can be taken once. An endpoint made by
    /// an export (its fds are for a child) gives none.
    pub fn take_fd(&mut self, i: usize) -> Result<OwnedFd> {
        match &mut self.fds {
            Fds::ForChild(_) => Err(Error::BadEndpoint(
                "this endpoint describes fds handed to a child; the child reopens it from its token".into(),
            )),
            Fds::Adopted(fds) => fds
                .get_mut(i)
                .ok_or_else(|| Error::BadEndpoint(format!("endpoint carries no fd #{i}")))?
                .take()
                .ok_or_else(|| Error::BadEndpoint(format!("fd #{i} of the endpoint was already taken"))),
        }
    }
}

/// A token goes from the process that made the channel to its child (or
/// stays in that process): its creator must be this process or its parent,
/// and every object it names by name or path must be that creator's, by
/// the pid and start time our names carry ([`crate::names::unique_name`]).
/// A token of another run, or one edited to name another run's object, is
/// refused before anything is opened or adopted.
fn check_creator(wire: &Wire) -> Result<()> {
    let me = std::process::id();
    let parent = nix::unistd::getppid().as_raw() as u32;
    let creator = wire.creator_pid;
    if creator != me && creator != parent {
        return Err(Error::BadEndpoint(format!(
            "the endpoint was made by process {creator}, which is neither this process ({me}) nor its parent ({parent}): a token of another run"
        )));
    }
    // A path's directories down to $TMPDIR are the user's, whatever their
    // names; what the transport made lies below.
    let tmp = crate::names::temp_dir();
    let made = wire.path.as_deref().map(|p| {
        let p = std::path::Path::new(p);
        p.strip_prefix(&tmp)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    });
    let named = wire
        .name
        .iter()
        .chain(made.iter())
        .flat_map(|n| n.split('/'))
        .filter(|part| part.starts_with(crate::names::PREFIX));
    for object in named {
        match crate::names::creator_of_any(object) {
            Some((pid, _)) if pid != creator => {
                return Err(Error::BadEndpoint(format!(
                    "the endpoint names {object}, an object of process {pid}, not of its creator ({creator})"
                )))
            }
            Some((pid, start)) if crate::names::creator_is_gone(pid, start) => {
                return Err(Error::BadEndpoint(format!(
                    "the endpoint names {object}, whose creator (pid {pid}) no longer runs"
                )))
            }
            Some(_) => {}
            None => {
                return Err(Error::BadEndpoint(format!(
                    "the endpoint names {object}, which is no name of ours"
                )))
            }
        }
    }
    Ok(())
}

fn decode(token: &str) -> Result<Wire> {
    let bad = || {
        let shown: String = token.chars().take(80).collect();
        Error::BadEndpoint(format!("{shown:?} is not an endpoint token"))
    };
    postcard::from_bytes(&unhex(token).ok_or_else(bad)?).map_err(|_| bad())
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string made by [`hex`]; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Runs in the forked child before exec; must be async-signal-safe.
pub type ExecHook = fn() -> std::io::Result<()>;

/// What a child process must inherit: the fds of exported ends (made
/// inheritable only in the child, between fork and exec), the rule that it
/// dies with its parent, and what transports ask to run before exec.
/// [`Handover::spawn`] starts the child with it and then closes the
/// parent's copies of the child's fds (otherwise an EOF would never come).
#[derive(Debug)]
pub struct Handover {
    fds: Vec<OwnedFd>,
    death_signal: i32,
    hooks: Vec<ExecHook>,
}

impl Default for Handover {
    fn default() -> Self {
        Handover {
            fds: Vec::new(),
            death_signal: libc::SIGKILL,
            hooks: Vec::new(),
        }
    }
}

impl Handover {
    /// An empty handover.
    pub fn new() -> Self {
        Handover::default()
    }

    /// Hands `fd` (created with O_CLOEXEC) to the child as part of
    /// `endpoint`: the child inherits it, and the endpoint's token names it.
    pub fn add_fd(&mut self, endpoint: &mut Endpoint, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        self.fds.push(fd);
        match &mut endpoint.fds {
            Fds::ForChild(fds) => fds.push(raw),
            adopted @ Fds::Adopted(_) => *adopted = Fds::ForChild(vec![raw]),
        }
    }

    /// Runs `hook` in the child between fork and exec, after the fds are
    /// made inheritable (the signals transport blocks its signals there,
    /// so that the child cannot get one before it is ready).
    ///
    /// # Safety
    ///
    /// `hook` runs in the forked copy of a process that may have other
    /// threads: it must be async-signal-safe (see `signal-safety(7)`): no
    /// allocation, no lock, no I/O through std's buffered types.
    pub unsafe fn before_exec(&mut self, hook: ExecHook) {
        self.hooks.push(hook);
    }

    /// The signal the child gets when its parent goes (`PR_SET_PDEATHSIG`):
    /// SIGKILL by default; a child that handles SIGTERM can say why it
    /// stops. The kernel sends it when the *thread* that spawned the child
    /// exits, not only the process: spawn from a thread that outlives the
    /// child (the main thread, or one that waits for the child).
    #[must_use]
    pub fn death_signal(mut self, signal: i32) -> Self {
        self.death_signal = signal;
        self
    }

    /// The fds the child inherits.
    pub fn fds(&self) -> Vec<RawFd> {
        self.fds.iter().map(|fd| fd.as_raw_fd()).collect()
    }

    /// Spawns `cmd` with the hand-over: in the child only, the handed-over
    /// fds survive exec, the transports' hooks run, and the child gets the
    /// death signal when its parent goes (and exits at once if the parent
    /// is already gone). The signal mask is inherited as it is: a signal
    /// this process blocks (see [`crate::Transport::before_threads`]) is
    /// blocked in the child too. Then the parent's copies of the child's
    /// fds are closed, and the child is returned with its identity (pid,
    /// start time, pidfd) for the ends the parent keeps
    /// (`Transport::set_peer_of_sender`/`set_peer_of_receiver`).
    pub fn spawn(self, mut cmd: Command) -> Result<(std::process::Child, PeerProcess)> {
        let fds = self.fds();
        let hooks = self.hooks.clone();
        let parent = std::process::id();
        let signal = self.death_signal;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (fcntl, prctl, getppid, _exit, and
        // the hooks, whose adders promised the same) on values captured
        // before the fork; it allocates nothing. The fd numbers it makes
        // inheritable are the handover's own, which stay open until after
        // the spawn below (self lives to the end of this function), and
        // `cmd`, which holds the closure, is dropped with them.
        unsafe {
            cmd.pre_exec(move || {
                crate::sys::prepare_child(&fds, parent, signal)?;
                hooks.iter().try_for_each(|hook| hook())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("start {:?}", cmd.get_program()), e))?;
        drop(cmd);
        drop(self);
        match PeerProcess::of_child(&child) {
            Ok(peer) => Ok((child, peer)),
            Err(e) => {
                // A child nobody watches must not run on with our fds.
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_of_another_run_or_naming_another_runs_object_is_refused() {
        use crate::names::PREFIX;
        let me = crate::liveness::ProcessId::current();
        let parent = nix::unistd::getppid().as_raw() as u32;
        let object = |pid: u32, start: u64| format!("{PREFIX}shm.{pid}.{start}.abcdef");
        // SAFETY: these tokens name no fd, so nothing is adopted.
        let decode = |ep: &Endpoint| unsafe { Endpoint::from_token(&ep.to_token()) };
        let refused = |ep: &Endpoint, why: &str| match decode(ep) {
            Err(Error::BadEndpoint(text)) => assert!(text.contains(why), "{text}"),
            other => panic!("expected BadEndpoint ({why}), got {other:?}"),
        };
        let mut ep = Endpoint::new("shm", "ring", 64);
        ep.name = Some(format!("/{}", object(me.pid(), me.start_ticks())));
        ep.path = Some(format!("/tmp/{}/fifo", object(me.pid(), me.start_ticks())));
        decode(&ep).expect("our own object");

        let mut other_run = Endpoint::new("shm", "ring", 64);
        other_run.creator_pid = if parent == u32::MAX - 9 {
            2
        } else {
            u32::MAX - 9
        };
        refused(&other_run, "a token of another run");

        let mut theirs = Endpoint::new("shm", "ring", 64);
        theirs.name = Some(format!("/{}", object(parent, 1)));
        refused(&theirs, &format!("an object of process {parent}"));

        let mut dead = Endpoint::new("pipes", "fifo", 64);
        dead.path = Some(format!(
            "/tmp/{}/fifo",
            object(me.pid(), me.start_ticks() + 3)
        ));
        refused(&dead, "no longer runs");

        let mut nameless = Endpoint::new("shm", "ring", 64);
        nameless.name = Some(format!("/{PREFIX}shm"));
        refused(&nameless, "no name of ours");
    }

    #[test]
    fn token_round_trips_and_adopts_its_fds_once() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let raw = read.as_raw_fd();
        let mut ep = Endpoint::new("pipes", "fifo", 1234);
        ep.path = Some("/tmp/x y".into());
        ep.extra = vec![u64::MAX];
        let mut handover = Handover::new();
        handover.add_fd(&mut ep, read);
        assert!(
            matches!(ep.take_fd(0), Err(Error::BadEndpoint(_))),
            "an exported endpoint's fds are the child's"
        );
        let token = ep.to_token();
        // Stand in for the child: the handover's fd is given up to the token.
        std::mem::forget(handover);
        // SAFETY: the fd was leaked by the handover above, so the endpoint is
        // its only owner from here on.
        let mut back = unsafe { Endpoint::from_token(&token) }.expect("decodes");
        assert_eq!(
            (
                back.path.as_deref(),
                back.extra.as_slice(),
                back.max_message
            ),
            (Some("/tmp/x y"), &[u64::MAX][..], 1234)
        );
        back.expect("pipes", "fifo").expect("same transport");
        assert!(back.expect("pipes", "pipe").is_err());
        let fd = back.take_fd(0).expect("the fd");
        assert_eq!(fd.as_raw_fd(), raw);
        assert!(
            matches!(back.take_fd(0), Err(Error::BadEndpoint(_))),
            "taken once"
        );
        assert!(matches!(back.take_fd(1), Err(Error::BadEndpoint(_))));
        drop((fd, write));
    }

    #[test]
    fn a_hook_runs_in_the_child_before_exec_and_the_spawn_names_the_child() {
        fn block_sigusr2() -> std::io::Result<()> {
            // SAFETY: sigset_t is plain data; sigemptyset, sigaddset and
            // sigprocmask are async-signal-safe and touch only `set`.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        }
        let mut handover = Handover::new();
        // SAFETY: the hook is async-signal-safe (above).
        unsafe { handover.before_exec(block_sigusr2) };
        let mut cmd = Command::new("grep");
        cmd.args(["SigBlk", "/proc/self/status"])
            .stdout(std::process::Stdio::piped());
        let (child, peer) = handover.spawn(cmd).expect("spawn");
        assert_eq!(peer.id().pid(), child.id());
        let out = child.wait_with_output().expect("output");
        let mask = String::from_utf8_lossy(&out.stdout);
        let bits = u64::from_str_radix(mask.trim().trim_start_matches("SigBlk:").trim(), 16)
            .expect("a signal mask");
        assert_ne!(bits & (1 << (libc::SIGUSR2 - 1)), 0, "{mask}");
    }

    #[test]
    fn garbage_tokens_and_closed_fds_are_refused() {
        for bad in ["", "abc", "zz", "ffffffffffffffffffff", "é1"] {
            // SAFETY: none of these decodes, so no fd is adopted.
            assert!(unsafe { Endpoint::from_token(bad) }.is_err(), "{bad:?}");
        }
        let mut ep = Endpoint::new("pipes", "pipe", 64);
        ep.fds = Fds::ForChild(vec![987_654]);
        // SAFETY: fd 987654 is not open in this process, which is refused
        // before anything is adopted.
        let err = unsafe { Endpoint::from_token(&ep.to_token()) }.expect_err("not open");
        assert!(err.to_string().contains("not open"), "{err}");
        // An fd named twice, or beside one that is not open, is adopted
        // neither time: nothing is closed.
        let (read, _write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        for fds in [
            vec![read.as_raw_fd(), read.as_raw_fd()],
            vec![read.as_raw_fd(), 987_654],
        ] {
            ep.fds = Fds::ForChild(fds);
            // SAFETY: refused before anything is adopted, as checked below.
            assert!(unsafe { Endpoint::from_token(&ep.to_token()) }.is_err());
            // SAFETY: F_GETFD only reads the flags of our own open fd.
            let flags = unsafe { libc::fcntl(read.as_raw_fd(), libc::F_GETFD) };
            assert_ne!(flags, -1, "still open");
        }
    }
}
