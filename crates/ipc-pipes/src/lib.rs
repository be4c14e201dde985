//! Anonymous pipes ([`Pipe`]) and named FIFOs ([`Fifo`]): the oldest way for
//! two processes to talk, a one-way byte stream through the kernel.
//!
//! # Hello, world!
//!
//! ```
//! use ipc_core::{Mode, Options, Receiver, Sender, Transport};
//! use ipc_pipes::Pipe;
//!
//! let (mut tx, mut rx) = Pipe::channel(Mode::Thread, &Options::default())?;
//! tx.send(b"task 0")?;
//! assert_eq!(rx.recv()?, b"task 0");
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Semantics
//!
//! Messages are framed as a 4-byte little-endian length and the payload (see
//! [`ipc_core::framing`]), written with one `writev` and read through a
//! buffer. A pipe's two fds are made by `pipe2(O_CLOEXEC)`; crossing to a child
//! process, only the child's fd is made inheritable, in the child. A FIFO is
//! a pipe with a name: `mkfifo` (mode 0600) in a private directory (0700)
//! under `$TMPDIR`, opened by path on each side and removed by its creator.
//! When the writer is gone the reader gets [`ipc_core::Error::Disconnected`]
//! (EOF); when the reader is gone, the writer does (EPIPE).
//!
//! # Limitations
//!
//! A message larger than the pipe's buffer (64 KiB by default) is written in
//! pieces as the reader drains it: `send` waits for each, and `try_send`,
//! which never waits, keeps the rest in the sender and writes it before the
//! next message. A message is at most 4 GiB - 1 bytes (the frame's length is
//! 4 bytes). A FIFO end must be exported before it is used.

mod fifo;
mod pipe;

pub use fifo::{Fifo, FifoReceiver, FifoSender};
pub use pipe::{Pipe, PIPE_BUFFER_LIMIT};

ipc_core::conformance_tests!(pipe_conformance, crate::Pipe, Threads);
ipc_core::conformance_tests!(pipe_process_conformance, crate::Pipe, Processes);
ipc_core::conformance_tests!(fifo_conformance, crate::Fifo, Threads);
ipc_core::conformance_tests!(fifo_process_conformance, crate::Fifo, Processes);
