//! The common ground of ipc-showcase: one [`Transport`] trait for every way
//! a producer and a consumer can talk, the [`Error`] vocabulary, the framing
//! of byte streams, the [`Endpoint`] that hands an end to a child process,
//! typed messages through a [`codec::Codec`], the names and cleanup of OS
//! objects, the [`liveness`] of the process on the other side, and the
//! conformance suite every transport runs.
//!
//! # Hello, world!
//!
//! Any transport is used the same way; here a stand-in written in a few lines
//! shows the shape (real ones live in `ipc-pipes`, `ipc-shm`, ...):
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//!
//! fn hello<T: Transport>() -> ipc_core::Result<()> {
//!     let (mut tx, mut rx) = T::channel(Mode::Thread, &Options::default())?;
//!     tx.send(b"hello")?;
//!     assert_eq!(rx.recv()?, b"hello");
//!     Ok(())
//! }
//! # struct Mem; #[derive(Default)] struct Q(std::collections::VecDeque<Vec<u8>>, Vec<u8>);
//! # struct Tx(std::sync::Arc<std::sync::Mutex<Q>>); struct Rx(std::sync::Arc<std::sync::Mutex<Q>>, Vec<u8>);
//! # impl Sender for Tx { fn send(&mut self, m: &[u8]) -> ipc_core::Result<()> { self.0.lock().unwrap().0.push_back(m.to_vec()); Ok(()) }
//! #   fn try_send(&mut self, m: &[u8]) -> ipc_core::Result<()> { self.send(m) } fn max_message(&self) -> usize { 64 } }
//! # impl Receiver for Rx { fn recv(&mut self) -> ipc_core::Result<&[u8]> { self.try_recv() }
//! #   fn try_recv(&mut self) -> ipc_core::Result<&[u8]> { self.1 = self.0.lock().unwrap().0.pop_front().ok_or(ipc_core::Error::Empty)?; Ok(&self.1) }
//! #   fn recv_timeout(&mut self, _: std::time::Duration) -> ipc_core::Result<&[u8]> { self.try_recv() } fn max_message(&self) -> usize { 64 } }
//! # impl Transport for Mem { const NAME: &'static str = "mem"; const VARIANT: &'static str = "mem";
//! #   const MODES: &'static [Mode] = &[Mode::Thread]; type Sender = Tx; type Receiver = Rx;
//! #   fn channel(_: Mode, _: &Options) -> ipc_core::Result<(Tx, Rx)> { let q = std::sync::Arc::default(); Ok((Tx(std::sync::Arc::clone(&q)), Rx(q, vec![]))) } }
//! # hello::<Mem>().unwrap();
//! ```
//!
//! # Semantics
//!
//! A channel moves whole messages (byte frames) one way; duplex work uses two
//! channels. The contract of each trait is written as bullets in its docs and
//! checked by [`conformance`]. Errors name their cause: [`Error::Disconnected`]
//! when the peer is gone, [`Error::TooLarge`] for a message over the maximum,
//! [`Error::Corrupt`] for a frame that cannot be valid, and so on.
//!
//! # Limitations
//!
//! Linux only: the crates use Linux system calls (`pipe2`, `prctl`, futexes,
//! abstract sockets, /proc) and say so at compile time elsewhere.

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-showcase runs on Linux only: it uses pipe2, prctl(PR_SET_PDEATHSIG), /proc, futexes and abstract Unix sockets.");

pub mod codec;
pub mod conformance;
pub mod endpoint;
mod error;
pub mod fdstream;
pub mod framing;
pub mod liveness;
pub mod names;
mod sys;
mod transport;

pub use endpoint::{Endpoint, Handover};
pub use error::{Error, Result, LIMIT_OPTION};
pub use transport::{
    check_mode, unsupported, Handler, Limit, LossReport, LostMessage, Mode, Options, Receiver,
    RecvInPlace, SendInPlace, Sender, Transport,
};
