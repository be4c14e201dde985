//! Bad input on purpose, through the library: a corrupt length header, an
//! oversize message, an endpoint that names nothing.

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};

use ipc_core::{Endpoint, Error, Mode, Options, Receiver, Sender, Transport};
use ipc_pipes::{Fifo, Pipe};

#[test]
fn a_corrupt_length_header_is_a_clear_error_and_allocates_nothing() {
    let (tx, mut rx) =
        Pipe::channel(Mode::Thread, &Options::default().max_message(1000)).expect("pipe");
    // SAFETY: the fd comes from the sender we just took apart; File owns it now.
    let mut raw = unsafe { std::fs::File::from_raw_fd(tx.into_fd().into_raw_fd()) };
    raw.write_all(&u32::MAX.to_le_bytes())
        .expect("write a bogus header");
    match rx.recv() {
        Err(e @ Error::Corrupt(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("4294967295 bytes") && text.contains("maximum of 1000"),
                "{text}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn an_oversize_message_is_refused_with_its_size_and_the_maximum() {
    for max in [0usize, 10, 1 << 16] {
        let (mut tx, _rx) =
            Pipe::channel(Mode::Thread, &Options::default().max_message(max)).expect("pipe");
        let err = tx.send(&vec![0; max + 1]).expect_err("oversize");
        assert!(matches!(err, Error::TooLarge { len, max: m } if len == max + 1 && m == max));
        assert!(
            err.to_string().contains(&format!("maximum of {max} bytes")),
            "{err}"
        );
        let (mut tx, _rx) =
            Fifo::channel(Mode::Thread, &Options::default().max_message(max)).expect("fifo");
        assert!(matches!(
            tx.send(&vec![0; max + 1]),
            Err(Error::TooLarge { .. })
        ));
    }
}

#[test]
fn a_missing_or_foreign_endpoint_is_refused() {
    let mut ep = Endpoint::new("pipes", "pipe", 64);
    ep.fds = vec![987_654];
    assert!(matches!(
        Pipe::open_receiver(&ep),
        Err(Error::BadEndpoint(_))
    ));
    assert!(
        matches!(Fifo::open_receiver(&ep), Err(Error::BadEndpoint(_))),
        "a pipe endpoint handed to a FIFO"
    );
    let mut ep = Endpoint::new("pipes", "fifo", 64);
    ep.path = Some("/nonexistent/ipc-showcase.pipes.1.x/fifo".into());
    assert!(Fifo::open_receiver(&ep).is_err());
}
