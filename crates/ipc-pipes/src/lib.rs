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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ipc_core::conformance::a_dead_process;
    use ipc_core::{Endpoint, Error, Handover, Mode, Options, Receiver, Sender, Transport};

    use crate::{Fifo, Pipe};

    /// A copy of an exported FIFO endpoint, as a second reader would use.
    fn copy(ep: &Endpoint) -> Endpoint {
        let mut again = Endpoint::new("pipes", "fifo", ep.max_message);
        again.path = ep.path.clone();
        again
    }

    #[test]
    fn a_fifo_end_opened_twice_is_refused() {
        let (_tx, rx) = Fifo::channel(Mode::Process, &Options::default()).expect("fifo");
        let ep = Fifo::export_receiver(rx, &mut Handover::new()).expect("export");
        let second = copy(&ep);
        let first = Fifo::open_receiver(ep).expect("the first reader");
        assert!(
            matches!(Fifo::open_receiver(second), Err(Error::InUse(_))),
            "a second reader would split the stream"
        );
        drop(first);

        let (tx, _rx) = Fifo::channel(Mode::Process, &Options::default()).expect("fifo");
        let ep = Fifo::export_sender(tx, &mut Handover::new()).expect("export");
        let second = copy(&ep);
        let first = Fifo::open_sender(ep).expect("the first writer");
        assert!(matches!(Fifo::open_sender(second), Err(Error::InUse(_))));
        drop(first);
    }

    #[test]
    fn a_fifo_receiver_whose_writer_died_before_opening_is_disconnected() {
        let (tx, mut rx) = Fifo::channel(Mode::Process, &Options::default()).expect("fifo");
        let _ep = Fifo::export_sender(tx, &mut Handover::new()).expect("export");
        Fifo::set_peer_of_receiver(&mut rx, &a_dead_process()).expect("peer");
        let started = Instant::now();
        // Before, recv waited for ever: no writer ever came to hang up.
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
        assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(30)),
            Err(Error::Disconnected)
        ));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_last_end_cannot_be_handed_over_nor_a_used_receiver() {
        let (tx, rx) = Fifo::channel(Mode::Process, &Options::default()).expect("fifo");
        let _ep = Fifo::export_receiver(rx, &mut Handover::new()).expect("export");
        assert!(matches!(
            Fifo::export_sender(tx, &mut Handover::new()),
            Err(Error::BadEndpoint(_))
        ));

        let (mut tx, rx) = Pipe::channel(Mode::Process, &Options::default()).expect("pipe");
        tx.send(&[7; 100]).expect("send");
        tx.send(&[8; 100]).expect("send");
        let mut rx = rx;
        assert_eq!(rx.recv().expect("recv"), [7; 100]);
        // The second frame is in the receiver's buffer now.
        assert!(matches!(
            Pipe::export_receiver(rx, &mut Handover::new()),
            Err(Error::BadEndpoint(_))
        ));
    }
}
