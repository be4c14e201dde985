//! The buffer's repair, limits and errors, one case at a time; the
//! conformance suite (in lib.rs) and `tests/deaths.rs` (processes that
//! really die) do the rest.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ipc_core::conformance::a_dead_process;
use ipc_core::{Endpoint, Error, Handover, Mode, Options, Receiver, Sender, Transport};

use crate::layout::*;
use crate::sys::{self, Taken};
use crate::{LostMessage, SemReceiver, SemSender, Semaphores};

fn channel(slot: usize, slots: usize) -> (SemSender, SemReceiver) {
    let opts = Options::default().max_message(slot).capacity(slot * slots);
    Semaphores::channel(Mode::Thread, &opts).expect("channel")
}

/// Makes participant `i` look like it belongs to a process that died.
fn kill_participant(rx: &SemReceiver, i: usize) {
    let p = rx.buffer().participant(i);
    p.owner.set(Some(a_dead_process().id()));
}

#[test]
fn a_message_larger_than_a_slot_is_too_large_naming_the_slot_size() {
    let (mut tx, _rx) = channel(100, 4);
    match tx.send(&[0; 101]) {
        Err(Error::TooLarge {
            len: 101,
            max: 100,
            limit,
        }) => {
            assert!(limit.contains("slot size"), "{limit}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_capacity_option_sets_the_slots_and_its_limit_holds() {
    let (_tx, rx) = channel(64, 10);
    assert_eq!(rx.state().expect("state").slots, 10);
    let too_big = Options::default().max_message(64).capacity((1 << 30) + 1);
    match Semaphores::channel(Mode::Thread, &too_big) {
        Err(e) => assert!(e.to_string().contains("semaphore buffer (1 GiB)"), "{e}"),
        Ok(_) => panic!("a buffer over 1 GiB was made"),
    }
    // A slot over the limit is lowered to it, and the default count of
    // slots to what fits the default capacity.
    let (tx, rx) = Semaphores::channel(Mode::Thread, &Options::default().max_message(usize::MAX))
        .expect("channel");
    assert_eq!(tx.max_message(), crate::SLOT_LIMIT.bytes);
    assert_eq!(
        rx.state().expect("state").slots,
        crate::DEFAULT_CAPACITY / crate::SLOT_LIMIT.bytes
    );
}

#[test]
fn a_token_taken_by_a_participant_that_died_comes_back() {
    let (tx, mut rx) = channel(16, 4);
    let dead = Semaphores::clone_sender(&tx).expect("clone");
    let i = dead.participant();
    // It took a token and said so, then died: no slot shows it.
    // SAFETY: the buffer's own semaphore.
    assert!(unsafe { sys::sem_try(rx.buffer().empty()) }.expect("take"));
    rx.buffer()
        .participant(i)
        .phase
        .store(HOLD, Ordering::SeqCst);
    kill_participant(&rx, i);
    std::mem::forget(dead);
    let s = rx.state().expect("state");
    assert_eq!((s.free, s.empty_tokens, s.full_tokens), (4, 4, 0));
    assert!(rx.lost_messages().expect("the lost log").is_empty());
    assert_eq!(
        rx.buffer().participant(i).state.load(Ordering::SeqCst),
        UNUSED
    );
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
}

#[test]
fn a_slot_a_dead_producer_was_writing_is_freed_and_its_message_reported() {
    let (mut tx, mut rx) = channel(16, 2);
    let mut dead = Semaphores::clone_sender(&tx).expect("clone");
    dead.send(b"first").expect("send");
    let i = dead.participant();
    // Its second message: the token taken, the slot held, half written.
    let b = std::sync::Arc::clone(rx.buffer());
    // SAFETY: the buffer's own semaphore.
    assert!(unsafe { sys::sem_try(b.empty()) }.expect("take"));
    let s = (0..2)
        .find(|&s| b.slot(s).state.load(Ordering::SeqCst) == FREE)
        .expect("a free slot");
    let number = dead.producer_number();
    b.slot(s).producer.store(number, Ordering::SeqCst);
    b.slot(s).seq.store(1, Ordering::SeqCst);
    b.slot(s).holder.store(i as u32, Ordering::SeqCst);
    b.slot(s).state.store(WRITING, Ordering::SeqCst);
    b.participant(i).phase.store(SLOT, Ordering::SeqCst);
    kill_participant(&rx, i);
    std::mem::forget(dead);
    assert_eq!(rx.recv().expect("the first message"), b"first");
    assert_eq!(
        rx.lost_messages().expect("the lost log"),
        vec![LostMessage {
            producer: number,
            seq: 1
        }]
    );
    let st = rx.state().expect("state");
    assert_eq!((st.free, st.empty_tokens, st.full_tokens), (2, 2, 0));
    tx.send(b"after").expect("send");
    assert_eq!(rx.recv().expect("recv"), b"after");
}

#[test]
fn a_token_too_many_is_dropped_not_spent_on_a_slot_that_is_not_there() {
    let (mut tx, rx) = channel(16, 1);
    tx.send(b"fills the slot").expect("send");
    // SAFETY: the buffer's own semaphore: one token more than free slots,
    // as a repair can leave while a waiter has not said it holds one.
    unsafe { sys::sem_post(rx.buffer().empty()) }.expect("post");
    assert!(matches!(tx.try_send(b"no room"), Err(Error::Full)));
    let s = rx.state().expect("state");
    assert_eq!((s.full, s.empty_tokens, s.full_tokens), (1, 0, 1));
}

#[test]
fn a_wait_ends_at_its_limit_on_the_monotonic_clock() {
    let (_tx, rx) = channel(16, 1);
    let started = Instant::now();
    // SAFETY: the buffer's own semaphore; `full` holds no token.
    let taken = unsafe { sys::sem_wait_for(rx.buffer().full(), Duration::from_millis(30)) };
    assert_eq!(taken.expect("wait"), Taken::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_missing_or_foreign_region_is_refused() {
    let mut ep = Endpoint::new(Semaphores::NAME, Semaphores::VARIANT, 16);
    ep.name = Some("ipc-showcase.semaphores.1.1.no-such-buffer".into());
    ep.extra = vec![0];
    assert!(Semaphores::open_sender(ep).is_err());

    let foreign =
        ipc_shm::Region::create::<ipc_shm::Native>("semaphores", 1 << 16).expect("region");
    let mut ep = Endpoint::new(Semaphores::NAME, Semaphores::VARIANT, 16);
    ep.name = Some(foreign.name().to_owned());
    ep.extra = vec![0];
    match Semaphores::open_receiver(ep) {
        Err(Error::BadEndpoint(why)) => assert!(
            why.contains("not an ipc-showcase semaphore buffer"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_end_can_be_opened_once_and_only_as_what_it_was() {
    let (tx, _rx) = channel(16, 2);
    let ep = Semaphores::export_sender(tx, &mut Handover::new()).expect("export");
    let mut as_receiver = Endpoint::new(Semaphores::NAME, Semaphores::VARIANT, 16);
    as_receiver.name = ep.name.clone();
    as_receiver.extra = ep.extra.clone();
    assert!(matches!(
        Semaphores::open_receiver(as_receiver),
        Err(Error::InUse(_))
    ));
}

#[test]
fn the_last_end_is_not_handed_over() {
    let (tx, rx) = channel(16, 2);
    drop(tx);
    assert!(matches!(
        Semaphores::export_receiver(rx, &mut Handover::new()),
        Err(Error::BadEndpoint(_))
    ));
}

#[test]
fn the_lost_log_keeps_the_last_entries() {
    let (_tx, rx) = channel(16, 1);
    let b = &rx.buffer();
    for seq in 0..(LOST_LOG as u64 + 5) {
        b.log_lost(LostMessage { producer: 7, seq });
    }
    let lost = rx.lost_messages().expect("the lost log");
    assert_eq!(lost.len(), LOST_LOG);
    assert_eq!(lost.first().map(|l| l.seq), Some(5));
    assert_eq!(lost.last().map(|l| l.seq), Some(LOST_LOG as u64 + 4));
}

#[test]
fn many_threads_on_both_sides_move_every_message_once() {
    let (tx, rx) = channel(24, 3);
    let per = 2000u64;
    let senders: Vec<SemSender> = (0..4)
        .map(|_| Semaphores::clone_sender(&tx).expect("clone"))
        .collect();
    drop(tx);
    let receivers: Vec<SemReceiver> = (0..3)
        .map(|_| Semaphores::clone_receiver(&rx).expect("clone"))
        .collect();
    let got = std::thread::scope(|s| {
        for (p, mut tx) in senders.into_iter().enumerate() {
            s.spawn(move || {
                for i in 0..per {
                    let mut m = [0u8; 24];
                    m[..8].copy_from_slice(&(p as u64).to_le_bytes());
                    m[8..16].copy_from_slice(&i.to_le_bytes());
                    tx.send(&m).expect("send");
                }
            });
        }
        let handles: Vec<_> = receivers
            .into_iter()
            .map(|mut rx| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv() {
                            Ok(m) => got.push((
                                u64::from_le_bytes(m[..8].try_into().expect("8")),
                                u64::from_le_bytes(m[8..16].try_into().expect("8")),
                            )),
                            Err(Error::Disconnected) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("consumer"))
            .collect::<Vec<_>>()
    });
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "duplicates");
    assert_eq!(got.len() as u64, 4 * per, "missing");
    let s = rx.state().expect("state");
    assert_eq!((s.free, s.empty_tokens, s.full_tokens), (3, 3, 0));
}

#[test]
fn a_slot_held_by_no_participant_is_freed_and_its_message_reported() {
    let (_tx, rx) = channel(16, 2);
    let b = rx.buffer();
    // A holder that is no entry of the table at all (as a peer that breaks
    // the protocol could write), and one that is an unused entry.
    for (s, holder) in [(0, 5000u32), (1, (MAX_PARTICIPANTS - 1) as u32)] {
        // SAFETY: the buffer's own semaphore: the slot's token, taken.
        assert!(unsafe { sys::sem_try(b.empty()) }.expect("take"));
        b.slot(s).producer.store(77, Ordering::SeqCst);
        b.slot(s).seq.store(s as u64, Ordering::SeqCst);
        b.slot(s).holder.store(holder, Ordering::SeqCst);
        b.slot(s).state.store(READING, Ordering::SeqCst);
    }
    let lost = rx.lost_messages().expect("the lost log");
    assert_eq!(
        lost,
        vec![
            LostMessage {
                producer: 77,
                seq: 0
            },
            LostMessage {
                producer: 77,
                seq: 1
            }
        ]
    );
    let s = rx.state().expect("state");
    assert_eq!((s.free, s.empty_tokens), (2, 2));
}

#[test]
fn an_end_handed_to_a_process_that_died_counts_as_gone_before_its_open_time() {
    let opts = Options::default()
        .max_message(16)
        .capacity(16 * 2)
        .connect_timeout(Duration::from_secs(3600));
    let (mut tx, rx) = Semaphores::channel(Mode::Process, &opts).expect("channel");
    let _ep = Semaphores::export_receiver(rx, &mut Handover::new()).expect("export");
    Semaphores::set_peer_of_sender(&mut tx, &a_dead_process()).expect("name the peer");
    let started = Instant::now();
    let err = loop {
        if let Err(e) = tx.send(b"to nobody") {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still sending");
    };
    assert!(matches!(err, Error::Disconnected), "{err}");
}

#[test]
fn a_table_entry_used_again_gets_a_new_producer_number() {
    let (tx, _rx) = channel(16, 2);
    let first = Semaphores::clone_sender(&tx).expect("clone");
    let (entry, number) = (first.participant(), first.producer_number());
    drop(first);
    let second = Semaphores::clone_sender(&tx).expect("clone");
    assert_eq!(second.participant(), entry, "the entry is used again");
    assert_ne!(second.producer_number(), number);
    assert_ne!(second.producer_number(), tx.producer_number());
}

#[test]
fn a_slot_length_a_peer_rewrote_is_corrupt_and_the_channel_goes_on() {
    let (mut tx, mut rx) = channel(64, 4);
    tx.send(b"honest").expect("send");
    let b = std::sync::Arc::clone(rx.buffer());
    let full = (0..b.geo.slots)
        .find(|&s| b.slot(s).state.load(Ordering::SeqCst) == FULL)
        .expect("the full slot");
    // A length past the slot (and past the region) as a hostile peer writes it.
    b.slot(full).len.store(u64::MAX, Ordering::SeqCst);
    match rx.try_recv() {
        Err(Error::Corrupt(why)) => assert!(why.contains("more than its 64"), "{why}"),
        other => panic!("expected Corrupt, got {:?}", other.map(<[u8]>::to_vec)),
    }
    tx.send(b"next").expect("send after");
    assert_eq!(rx.try_recv().expect("the next message"), b"next");
}

#[test]
fn a_lock_word_a_peer_rewrote_is_corrupt_not_a_hang() {
    // The lock word names, as a peer that broke the protocol could write: a
    // thread that does not exist (a reaped child's), a process that takes no
    // part in the channel (a `sleep` child), this very thread.
    let mut stranger = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let cases = [
        (a_dead_process().id().pid(), "no such thread exists"),
        (stranger.id(), "takes no part in this channel"),
        // SAFETY: gettid has no arguments and cannot fail.
        (unsafe { libc::gettid() } as u32, "this very thread"),
    ];
    for (tid, why) in cases {
        let (mut tx, mut rx) = channel(64, 4);
        tx.send(b"waiting").expect("send");
        let b = std::sync::Arc::clone(rx.buffer());
        // SAFETY: glibc's pthread_mutex_t starts with its lock word (the
        // owner's tid), a 4-byte aligned int inside the mapped region; it is
        // only ever accessed atomically (futex), as here.
        let word = unsafe { &*(b.mutex() as *const std::sync::atomic::AtomicU32) };
        word.store(tid, Ordering::SeqCst);
        let start = Instant::now();
        let got = rx.try_recv().map(<[u8]>::to_vec);
        let took = start.elapsed();
        word.store(0, Ordering::SeqCst);
        match got {
            Err(Error::Corrupt(text)) => assert!(text.contains(why), "{text}"),
            other => panic!("tid {tid}: expected Corrupt ({why}), got {other:?}"),
        }
        assert!(took < Duration::from_secs(5), "gave up after {took:?}");
    }
    let _ = stranger.kill();
    let _ = stranger.wait();
}
