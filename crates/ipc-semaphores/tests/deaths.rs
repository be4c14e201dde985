//! Producers and consumers in processes of their own, and deaths among
//! them: every message arrives exactly once with 1x1, 4x1, 1x4 and 3x3
//! producers x consumers; a process that dies at each dangerous point (a
//! test-only hook makes it kill itself exactly there), or is killed at a
//! random moment, costs at most one message, which the repair reports by
//! number; the survivors finish, no message is read from an unwritten slot,
//! and the buffer's capacity is whole again. When a whole side is gone, the
//! other stops with `Disconnected` within seconds.
//!
//! This binary is its own test runner (`harness = false`) and also the
//! producers and consumers it starts (`SEM_ROLE` says which), each of which
//! reports what it did, line by line, on its stdout, so that the lines a
//! killed process wrote before it died still count.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc_core::{Endpoint, Error, Handover, Mode, Options, Receiver, Sender, Transport};
use ipc_semaphores::hook::DIE_AT;
use ipc_semaphores::Semaphores;

const ROLE: &str = "SEM_ROLE";
const END: &str = "SEM_END";
const SIZE: usize = 200;

/// Message `i` of producer `p`: its numbers, then a pattern of both.
fn message(p: u32, i: u64) -> Vec<u8> {
    let mut m: Vec<u8> = (0..SIZE)
        .map(|j| (j as u64 ^ i.wrapping_mul(131) ^ (u64::from(p) * 7)) as u8)
        .collect();
    m[..4].copy_from_slice(&p.to_le_bytes());
    m[4..12].copy_from_slice(&i.to_le_bytes());
    m
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        play(&role);
        return;
    }
    let tests: [(&str, fn()); 6] = [
        (
            "every_message_exactly_once_1x1_4x1_1x4_3x3",
            every_message_exactly_once,
        ),
        (
            "a_death_at_each_dangerous_point_costs_at_most_one_message",
            a_death_at_each_dangerous_point,
        ),
        (
            "a_producer_or_consumer_killed_at_random_costs_at_most_one_message",
            killed_at_random,
        ),
        (
            "a_whole_side_gone_is_disconnected_within_seconds",
            a_whole_side_gone,
        ),
        (
            "a_second_open_of_an_end_is_refused",
            a_second_open_is_refused,
        ),
        ("nothing_is_left_in_dev_shm", nothing_left),
    ];
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut failed = 0;
    for (name, test) in tests {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    if failed > 0 {
        std::process::exit(101);
    }
}

