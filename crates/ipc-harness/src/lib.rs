//! The measuring bench of ipc-showcase: the peer launcher, the ping-pong,
//! stream and demo runs, the waits, the reports and the command line every
//! method's binary shares. It knows no transport by name: binaries hand it
//! [`Entry`] values made from any `ipc_core::Transport`.
//!
//! ```no_run
//! // A method's whole binary:
//! # struct Pipe; // stands for ipc_pipes::Pipe
//! ipc_harness::main(
//!     ipc_harness::MethodInfo { binary: "ipc-pipes", about: "Pipes", long_about: "..." },
//!     &[/* ipc_harness::Entry::of::<ipc_pipes::Pipe>() */],
//! );
//! ```

pub mod chart;
mod cli;
pub mod compare;
mod entry;
mod error;
pub mod floor;
pub mod payload;
pub mod peer;
pub mod report;
pub mod run;
pub mod sys;
pub mod wait;

pub use cli::{main, remove_objects_on_interrupt, run_peer_if_asked, MethodInfo};
pub use entry::Entry;
pub use error::{HarnessError, Result};
pub use payload::Verify;
pub use run::{Batch, RunConfig};
pub use wait::Wait;
