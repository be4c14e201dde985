//! The floor for a byte-moving transport's `pingpong`: a minimal ping-pong
//! over the bare mechanism (no framing, no trait, no harness), run beside
//! the same exchange through the transport, in one process pair, in
//! alternating rounds:
//!
//! - `pipe`: two raw pipes, against the `Pipe` transport;
//! - `uds`: two Unix stream socket pairs, against the `Uds` transport;
//! - `tcp`: two loopback TCP connections, against the `Tcp` transport;
//! - `mqueue`: two POSIX queues, blocking `mq_send`/`mq_receive`, against
//!   the `Mqueue` transport (non-blocking, waits by `poll`).
//!
//! Run both sides on one CPU, as the README does:
//!
//! ```text
//! taskset -c 0 cargo run --release --example raw_pingpong -- pipe
//! taskset -c 0 cargo run --release --example raw_pingpong -- uds tcp mqueue
//! ```
//!
//! It prints, per method, the median round trip of each and their ratio.

use std::time::Instant;

use ipc_core::{Handover, Mode, Options, Receiver, Sender, Transport};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

const SIZE: usize = 64;
const COUNT: usize = 20_000;
const WARMUP: usize = 1_000;
const ROUNDS: usize = 5;

/// A transport and its bare reference (and, for the queue, the bare
/// mechanism as the transport waits: `poll` before each receive).
struct Method {
    name: &'static str,
    raw: fn() -> Option<Vec<u64>>,
    transport: fn() -> u64,
    as_it_waits: Option<fn() -> Option<Vec<u64>>>,
}

const METHODS: &[Method] = &[
    Method {
        name: "pipe",
        raw: || ipc_baselines::pipe::round_trips(SIZE, COUNT, WARMUP),
        transport: transport_round::<ipc_pipes::Pipe>,
        as_it_waits: None,
    },
    Method {
        name: "uds",
        raw: || ipc_baselines::socket::unix_round_trips(SIZE, COUNT, WARMUP),
        transport: transport_round::<ipc_sockets::Uds>,
        as_it_waits: None,
    },
    Method {
        name: "tcp",
        raw: || ipc_baselines::socket::tcp_round_trips(SIZE, COUNT, WARMUP),
        transport: transport_round::<ipc_sockets::Tcp>,
        as_it_waits: None,
    },
    Method {
        name: "mqueue",
        raw: || ipc_baselines::mqueue::round_trips(SIZE, COUNT, WARMUP),
        transport: transport_round::<ipc_mqueue::Mqueue>,
        as_it_waits: Some(|| ipc_baselines::mqueue::round_trips_polled(SIZE, COUNT, WARMUP)),
    },
];

fn main() {
    let asked: Vec<String> = std::env::args().skip(1).collect();
    let asked: Vec<&str> = if asked.is_empty() {
        vec!["pipe"]
    } else {
        asked.iter().map(String::as_str).collect()
    };
    for name in asked {
        let Some(method) = METHODS.iter().find(|m| m.name == name) else {
            let all: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
            eprintln!("no method {name:?}: {}", all.join(", "));
            std::process::exit(2);
        };
        let mut raw_p50 = Vec::new();
        let mut transport_p50 = Vec::new();
        let mut waits_p50 = Vec::new();
        for _ in 0..ROUNDS {
            let samples = (method.raw)().expect("a raw ping-pong");
            raw_p50.push(samples[samples.len() / 2]);
            transport_p50.push((method.transport)());
            if let Some(waits) = method.as_it_waits {
                let samples = waits().expect("a polled ping-pong");
                waits_p50.push(samples[samples.len() / 2]);
            }
        }
        let polled = if waits_p50.is_empty() {
            String::new()
        } else {
            let w = median(&mut waits_p50.clone());
            format!(
                ",\"raw_polled_p50_ns\":{w},\"polled_over_raw\":{:.3},\"transport_over_polled\":{:.3}",
                w as f64 / median(&mut raw_p50.clone()) as f64,
                median(&mut transport_p50.clone()) as f64 / w as f64
            )
        };
        let ratios: Vec<String> = raw_p50
            .iter()
            .zip(&transport_p50)
            .map(|(r, t)| format!("{:.3}", *t as f64 / *r as f64))
            .collect();
        let raw = median(&mut raw_p50);
        let ours = median(&mut transport_p50);
        println!(
            "{{\"method\":\"{name}\",\"size\":{SIZE},\"count\":{COUNT},\"rounds\":{ROUNDS},\"raw_p50_ns\":{raw},\"transport_p50_ns\":{ours},\"ratio\":{:.3},\"ratio_per_round\":[{}]{polled},\"machine\":\"{}\"}}",
            ours as f64 / raw as f64,
            ratios.join(","),
            ipc_harness::machine()
        );
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Forks; returns the child's pid in the parent and `None` in the child.
fn fork_child() -> Option<Pid> {
    // SAFETY: this example never starts a thread, so the child of fork() is a
    // faithful copy that may run any code; it leaves through `child_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => None,
        ForkResult::Parent { child } => Some(child),
    }
}

fn child_exit() -> ! {
    // SAFETY: _exit ends the child without running the parent's destructors
    // or flushing its buffers a second time.
    unsafe { nix::libc::_exit(0) }
}

/// The same exchange through transport `T` (framing, buffered reads), its
/// two channels made before the fork.
fn transport_round<T: Transport>() -> u64 {
    let opts = Options::default();
    let (mut ping_tx, mut ping_rx) = T::channel(Mode::Process, &opts).expect("channel");
    let (mut pong_tx, mut pong_rx) = T::channel(Mode::Process, &opts).expect("channel");
    // Each process closes the other's ends through an export, which lets
    // go of the descriptor without a word to the other side: a dropped
    // socket sender shuts its direction down for every process that holds
    // the socket, and a dropped queue end tells its partner in this
    // process that it is gone.
    let let_go_tx = |tx: T::Sender| drop(T::export_sender(tx, &mut Handover::new()));
    let let_go_rx = |rx: T::Receiver| drop(T::export_receiver(rx, &mut Handover::new()));
    let Some(child) = fork_child() else {
        let_go_tx(ping_tx);
        let_go_rx(pong_rx);
        while let Ok(msg) = ping_rx.recv() {
            if pong_tx.send(msg).is_err() {
                break;
            }
        }
        child_exit();
    };
    let_go_rx(ping_rx);
    let_go_tx(pong_tx);
    let msg = [7u8; SIZE];
    let mut samples = Vec::with_capacity(COUNT);
    for i in 0..WARMUP + COUNT {
        let t0 = Instant::now();
        ping_tx.send(&msg).expect("send");
        let echo = pong_rx.recv().expect("the child died");
        assert_eq!(echo.len(), SIZE);
        if i >= WARMUP {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(ping_tx);
    waitpid(child, None).expect("reap the child");
    median(&mut samples)
}
