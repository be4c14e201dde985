//! The queue's own promises, one at a time; the conformance suite (in
//! lib.rs) and `tests/mqueue.rs` (the binary) do the rest.

use std::time::{Duration, Instant};

use ipc_core::conformance::a_dead_process;
use ipc_core::{Error, Handover, Mode, Options, Receiver, Sender, Transport};
use nix::mqueue::{MQ_OFlag, MqAttr};
use nix::sys::stat::Mode as FileMode;

use crate::queue::{self, Queue};
use crate::Mqueue;

fn channel(max: usize) -> (crate::MqSender, crate::MqReceiver) {
    Mqueue::channel(Mode::Thread, &Options::default().max_message(max)).expect("channel")
}

#[test]
fn an_empty_message_is_a_message_and_the_end_is_told_apart() {
    let (mut tx, mut rx) = channel(16);
    tx.send(b"").expect("send");
    tx.send(b"x").expect("send");
    drop(tx);
    assert_eq!(rx.recv().expect("the empty one"), b"");
    assert_eq!(rx.recv().expect("then x"), b"x");
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[test]
fn a_message_over_the_size_is_too_large_naming_what_set_it() {
    let (mut tx, _rx) = channel(100);
    match tx.send(&[0; 101]) {
        Err(Error::TooLarge {
            len: 101,
            max: 100,
            limit,
        }) => {
            assert_eq!(limit, ipc_core::LIMIT_OPTION)
        }
        other => panic!("{other:?}"),
    }
    let (mut tx, _rx) = channel(usize::MAX);
    let max = tx.max_message();
    match tx.send(&vec![0; max + 1]) {
        Err(Error::TooLarge { limit, .. }) => {
            assert!(
                limit.contains("RLIMIT_MSGQUEUE")
                    || limit.contains("msgsize_max")
                    || limit.contains("ceiling"),
                "{limit}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_sender_blocked_on_a_full_queue_wakes_when_the_receiver_goes() {
    let (mut tx, rx) = channel(8);
    let filler = std::thread::spawn(move || {
        let started = Instant::now();
        let err = loop {
            if let Err(e) = tx.send(b"12345678") {
                break e;
            }
        };
        (err, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    // The sender is blocked on the full queue by now.
    drop(rx);
    let (err, took) = filler.join().expect("the sender");
    assert!(matches!(err, Error::Disconnected), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_receiver_gets_what_was_sent_then_the_end() {
    let (mut tx, mut rx) = channel(8);
    tx.send(b"last").expect("send");
    drop(tx);
    assert_eq!(rx.recv().expect("what it sent"), b"last");
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}

#[test]
fn a_dead_peer_process_is_seen_even_when_its_link_stays_open() {
    // The exported ends' fds live on in the hand-overs (as a stray fork's
    // copy would): only the liveness service tells.
    let (mut tx, rx) = channel(8);
    let mut kept = Handover::new();
    let _ep = Mqueue::export_receiver(rx, &mut kept).expect("export");
    Mqueue::set_peer_of_sender(&mut tx, &a_dead_process()).expect("peer");
    let started = Instant::now();
    let err = loop {
        if let Err(e) = tx.send(b"12345678") {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still sending");
    };
    assert!(matches!(err, Error::Disconnected), "{err}");

    let (tx, mut rx) = channel(8);
    let mut kept = Handover::new();
    let _ep = Mqueue::export_sender(tx, &mut kept).expect("export");
    Mqueue::set_peer_of_receiver(&mut rx, &a_dead_process()).expect("peer");
    let started = Instant::now();
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_zero_timeout_still_takes_a_message_that_is_there() {
    let (mut tx, mut rx) = channel(8);
    tx.send(b"here").expect("send");
    assert_eq!(rx.recv_timeout(Duration::ZERO).expect("taken"), b"here");
    assert!(matches!(
        rx.recv_timeout(Duration::ZERO),
        Err(Error::Timeout)
    ));
}

#[test]
fn a_message_at_a_priority_no_sender_uses_is_corrupt() {
    let (_tx, mut rx) = channel(8);
    let name = rx.end.named.as_ref().expect("named").name.clone();
    let other =
        nix::mqueue::mq_open(&*name, MQ_OFlag::O_WRONLY, FileMode::empty(), None).expect("open");
    nix::mqueue::mq_send(&other, b"forged", 7).expect("send");
    nix::mqueue::mq_close(other).expect("close");
    assert!(matches!(rx.recv(), Err(Error::Corrupt(_))));
}

#[test]
fn a_queue_of_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: only root can give a queue to another user");
        return;
    }
    let (send, _recv, _named) = queue::create(16, 2).expect("queue");
    let fd = send.dup_fd().expect("dup");
    nix::unistd::fchown(&fd, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    match Queue::adopt(fd) {
        Err(Error::BadEndpoint(why)) => assert!(why.contains("65534"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn clean_removes_the_queue_of_a_dead_creator_and_leaves_a_live_ones() {
    // A live queue first: making one cleans too.
    let (_tx, rx) = channel(8);
    let live = rx.end.named.as_ref().expect("named").name.clone();
    let dead = a_dead_process().id();
    let name = format!(
        "ipc-showcase.mqueue.{}.{}.test{}",
        dead.pid(),
        dead.start_ticks(),
        std::process::id()
    );
    let attr = MqAttr::new(0, 2, 16, 0);
    let q = nix::mqueue::mq_open(
        &*format!("/{name}"),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_WRONLY,
        FileMode::S_IRUSR | FileMode::S_IWUSR,
        Some(&attr),
    )
    .expect("a queue left behind");
    nix::mqueue::mq_close(q).expect("close");
    let record = ipc_core::names::temp_dir().join(&name);
    std::fs::write(&record, b"").expect("its record");
    // (A channel made by another test meanwhile may clean it first.)
    let report = queue::clean().expect("clean");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(!record.exists());
    let gone = nix::mqueue::mq_open(
        &*format!("/{name}"),
        MQ_OFlag::O_RDONLY,
        FileMode::empty(),
        None,
    );
    assert_eq!(gone.err(), Some(nix::errno::Errno::ENOENT));
    let kept = nix::mqueue::mq_open(&*live, MQ_OFlag::O_RDONLY, FileMode::empty(), None)
        .expect("the live queue");
    nix::mqueue::mq_close(kept).expect("close");
}

#[test]
fn the_creator_unlinks_its_queue_and_record_when_its_ends_go() {
    let (tx, rx) = channel(8);
    let name = rx.end.named.as_ref().expect("named").name.clone();
    let record = ipc_core::names::temp_dir().join(&name[1..]);
    assert!(record.exists());
    drop((tx, rx));
    assert!(!record.exists());
    let gone = nix::mqueue::mq_open(&*name, MQ_OFlag::O_RDONLY, FileMode::empty(), None);
    assert_eq!(gone.err(), Some(nix::errno::Errno::ENOENT));
}

#[test]
fn a_queue_name_someone_else_took_is_refused_and_left_alone() {
    let seed = 0x7a11;
    fastrand::seed(seed);
    let name = format!("/{}", ipc_core::names::unique_name("mqueue"));
    let record = ipc_core::names::temp_dir().join(&name[1..]);
    let attr = MqAttr::new(0, 4, 64, 0);
    let squatter = nix::mqueue::mq_open(
        name.as_str(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDONLY,
        FileMode::S_IRUSR | FileMode::S_IWUSR,
        Some(&attr),
    )
    .expect("the squatter's queue");
    fastrand::seed(seed);
    let err = queue::create(64, 4).expect_err("the name is taken");
    assert!(err.is_already_exists(), "{err}");
    let again = nix::mqueue::mq_open(name.as_str(), MQ_OFlag::O_RDONLY, FileMode::empty(), None)
        .expect("the squatter's queue is still there");
    nix::mqueue::mq_close(again).expect("close it");
    assert!(!record.exists(), "our own record of it stays behind");
    nix::mqueue::mq_close(squatter).expect("close the squatter's queue");
    nix::mqueue::mq_unlink(name.as_str()).expect("remove the squatter's queue");

    // The record's name taken: refused, the file left as it was, no queue made.
    fastrand::seed(seed + 1);
    let name = format!("/{}", ipc_core::names::unique_name("mqueue"));
    let record = ipc_core::names::temp_dir().join(&name[1..]);
    std::fs::write(&record, b"someone else's").expect("the squatter's file");
    fastrand::seed(seed + 1);
    let err = queue::create(64, 4).expect_err("the record's name is taken");
    assert!(err.is_already_exists(), "{err}");
    assert_eq!(
        std::fs::read(&record).expect("still there"),
        b"someone else's"
    );
    assert!(
        nix::mqueue::mq_open(name.as_str(), MQ_OFlag::O_RDONLY, FileMode::empty(), None).is_err(),
        "no queue was made"
    );
    std::fs::remove_file(&record).expect("remove the squatter's file");
}

#[test]
fn the_queue_and_its_record_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (send, _recv, named) = queue::create(64, 4).expect("create");
    let fd = send.into_fd();
    let mode = nix::sys::stat::fstat(&fd).expect("fstat the queue").st_mode & 0o777;
    assert_eq!(mode, 0o600, "the queue");
    let record = ipc_core::names::temp_dir().join(&named.name[1..]);
    let mode = std::fs::metadata(&record)
        .expect("the record")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the record");
}
