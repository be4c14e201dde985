//! What can end a run, and the exit code each gives.

/// Why a run (or a peer) failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The command line asks for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The peer process ended before the run did (exit code 3).
    #[error("the peer process (pid {pid}) {how} in the middle of the run")]
    PeerDied {
        /// The peer's pid.
        pid: u32,
        /// How it ended, in words.
        how: String,
    },
    /// The consumer found a message lost, duplicated, reordered or corrupted (exit code 1).
    #[error("a message arrived wrong: {0}")]
    Verify(String),
    /// The other side broke the harness's protocol: a control message that
    /// cannot be read, or one where another was due (exit code 1).
    #[error("{0}")]
    Protocol(String),
    /// The transport failed (exit code 3 when the peer is gone, 2 when the
    /// mode is unsupported, else 1).
    #[error(transparent)]
    Transport(#[from] ipc_core::Error),
    /// Anything else (exit code 1).
    #[error("{0}")]
    Other(String),
}

impl HarnessError {
    /// The process exit code of the contract: 2 usage, 3 peer died or
    /// disconnected, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            HarnessError::Usage(_) => 2,
            HarnessError::PeerDied { .. } => 3,
            HarnessError::Transport(ipc_core::Error::Disconnected) => 3,
            HarnessError::Transport(ipc_core::Error::Unsupported { .. }) => 2,
            _ => 1,
        }
    }
}

/// The result type of the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
