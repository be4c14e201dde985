//! kill -9 of the other process while it holds a loan (the producer) or a
//! view (the consumer): the survivor sees the death within a few seconds,
//! nothing half-written arrives, and the region goes with its creator.
//!
//! This binary is also the child: started with `LOAN_CHILD` set, it opens
//! the end it was handed, takes a loan or a view, says so on stdout and
//! waits to be killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipc_core::liveness::PeerProcess;
use ipc_core::{Endpoint, Error, Handover, Mode, Options, Receiver, Sender, Transport};
use ipc_shm::ShmRing;

const ROLE: &str = "LOAN_CHILD";
const END: &str = "LOAN_CHILD_END";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("a_producer_killed_holding_a_loan: test");
        println!("a_consumer_killed_holding_a_view: test");
        return;
    }
    a_producer_killed_holding_a_loan();
    println!("test a_producer_killed_holding_a_loan ... ok");
    a_consumer_killed_holding_a_view();
    println!("test a_consumer_killed_holding_a_view ... ok");
}

fn child(role: &str) {
    let token = std::env::var(END).expect("the end's token");
    // SAFETY: the parent spawned this process through Handover with the fds
    // the token names, and nothing else here owns them.
    let end = unsafe { Endpoint::from_token(&token) }.expect("the token");
    let mut out = std::io::stdout();
    let mut say = || {
        writeln!(out, "holding")
            .and_then(|()| out.flush())
            .expect("say so")
    };
    match role {
        "producer" => {
            let mut tx = ShmRing::open_sender(end).expect("open the sender");
            let mut loan = tx.loan(100).expect("loan");
            loan.fill(0xAB);
            say();
            std::thread::sleep(Duration::from_secs(60));
            loan.commit();
        }
        "consumer" => {
            let mut rx = ShmRing::open_receiver(end).expect("open the receiver");
            let view = rx.recv_in_place().expect("view");
            assert_eq!(&*view, b"first");
            say();
            std::thread::sleep(Duration::from_secs(60));
            drop(view);
        }
        other => panic!("no child role {other:?}"),
    }
}

/// Starts the child playing `role` with `end`; returns it once it holds its
/// loan or view.
fn spawn(role: &str, end: Endpoint, handover: Handover) -> (std::process::Child, PeerProcess) {
    let mut cmd = Command::new(std::env::current_exe().expect("this binary"));
    cmd.env(ROLE, role)
        .env(END, end.to_token())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let (mut child, who) = handover.spawn(cmd).expect("spawn the child");
    let stdout = child.stdout.take().expect("its stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read its word");
    assert_eq!(line.trim(), "holding", "the child did not get there");
    (child, who)
}

fn options() -> Options {
    Options::default().max_message(256).capacity(4096)
}

/// The regions in /dev/shm this process created.
fn regions_of_this_process() -> Vec<String> {
    let me = format!(".{}.", std::process::id());
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ipc-showcase.shm") && n.contains(&me))
                .collect()
        })
        .unwrap_or_default()
}

fn a_producer_killed_holding_a_loan() {
    let (tx, mut rx) = ShmRing::channel(Mode::Process, &options()).expect("channel");
    let mut handover = Handover::new();
    let end = ShmRing::export_sender(tx, &mut handover).expect("export");
    let (mut child, who) = spawn("producer", end, handover);
    ShmRing::set_peer_of_receiver(&mut rx, &who).expect("introduce");
    assert!(
        matches!(rx.try_recv(), Err(Error::Empty)),
        "a loan is no message"
    );
    child.kill().expect("kill -9");
    let _ = child.wait();
    let started = Instant::now();
    match rx.recv_timeout(Duration::from_secs(30)) {
        Err(Error::Disconnected) => {}
        other => panic!("expected Disconnected, got {:?}", other.map(<[u8]>::to_vec)),
    }
    let noticed = started.elapsed();
    assert!(
        noticed < Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
    drop(rx);
    assert_eq!(regions_of_this_process(), Vec::<String>::new());
}

fn a_consumer_killed_holding_a_view() {
    let (mut tx, rx) = ShmRing::channel(Mode::Process, &options()).expect("channel");
    let mut handover = Handover::new();
    let end = ShmRing::export_receiver(rx, &mut handover).expect("export");
    tx.send(b"first").expect("send");
    let (mut child, who) = spawn("consumer", end, handover);
    ShmRing::set_peer_of_sender(&mut tx, &who).expect("introduce");
    // The view keeps its frame; the producer fills the rest of the ring.
    while tx.try_send(&[7; 200]).is_ok() {}
    child.kill().expect("kill -9");
    let _ = child.wait();
    let started = Instant::now();
    let result = (0..100).try_for_each(|_| tx.send(&[8; 200]));
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    let noticed = started.elapsed();
    assert!(
        noticed < Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
    drop(tx);
    assert_eq!(regions_of_this_process(), Vec::<String>::new());
}
