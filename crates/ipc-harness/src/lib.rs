//! The measuring bench of ipc-showcase: the peer launcher, the ping-pong,
//! stream and demo runs, the waits, the reports and the command line every
//! method's binary shares. It knows no transport by name: binaries hand it
//! [`Entry`] values made from any `ipc_core::Transport`.
//!
//! ```no_run
//! // A method's whole binary:
//! # struct Pipe; // stands for ipc_pipes::Pipe
//! fn main() {
//!     let info = ipc_harness::MethodInfo {
//!         binary: "ipc-pipes",
//!         about: "Pipes",
//!         long_about: "...",
//!         extension: None,
//!     };
//!     // SAFETY: first thing in main, before any thread or fd of our own.
//!     unsafe { ipc_harness::main(info, &[/* ipc_harness::Entry::of::<ipc_pipes::Pipe>() */]) }
//! }
//! ```
//!
//! The modules, in the order a run goes through them: [`cli`] (the shared
//! command line), [`config`] (what a run is asked to do), `link` (where
//! the ends live), [`protocol`] and [`control`] (what the consumer does, and
//! its messages back), `measure` and `shared` (the measurements), [`peer`]
//! (the child process), [`report`] and [`chart`] (the figures), and
//! [`compare`] (every method on the same work).

pub mod cli;
pub mod compare;
pub mod config;
pub mod control;
mod entry;
mod error;
mod link;
mod measure;
pub mod payload;
pub mod peer;
pub mod protocol;
pub mod report;
mod shared;
mod sys;
pub mod wait;

pub use cli::{main, remove_objects_on_interrupt, run_peer_if_asked, Extension, MethodInfo};
pub use config::{Batch, RunConfig};
pub use entry::{DemoReport, Entry, SharedDemo};
pub use error::{HarnessError, Result};
pub use measure::{pingpong_on, stream_to_echo, PeerCpu};
pub use payload::Verify;
pub use sys::{cpu_model, machine, single_cpu_affinity};
pub use wait::Wait;