/// In a child: plays `producer <id> <count>` or `consumer <id>` on the end
/// in `SEM_END`, reporting each step on stdout.
fn play(role: &str) {
    // SAFETY: the parent started this process with SEM_END set to the
    // token of the end it handed over (no fd: the token names the region).
    let ep = unsafe { Endpoint::from_env(END) }.expect("the end");
    let words: Vec<&str> = role.split(' ').collect();
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    match words.as_slice() {
        ["producer", id, count] => {
            let (id, count): (u32, u64) = (id.parse().expect("id"), count.parse().expect("count"));
            let mut tx = Semaphores::open_sender(ep).expect("open the sender");
            for i in 0..count {
                match tx.send(&message(id, i)) {
                    Ok(()) => say(format!("sent {i}")),
                    Err(Error::Disconnected) => {
                        say("disconnected".into());
                        std::process::exit(3);
                    }
                    Err(e) => panic!("send {i}: {e}"),
                }
            }
        }
        ["consumer"] => {
            let mut rx = Semaphores::open_receiver(ep).expect("open the receiver");
            loop {
                match rx.recv() {
                    Ok(m) => {
                        let p = u32::from_le_bytes(m[..4].try_into().expect("4 bytes"));
                        let i = u64::from_le_bytes(m[4..12].try_into().expect("8 bytes"));
                        if m != message(p, i) {
                            say(format!("bad {p} {i}"));
                        } else {
                            say(format!("got {p} {i}"));
                        }
                    }
                    Err(Error::Disconnected) => {
                        say("disconnected".into());
                        break;
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// A child playing one end, and what it said.
struct Player {
    child: Child,
    /// A producer's number in the buffer (the `producer` of lost messages).
    number: Option<u32>,
    id: u32,
}

struct Run {
    keep: ipc_semaphores::SemReceiver,
    players: Vec<Player>,
}

/// Starts `producers` producers sending `count` messages each and
/// `consumers` consumers, each in a process of its own; `die` gives the
/// death hook's setting to one player (by index: producers first).
fn start(
    producers: u32,
    consumers: u32,
    count: u64,
    slots: usize,
    die: Option<(usize, String)>,
) -> Run {
    let opts = Options::default().max_message(SIZE).capacity(SIZE * slots);
    let (tx, mut keep) = Semaphores::channel(Mode::Process, &opts).expect("channel");
    let mut txs = vec![tx];
    for _ in 1..producers {
        txs.push(Semaphores::clone_sender(&txs[0]).expect("clone"));
    }
    let mut rxs = Vec::new();
    for _ in 0..consumers {
        rxs.push(Semaphores::clone_receiver(&keep).expect("clone"));
    }
    let exe = std::env::current_exe().expect("this binary");
    let mut players = Vec::new();
    let ends = txs.into_iter().map(Ok).chain(rxs.into_iter().map(Err));
    for (n, end) in ends.enumerate() {
        let id = n as u32;
        // Each end is handed over just before its process starts, so that
        // the buffer knows which process is to open it.
        let (number, ep, role) = match end {
            Ok(tx) => (
                Some(tx.producer_number()),
                Semaphores::export_sender(tx, &mut Handover::new()).expect("export"),
                format!("producer {id} {count}"),
            ),
            Err(rx) => (
                None,
                Semaphores::export_receiver(rx, &mut Handover::new()).expect("export"),
                "consumer".to_owned(),
            ),
        };
        let mut cmd = Command::new(&exe);
        cmd.env(ROLE, role)
            .env(END, ep.to_token())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((who, spec)) = &die {
            if *who == n {
                cmd.env(DIE_AT, spec);
            }
        }
        let (child, peer) = Handover::new().spawn(cmd).expect("spawn");
        Semaphores::set_peer_of_receiver(&mut keep, &peer).expect("peer");
        players.push(Player { child, number, id });
    }
    Run { keep, players }
}

/// What a finished run shows.
struct Outcome {
    /// Per producer: the messages its send returned Ok for.
    sent: HashMap<u32, HashSet<u64>>,
    /// Every message received, with repeats, and the consumer that got it.
    got: Vec<((u32, u64), u32)>,
    bad: usize,
    /// Lost messages, by producer id.
    lost: Vec<(u32, u64)>,
    killed: Vec<u32>,
    /// The players that were producers.
    producers: HashSet<u32>,
    disconnected: Vec<u32>,
    state: ipc_semaphores::BufferState,
}

/// Waits for every player (at most `limit`) and gathers what they said.
fn finish(run: Run, limit: Duration) -> Outcome {
    let started = Instant::now();
    let mut sent = HashMap::new();
    let mut got = Vec::new();
    let (mut bad, mut killed, mut disconnected) = (0, Vec::new(), Vec::new());
    let producers = run
        .players
        .iter()
        .filter(|p| p.number.is_some())
        .map(|p| p.id)
        .collect();
    let by_number: HashMap<u32, u32> = run
        .players
        .iter()
        .filter_map(|p| Some((p.number?, p.id)))
        .collect();
    for mut player in run.players {
        let status = loop {
            if let Some(status) = player.child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = player.child.kill();
                panic!(
                    "player {} still running after {limit:?}: a deadlock",
                    player.id
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(libc::SIGKILL) {
            killed.push(player.id);
        }
        let lines = std::io::BufReader::new(player.child.stdout.take().expect("stdout")).lines();
        let mine: &mut HashSet<u64> = sent.entry(player.id).or_default();
        for line in lines.map_while(Result::ok) {
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                ["sent", i] if player.number.is_some() => {
                    mine.insert(i.parse().expect("i"));
                }
                ["got", p, i] => {
                    got.push(((p.parse().expect("p"), i.parse().expect("i")), player.id))
                }
                ["bad", ..] => bad += 1,
                ["disconnected"] => disconnected.push(player.id),
                _ => {} // a line cut short by a death
            }
        }
    }
    let lost = run
        .keep
        .lost_messages()
        .expect("the lost log")
        .into_iter()
        .map(|l| (*by_number.get(&l.producer).unwrap_or(&u32::MAX), l.seq))
        .collect();
    let state = run.keep.state().expect("the buffer's state");
    Outcome {
        sent,
        got,
        bad,
        lost,
        killed,
        producers,
        disconnected,
        state,
    }
}

/// The checks every run passes: nothing read from an unwritten slot, no
/// duplicate, every message sent received or reported lost, at most one
/// reported per killed process and none otherwise, and the capacity whole.
///
/// A consumer's message counts as delivered once it asks for the next one;
/// one killed after its receive returned has its last message reported lost
/// whether or not it wrote the line saying it got it.
fn check(o: &Outcome, what: &str) {
    assert_eq!(
        o.bad, 0,
        "{what}: a message read from a slot not fully written"
    );
    let mut seen = HashSet::new();
    for (m, _) in &o.got {
        assert!(seen.insert(*m), "{what}: message {m:?} arrived twice");
    }
    assert!(
        o.lost.len() <= o.killed.len(),
        "{what}: {} reported lost for {} deaths: {:?}",
        o.lost.len(),
        o.killed.len(),
        o.lost
    );
    for l in &o.lost {
        if seen.contains(l) {
            let last_of_a_killed_consumer = o.killed.iter().any(|k| {
                !o.producers.contains(k)
                    && o.got.iter().rev().find(|(_, c)| c == k).map(|(m, _)| m) == Some(l)
            });
            assert!(
                last_of_a_killed_consumer,
                "{what}: {l:?} reported lost but it arrived"
            );
        }
    }
    for (p, msgs) in &o.sent {
        for i in msgs {
            let m = (*p, *i);
            assert!(
                seen.contains(&m) || o.lost.contains(&m),
                "{what}: message {m:?} was sent and neither arrived nor was reported lost"
            );
        }
    }
    // Every message that arrived was sent, or was the one a killed
    // producer had in hand.
    for (m, _) in &o.got {
        let sent = o.sent.get(&m.0).is_some_and(|s| s.contains(&m.1));
        assert!(
            sent || o.killed.contains(&m.0),
            "{what}: {m:?} arrived but was never sent"
        );
    }
    let s = o.state;
    assert_eq!(
        (s.free, s.full, s.empty_tokens, s.full_tokens),
        (s.slots, 0, s.slots, 0),
        "{what}: the buffer's capacity is not whole again"
    );
}

fn every_message_exactly_once() {
    for (p, c) in [(1, 1), (4, 1), (1, 4), (3, 3)] {
        let count = 300;
        let o = finish(start(p, c, count, 8, None), Duration::from_secs(120));
        let what = format!("{p}x{c}");
        check(&o, &what);
        assert!(o.killed.is_empty() && o.lost.is_empty(), "{what}");
        assert_eq!(
            o.got.len() as u64,
            u64::from(p) * count,
            "{what}: messages missing"
        );
    }
}

fn a_death_at_each_dangerous_point() {
    for role in ["producer", "consumer"] {
        for point in [
            "after-wait",
            "holding-mutex",
            "mid-write",
            "mid-read",
            "before-post",
        ] {
            if (role, point) == ("producer", "mid-read")
                || (role, point) == ("consumer", "mid-write")
            {
                continue;
            }
            // Two producers, two consumers: player 0 is a producer, 2 a consumer.
            let who = if role == "producer" { 0 } else { 2 };
            let spec = format!("{role}:{point}@40");
            let o = finish(
                start(2, 2, 200, 4, Some((who, spec.clone()))),
                Duration::from_secs(120),
            );
            check(&o, &spec);
            assert_eq!(
                o.killed,
                vec![who as u32],
                "{spec}: the hook did not kill its process"
            );
            let lost_for_sure = matches!(
                (role, point),
                (_, "mid-write" | "mid-read") | ("consumer", "before-post")
            );
            if lost_for_sure {
                assert_eq!(
                    o.lost.len(),
                    1,
                    "{spec}: the message in hand is reported lost"
                );
            }
        }
    }
}

fn killed_at_random() {
    let mut rng = 0x5eed_u64;
    for who in [0usize, 2] {
        for _ in 0..3 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let run = start(2, 2, 2000, 4, None);
            let pid = run.players[who].child.id();
            std::thread::sleep(Duration::from_millis(20 + rng % 200));
            // SAFETY: kill only sends a signal, to a child of this test.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let o = finish(run, Duration::from_secs(120));
            check(&o, &format!("player {who} killed at random"));
        }
    }
}

fn a_whole_side_gone() {
    // The one producer dies: both consumers stop with Disconnected once
    // they have taken what it left.
    let started = Instant::now();
    let run = start(
        1,
        2,
        1_000_000,
        4,
        Some((0, "producer:after-wait@100".into())),
    );
    let o = finish(run, Duration::from_secs(60));
    assert_eq!(o.killed, vec![0]);
    let mut disconnected = o.disconnected.clone();
    disconnected.sort_unstable();
    assert_eq!(
        disconnected,
        vec![1, 2],
        "the consumers did not say the producers are gone"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    check(&o, "the producers gone");

    // The one consumer dies: this process, the producer, gets Disconnected.
    let opts = Options::default().max_message(SIZE).capacity(SIZE * 4);
    let (mut tx, rx) = Semaphores::channel(Mode::Process, &opts).expect("channel");
    let ep = Semaphores::export_receiver(rx, &mut Handover::new()).expect("export");
    let mut cmd = Command::new(std::env::current_exe().expect("this binary"));
    cmd.env(ROLE, "consumer")
        .env(END, ep.to_token())
        .env(DIE_AT, "consumer:after-wait@50")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let (mut child, peer) = Handover::new().spawn(cmd).expect("spawn");
    Semaphores::set_peer_of_sender(&mut tx, &peer).expect("peer");
    let started = Instant::now();
    let mut i = 0;
    let err = loop {
        match tx.send(&message(0, i)) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still sending after 30 s"
        );
    };
    assert!(matches!(err, Error::Disconnected), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let _ = child.wait();
}

fn a_second_open_is_refused() {
    let (tx, _keep) =
        Semaphores::channel(Mode::Process, &Options::default().max_message(64)).expect("channel");
    let ep = Semaphores::export_sender(tx, &mut Handover::new()).expect("export");
    let mut again = Endpoint::new("semaphores", "posix", 64);
    again.name = ep.name.clone();
    again.extra = ep.extra.clone();
    let _first = Semaphores::open_sender(ep).expect("the first open");
    assert!(matches!(
        Semaphores::open_sender(again),
        Err(Error::InUse(_))
    ));
}

fn nothing_left() {
    let mine = format!("ipc-showcase.semaphores.{}.", std::process::id());
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&mine))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
