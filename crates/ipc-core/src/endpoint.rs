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
//! handover.configure(&mut cmd);
//! let _child = cmd.spawn().map_err(|e| ipc_core::Error::io("spawn", e))?;
//! drop(handover); // close the parent's copies of the child's fds
//!
//! // Child: one call reopens it.
//! let endpoint = Endpoint::from_env("MY_CHANNEL")?;
//! let mut rx = T::open_receiver(&endpoint)?;
//! # Ok(()) }
//! ```

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A small serialisable description of one end of a channel, enough for a
/// child process to reopen it: fd numbers it inherited, a path, an object
/// name, the creator's pid and the options that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// `<method>/<variant>` of the transport that made it, checked on open.
    pub transport: String,
    /// File descriptors the child inherits, by number.
    pub fds: Vec<RawFd>,
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

    /// Encodes the endpoint as a short printable token (hex of its postcard form),
    /// for a command-line argument or an environment variable.
    pub fn to_token(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decodes a token made by [`Endpoint::to_token`].
    pub fn from_token(token: &str) -> Result<Self> {
        let bad = || Error::BadEndpoint(format!("{token:?} is not an endpoint token"));
        if token.len() % 2 != 0 || !token.is_ascii() {
            return Err(bad());
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        postcard::from_bytes(&bytes).map_err(|_| bad())
    }

    /// Reads and decodes the token in environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self> {
        let token = std::env::var(var)
            .map_err(|_| Error::BadEndpoint(format!("environment variable {var} is not set")))?;
        Self::from_token(&token)
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

    /// The `i`-th inherited fd, checked to be open in this process, as an owned fd.
    ///
    /// Call it once per fd: the returned `OwnedFd` closes the fd on drop.
    pub fn take_fd(&self, i: usize) -> Result<OwnedFd> {
        let fd = *self
            .fds
            .get(i)
            .ok_or_else(|| Error::BadEndpoint(format!("endpoint carries no fd #{i}")))?;
        crate::sys::adopt_inherited_fd(fd)
    }
}

/// What a child process must inherit: the fds of exported ends (made
/// inheritable only in the child, between fork and exec) and the rule that it
/// dies with its parent.
///
/// Drop it after spawning, to close the parent's copies of the child's fds;
/// otherwise an EOF would never come.
#[derive(Debug)]
pub struct Handover {
    fds: Vec<OwnedFd>,
    death_signal: i32,
}

impl Default for Handover {
    fn default() -> Self {
        Handover {
            fds: Vec::new(),
            death_signal: libc::SIGKILL,
        }
    }
}

impl Handover {
    /// An empty handover.
    pub fn new() -> Self {
        Handover::default()
    }

    /// Adds an fd (created with O_CLOEXEC) that the child inherits; returns its number.
    pub fn add_fd(&mut self, fd: OwnedFd) -> RawFd {
        let raw = fd.as_raw_fd();
        self.fds.push(fd);
        raw
    }

    /// The signal the child gets when this process exits (`PR_SET_PDEATHSIG`):
    /// SIGKILL by default; a child that handles SIGTERM can say why it stops.
    #[must_use]
    pub fn death_signal(mut self, signal: i32) -> Self {
        self.death_signal = signal;
        self
    }

    /// The fds the child inherits.
    pub fn fds(&self) -> Vec<RawFd> {
        self.fds.iter().map(|fd| fd.as_raw_fd()).collect()
    }

    /// Sets up `cmd` so that, in the child only, the handed-over fds survive
    /// exec, and the child gets the death signal when this process exits (and
    /// exits at once if this process is already gone).
    pub fn configure(&self, cmd: &mut Command) {
        let fds = self.fds();
        let parent = std::process::id();
        let signal = self.death_signal;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe calls (fcntl, prctl, getppid, _exit) on
        // values captured before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || crate::sys::prepare_child(&fds, parent, signal));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let mut ep = Endpoint::new("pipes", "fifo", 1234);
        ep.fds = vec![3, 7];
        ep.path = Some("/tmp/x y".into());
        ep.extra = vec![u64::MAX];
        let back = Endpoint::from_token(&ep.to_token()).expect("decodes");
        assert_eq!(back, ep);
        back.expect("pipes", "fifo").expect("same transport");
        assert!(back.expect("pipes", "pipe").is_err());
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for bad in ["", "abc", "zz", "ffffffffffffffffffff", "é1"] {
            assert!(Endpoint::from_token(bad).is_err(), "{bad:?}");
        }
    }
}
