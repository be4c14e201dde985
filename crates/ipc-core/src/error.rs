//! One error vocabulary for every transport: each variant is a cause.

use std::io;
use std::path::PathBuf;

use crate::Mode;

/// What went wrong when creating, opening, sending on or receiving from a channel.
///
/// The names follow `std::sync::mpsc` and crossbeam (`Disconnected`, `Timeout`,
/// `Empty`, `Full`); the extra variants name causes those channels cannot meet
/// (a corrupt frame, an oversize message, an OS object another user owns).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The other end is gone: it was dropped, or its process exited or died
    /// (EOF, EPIPE, a dead pid). Nothing more will arrive or be delivered.
    #[error("the peer is gone (it closed its end, exited or died)")]
    Disconnected,
    /// `recv_timeout` waited the whole timeout and no message came.
    #[error("no message arrived within the timeout")]
    Timeout,
    /// `try_recv` found no whole message waiting.
    #[error("no message is waiting")]
    Empty,
    /// `try_send` found no room for the message right now.
    #[error("the channel is full")]
    Full,
    /// The message is larger than this channel carries; nothing was sent.
    #[error("message of {len} bytes is larger than this channel's maximum of {max} bytes (set by {limit})")]
    TooLarge {
        /// The length of the refused message.
        len: usize,
        /// The largest message this channel carries.
        max: usize,
        /// What set that maximum: the channel's option ([`LIMIT_OPTION`]) or
        /// a system limit, by name.
        limit: &'static str,
    },
    /// The bytes that arrived are not a valid frame (for example a length
    /// header above the maximum). The channel cannot be trusted any more.
    #[error("corrupt frame: {0}")]
    Corrupt(String),
    /// The transport cannot work in this mode (or with this option).
    #[error("{transport} does not support {mode} mode: {hint}")]
    Unsupported {
        /// The transport's name.
        transport: &'static str,
        /// The mode that was asked for.
        mode: Mode,
        /// What to use instead.
        hint: &'static str,
    },
    /// The end is already open or held: a channel with one producer (or one
    /// consumer) refuses a second one.
    #[error("{0}")]
    InUse(String),
    /// A blocking receive in coroutine mode on an empty channel: nothing else
    /// runs on this thread to fill it, so it would hang forever.
    #[error("a blocking receive on an empty coroutine channel would never return: the producer runs on this same thread")]
    WouldDeadlock,
    /// A named OS object with our name exists but belongs to another user: it
    /// is neither adopted nor removed.
    #[error("{} belongs to uid {owner}, not to us: refusing to use or remove it", path.display())]
    Foreign {
        /// The object.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A typed message could not be encoded by its codec; nothing was sent.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// An endpoint token could not be read or does not fit this transport.
    #[error("invalid endpoint: {0}")]
    BadEndpoint(String),
    /// A system call failed; `what` says which step.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed, such as "create the FIFO".
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an `io::Error` with the step that failed.
    pub fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Wraps a nix `Errno` with the step that failed.
    pub fn sys(what: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::io(what, io::Error::from(errno))
    }

    /// A message of `len` bytes refused by the channel option `max_message`.
    pub fn too_large(len: usize, max: usize) -> Self {
        Error::TooLarge {
            len,
            max,
            limit: LIMIT_OPTION,
        }
    }

    /// True when the peer is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Disconnected)
    }

    /// True when a system call found the name it was to create taken
    /// (`EEXIST`): the object there is somebody else's.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
    }
}

/// The name of the limit a channel's `max_message` option sets, for
/// [`Error::TooLarge`].
pub const LIMIT_OPTION: &str = "the channel's max_message option";

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
