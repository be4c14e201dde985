//! Sockets: Unix domain stream sockets and TCP, framed by the core's
//! byte-stream ends (a 4-byte little-endian length, then the payload).
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_sockets::{Tcp, Uds};
//!
//! let (mut tx, mut rx) = Uds::channel(Mode::Thread, &Options::default())?;
//! tx.send(b"hello over a Unix socket")?;
//! assert_eq!(rx.recv()?, b"hello over a Unix socket");
//! let (mut tx, mut rx) = Tcp::channel(Mode::Thread, &Options::default())?;
//! tx.send(b"hello over TCP")?;
//! assert_eq!(rx.recv()?, b"hello over TCP");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # How a channel is made
//!
//! Each channel is one connected stream socket, made in the creating
//! process (a listener, a connection to it, and the accepted end) and, in
//! process mode, one end handed to the child as an fd, so nobody else can
//! take the connection:
//!
//! - **`uds`**: `interprocess` local sockets on a Linux abstract name
//!   (`ipc-showcase.sockets.<pid>.<start>.<random>`), which goes with the
//!   listener: a crash leaves no socket file. An abstract socket has no
//!   file mode and any process in the network namespace can connect while
//!   the listener lives, so the accepted connection must come from this
//!   very process (`SO_PEERCRED`), and each side refuses a peer of another
//!   user.
//! - **`tcp`**: a loopback listener on a free port; the accepted
//!   connection must be the one from our connecting socket's address (any
//!   local process could connect to the port first). `TCP_NODELAY` on both.
//!
//! Dropping a sender writes what it still holds of a frame, then shuts its
//! direction down (`shutdown(SHUT_WR)`), so the receiver sees the end even
//! where another copy of the fd lives on. That acts on the socket, in every
//! process that holds it: hand an end to a child with `export_sender` (which
//! does not shut anything down), and after a bare `fork` let go of the
//! other process's sender the same way (export it and drop the endpoint). The `capacity` option sets
//! SO_SNDBUF and SO_RCVBUF ([`BUFFER_LIMIT`]).
//!
//! `ipc-sockets serve` (the binary) runs one side alone, an echo server, so the other side can be
//! on another host or written in another language.

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-sockets uses Linux abstract socket names and SO_PEERCRED.");

pub mod pair;
pub mod serve;
mod transport;

pub use transport::{Tcp, Uds, BUFFER_LIMIT};

ipc_core::conformance_tests!(uds_conformance, crate::Uds, Threads);
ipc_core::conformance_tests!(uds_process_conformance, crate::Uds, Processes);
ipc_core::conformance_tests!(tcp_conformance, crate::Tcp, Threads);
ipc_core::conformance_tests!(tcp_process_conformance, crate::Tcp, Processes);
